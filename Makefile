# Two commands: `make run` (set up, ingest the sample corpus, answer a question)
# and `make test` (set up with test extras, run the whole suite).
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
INDEX   ?= var/index/sample
QUESTION ?= Where was the SAIBK strain of infectious bronchitis virus isolated?
PORT    ?= 8501
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test install install-test ingest ask ui eval bench lint clean

$(BIN)/python:
	@command -v $(PY) >/dev/null || { echo "need $(PY) (Python 3.11+)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first and pinned: the CPU build (an unpinned torch pulls a multi-GB CUDA build).
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed
# tests/ui drives Debian's chromium through Playwright (never a downloaded browser):
# install it when missing and we are root (checked on every run, not hidden by the stamp file).
install-test: $(VENV)/.installed-test
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || (apt-get update -qq && apt-get install -y -qq chromium)

ingest: install
	$(BIN)/slm ingest data/legal data/finance data/medical --index $(INDEX)

ask: install
	$(BIN)/slm ask "$(QUESTION)" --index $(INDEX)

ui: install
	@echo "Starting the UI on http://127.0.0.1:$(PORT) (Ctrl-C stops it)"
	$(BIN)/slm ui --index $(INDEX) --port $(PORT)

# The main job: set up, ingest the sample corpus, answer a sample question, start the UI.
run: ingest ask ui

test: install-test
	$(BIN)/python -m pytest -q

lint: install-test
	$(BIN)/ruff check assistant ingest domains ui tests benchmarks
	$(BIN)/lint-imports

bench: install-test
	$(BIN)/python benchmarks/ingest.py

# Retrieval metrics of the three dev sets in $(SHARED)/eval, reports in reports/eval/<set>/ (see docs/eval.md).
# EVAL_ANSWERS=N also answers and scores the first N questions of each set (~10 s a question on 2 cores);
# EVAL_ARGS adds flags, e.g. EVAL_ARGS="--compare retrieval.mode=dense,lexical,hybrid".
SHARED       ?= ../shared
EVAL_ANSWERS ?=
EVAL_ARGS    ?=
EVAL_FLAGS    = $(if $(EVAL_ANSWERS),--answers --limit $(EVAL_ANSWERS)) $(EVAL_ARGS)
eval: install
	$(BIN)/slm eval --corpus $(SHARED)/corpora/finance/sec-10q --questions $(SHARED)/eval/finance-sec10q.jsonl --domain finance $(EVAL_FLAGS)
	$(BIN)/slm eval --corpus $(SHARED)/corpora/legal/cuad-dev --questions $(SHARED)/eval/legal-cuad-dev.jsonl --domain legal $(EVAL_FLAGS)
	$(BIN)/slm eval --corpus $(SHARED)/corpora/medical/covidqa-dev --questions $(SHARED)/eval/medical-covidqa-dev.jsonl --domain medical $(EVAL_FLAGS)

clean:
	rm -rf var .pytest_cache

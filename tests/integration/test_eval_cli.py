"""``slm eval`` end to end: real embedder, FAISS and SQLite on 3 COVID-QA articles."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from assistant.cli import main

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CORPUS = SHARED / "corpora" / "medical" / "covidqa-dev"
QUESTIONS = SHARED / "eval" / "medical-covidqa-dev.jsonl"
ARTICLES = ("1549.txt", "1550.txt", "1552.txt")  # small (5-6 kB), 19 questions between them

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if not QUESTIONS.is_file() or not all((CORPUS / a).is_file() for a in ARTICLES):
        pytest.skip("../shared/eval and ../shared/corpora/medical/covidqa-dev are not here")
    root = tmp_path_factory.mktemp("evalset")
    corpus = root / "covid"
    corpus.mkdir()
    for name in ARTICLES:
        shutil.copy(CORPUS / name, corpus / name)
    lines = [line for line in QUESTIONS.read_text(encoding="utf-8").splitlines()
             if line.strip() and json.loads(line)["evidence"][0]["source"] in ARTICLES]
    questions = root / "covid-tiny.jsonl"
    questions.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return corpus, questions


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One index for the module: the first run ingests, later runs find the files unchanged."""
    return tmp_path_factory.mktemp("evalindex") / "index"


def _args(tiny_set: tuple[Path, Path], index: Path, out: Path, *extra: str) -> list[str]:
    corpus, questions = tiny_set
    return ["eval", "--corpus", str(corpus), "--questions", str(questions), "--index", str(index),
            "--domain", "medical", "--out", str(out), *extra]


def _rates(block: dict[str, dict[str, float | None]]) -> list[float]:
    return [v for per_k in block.values() for v in per_k.values() if v is not None]


def test_eval_writes_reports_with_sane_values(tiny_set: tuple[Path, Path], index: Path, tmp_path: Path):
    out = tmp_path / "report"
    result = CliRunner().invoke(main, _args(tiny_set, index, out, "--limit", "10"))
    assert result.exit_code == 0, result.output + repr(result.exception)
    for name in ("records.json", "summary.json", "summary.md", "hit_at_k.png", "latency.png", "retrieval-default.jsonl"):
        assert (out / name).stat().st_size > 0, name
    assert "| doc-hit |" in result.output  # the table is printed

    cfg = json.loads((out / "summary.json").read_text(encoding="utf-8"))["configs"][0]
    r = cfg["retrieval"]
    assert r["n_questions"] == 10 and r["n_answerable"] == 10 and r["n_missing_retrieval"] == 0
    rates = [x for key in ("doc_hit", "evidence_hit", "evidence_strict_hit", "doc_recall") for x in _rates({key: r[key]})]
    assert rates and all(0.0 <= x <= 1.0 for x in rates)
    assert r["doc_hit"]["10"] > 0.5 and r["page_hit"]["10"] is None  # text files have no pages
    assert 0.0 < r["mrr10"] <= 1.0
    assert cfg["answers"] is None and cfg["index"]["documents"] == 3
    assert cfg["latency"]["retrieval_ms"]["n"] == 10 and cfg["latency"]["retrieval_ms"]["p50"] > 0

    records = json.loads((out / "records.json").read_text(encoding="utf-8"))["configs"][0]["records"]
    first = records[0]
    assert len(records) == 10 and len(first["hits"]) == 10 and first["flags"]["finest"] == "evidence"
    assert {"source", "page", "char_start", "char_end", "score"} <= set(first["hits"][0])


def test_eval_answers_extractive(tiny_set: tuple[Path, Path], index: Path, tmp_path: Path):
    out = tmp_path / "report"
    result = CliRunner().invoke(main, _args(tiny_set, index, out, "--limit", "3", "--answers", "--extractive"))
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "| citation precision |" in result.output
    answers = json.loads((out / "summary.json").read_text(encoding="utf-8"))["configs"][0]["answers"]
    assert answers["n_answerable"] == 3 and answers["errors"] == 0 and answers["n_unanswerable"] == 0
    assert answers["citation_precision"] == 1.0  # extractive quotes are verbatim page text
    assert 0.0 <= answers["correct"] <= 1.0 and answers["false_abstention_rate"] is not None
    record = json.loads((out / "records.json").read_text(encoding="utf-8"))["configs"][0]["records"][0]
    assert record["answer"]["citations"] and record["answer"]["citations"][0]["on_page"] is True


def test_eval_compare_reuses_the_index(tiny_set: tuple[Path, Path], index: Path, tmp_path: Path):
    out = tmp_path / "report"
    result = CliRunner().invoke(main, _args(tiny_set, index, out, "--limit", "5",
                                            "--compare", "retrieval.mode=hybrid,dense"))
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "3 unchanged" in result.output  # incremental ingest: nothing re-embedded
    assert "| retrieval.mode=hybrid | retrieval.mode=dense | × first |" in result.output
    configs = json.loads((out / "summary.json").read_text(encoding="utf-8"))["configs"]
    assert [c["label"] for c in configs] == ["retrieval.mode=hybrid", "retrieval.mode=dense"]
    assert all(c["retrieval"]["doc_hit"]["10"] > 0.5 for c in configs)


def test_eval_reports_a_bad_question_line(tiny_set: tuple[Path, Path], tmp_path: Path):
    corpus = tiny_set[0]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "question": "Q?", "answerable": "yes", "evidence": []}\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["eval", "--corpus", str(corpus), "--questions", str(bad),
                                       "--index", str(tmp_path / "ix"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and f"{bad}, line 1" in result.output

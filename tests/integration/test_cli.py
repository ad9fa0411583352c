"""The `slm` command as a user runs it: real install, real models, real files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CORPORA, needs_shared

pytestmark = [pytest.mark.integration, pytest.mark.slow, needs_shared]
SLM = str(Path(sys.executable).with_name("slm"))
NEON = "NEONSYSTEMSINC_03_01_1999-EX-10.5-DISTRIBUTOR AGREEMENT_New.pdf"


def slm(*args: str, input: str | None = None, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([SLM, *args], capture_output=True, text=True, input=input, env=full_env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("docs")
    shutil.copy(CORPORA / "legal" / "cuad-dev" / NEON, root / NEON)
    shutil.copy(CORPORA / "medical" / "covidqa-dev" / "1547.txt", root / "1547.txt")
    (root / "notes.md").write_text("# Notes\n\nThe kickoff meeting is on Tuesday in Lisbon.\n", encoding="utf-8")
    (root / "empty.txt").write_bytes(b"")
    (root / "broken.pdf").write_bytes((CORPORA / "legal" / "cuad-dev" / NEON).read_bytes()[:5000])
    (root / "legacy.txt").write_bytes("Vertrag \xfcber Lieferung".encode("latin-1"))
    return root


@pytest.fixture(scope="module")
def index(corpus, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("index") / "idx"
    first = slm("ingest", str(corpus), "--index", str(path))
    assert first.returncode == 1, first.stderr  # some files failed, the rest is committed
    out = first.stdout + first.stderr
    assert "3 added" in out and "3 failed" in out
    assert "empty.txt: empty file" in out
    assert "broken.pdf:" in out and "legacy.txt: not valid UTF-8" in out
    return path


def test_reingest_changes_nothing_and_json_summary(index, corpus):
    again = slm("ingest", str(corpus), "--index", str(index), "--json")
    data = json.loads(again.stdout)
    assert data["counts"]["unchanged"] == 3 and data["counts"]["added"] == 0 and data["counts"]["failed"] == 3
    assert again.returncode == 1


def test_only_good_files_exit_zero(index, tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    (good / "a.txt").write_text("Alpha beta gamma delta.", encoding="utf-8")
    done = slm("ingest", str(good), "--index", str(tmp_path / "other"))
    assert done.returncode == 0, done.stderr
    missing = slm("ingest", str(tmp_path / "nope"), "--index", str(tmp_path / "other"))
    assert missing.returncode == 1 and "no such file or folder" in missing.stdout + missing.stderr


def test_index_stats_and_list(index):
    stats = json.loads(slm("index", "stats", "--index", str(index), "--json").stdout)
    assert stats["documents"] == 3 and stats["chunks"] > 10
    assert stats["embedder"].startswith("sentence-transformers/all-MiniLM-L6-v2@")
    listing = slm("index", "list", "--index", str(index)).stdout
    assert NEON in listing and "1547.txt" in listing


def test_retrieve_json(index):
    out = slm("retrieve", "governed by the laws of the State of Texas", "--index", str(index), "--json", "-k", "3")
    hits = json.loads(out.stdout)
    assert hits[0]["source"] == NEON and hits[0]["page"] == 12


def test_ask_extractive_json_cites_page(index):
    out = slm("ask", "This agreement shall be governed by the laws of which state?", "--index", str(index),
              "--extractive", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert any(c["source"] == NEON and c["page"] == 12 for c in data["citations"])
    assert data["disclaimer"]


def test_ask_streams_and_prints_sources(index):
    out = slm("ask", "Where was the SAIBK strain isolated?", "--index", str(index))
    assert out.returncode == 0, out.stderr
    assert "1547.txt" in out.stdout
    assert "Retrieval" in out.stdout  # timings line


def test_chat_keeps_history(index):
    out = slm("chat", "--index", str(index), "--domain", "medical",
              input="Where was the SAIBK strain isolated?\nwhen was it isolated?\n\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("you>") >= 2 and "1547.txt" in out.stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["ask", ""], {}, "question is empty"),
        (["ask", "anything", "--index", "/nonexistent/index"], {}, "no index at /nonexistent/index"),
        (["ask", "anything", "--domain", "astrology"], {}, "unknown domain"),
        (["config", "show"], {"SLM_RETRIEVAL__K": "0"}, "retrieval.k"),
        (["ask", "x"], {"SLM_LLM__MODEL_PATH": "/nope/model.gguf"}, "not found"),
    ],
)
def test_errors_are_one_clear_line(index, args, env, message):
    if "--index" not in args and args[0] == "ask":
        args = [*args, "--index", str(index)]
    out = slm(*args, env=env)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert message in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_config_show_precedence(tmp_path):
    (tmp_path / "slm.toml").write_text("[retrieval]\nk = 7\n")
    shown = slm("config", "show", "--json", cwd=tmp_path, env={"SLM_LLM__TEMPERATURE": "0.3"})
    data = json.loads(shown.stdout)
    assert data["retrieval"]["k"] == 7 and data["llm"]["temperature"] == 0.3


def test_python_m_ingest_and_doctor(index, tmp_path):
    f = tmp_path / "one.txt"
    f.write_text("Gamma rays are high energy photons.", encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "ingest", str(f), "--index", str(tmp_path / "i")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "1 added" in out.stdout
    doc = slm("doctor", env={"SLM_INDEX__DIR": str(index)})
    assert doc.returncode == 0, doc.stdout
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in doc.stdout and "FAIL" not in doc.stdout


def test_audit_log_records_each_question_redacted(index, tmp_path):
    log = tmp_path / "audit" / "slm.jsonl"
    question = "Which state's law governs the agreement? (asked by jane.doe@example.com)"
    r = slm("ask", question, "--index", str(index), "--extractive", env={"SLM_AUDIT__PATH": str(log)})
    assert r.returncode == 0, r.stderr
    (entry,) = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert entry["question"] == "Which state's law governs the agreement? (asked by [EMAIL])"
    assert {"source": NEON, "page": 12} in entry["cited"] and entry["index"] == str(index)
    assert "jane.doe" not in log.read_text() and oct(log.stat().st_mode & 0o777) == "0o600"

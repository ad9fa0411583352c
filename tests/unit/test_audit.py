"""The audit log: one redacted JSON line per answer, owner-only, whole lines under concurrency."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading

import pytest

from assistant import Assistant, ConfigError
from assistant.domain import GENERAL
from assistant.index import IndexStore
from assistant.settings import Settings
from assistant.testing import FakeLLM

QUESTION = "Which laws govern this Agreement, Texas? Reply to jane.doe@example.com, MRN: 12345678"


@pytest.fixture
def index(fake_pipeline, text_corpus, tmp_path):
    fake_pipeline.run([text_corpus], tmp_path / "idx")
    return tmp_path / "idx"


def _assistant(index, embedder, **audit):
    store = IndexStore.open(index, embedder_id=embedder.id, dim=embedder.dim)
    return Assistant(store=store, embedder=embedder, domain=GENERAL, settings=Settings(audit=audit), llm=FakeLLM())


def _lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_each_answer_is_logged_redacted_with_cited_documents(index, fake_embedder, tmp_path):
    log = tmp_path / "audit" / "questions.jsonl"
    with _assistant(index, fake_embedder, path=log) as asst:
        answer = asst.ask(QUESTION)
        asst.ask(QUESTION, extractive=True)
    first, second = _lines(log)
    assert "jane.doe" not in log.read_text() and "12345678" not in log.read_text()
    assert first["question"] == "Which laws govern this Agreement, Texas? Reply to [EMAIL], [MRN]"
    assert first["cited"] == [{"source": c.source, "page": c.page} for c in answer.citations] != []
    assert first["abstained"] is False and first["mode"] == "generate" and second["mode"] == "extractive"
    assert first["domain"] == "general" and first["index"] == str(index) and first["time"].endswith("Z")
    assert "law.txt" in first["passages"] and "text" not in first and "answer" not in first
    assert first["user"] and stat.S_IMODE(os.stat(log).st_mode) == 0o600


def test_searches_are_logged_too(index, fake_embedder, tmp_path):
    log = tmp_path / "audit.jsonl"
    with _assistant(index, fake_embedder, path=log) as asst:
        hits = asst.retrieve(QUESTION, k=2)
    (entry,) = _lines(log)
    assert entry["mode"] == "retrieve" and entry["passages"] == list(dict.fromkeys(h.source for h in hits))
    assert "[EMAIL]" in entry["question"]


def test_an_existing_log_is_made_owner_only_and_links_are_refused(index, fake_embedder, tmp_path):
    log = tmp_path / "audit.jsonl"
    log.write_text("")
    log.chmod(0o644)
    with _assistant(index, fake_embedder, path=log) as asst:
        asst.ask(QUESTION)
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600
    link = tmp_path / "link.jsonl"
    link.symlink_to(tmp_path / "elsewhere.jsonl")
    with pytest.raises(ConfigError, match="cannot write"):
        _assistant(index, fake_embedder, path=link)


def test_questions_can_be_left_out(index, fake_embedder, tmp_path):
    log = tmp_path / "audit.jsonl"
    with _assistant(index, fake_embedder, path=log, questions="omit") as asst:
        asst.ask(QUESTION)
    (entry,) = _lines(log)
    assert "question" not in entry and entry["question_sha256"] == hashlib.sha256(QUESTION.encode()).hexdigest()


def test_no_log_unless_configured(index, fake_embedder, tmp_path):
    with _assistant(index, fake_embedder) as asst:
        asst.ask(QUESTION)
        assert asst.audit is None
    assert not list(tmp_path.rglob("*.jsonl"))


def test_threads_write_whole_lines(index, fake_embedder, tmp_path):
    log = tmp_path / "audit.jsonl"
    with _assistant(index, fake_embedder, path=log) as asst:
        threads = [threading.Thread(target=lambda: [asst.ask(QUESTION + " x" * 500) for _ in range(5)])
                   for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(_lines(log)) == 40  # every line parses: none interleaved


def test_unwritable_log_is_a_clear_error_and_withholds_the_answer(index, fake_embedder, tmp_path):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ConfigError, match="audit.path .*a-file/audit.jsonl: cannot write"):
        _assistant(index, fake_embedder, path=tmp_path / "a-file" / "audit.jsonl")
    log = tmp_path / "audit.jsonl"
    with _assistant(index, fake_embedder, path=log) as asst:
        log.unlink()
        log.mkdir()  # now a directory: the append fails
        events = asst.stream(QUESTION)
        with pytest.raises(ConfigError, match="nothing is answered"):
            next(events)  # before the evidence, long before any generated text
        assert asst.llm.calls == []


def _write_records(path: str, n: int) -> None:
    from assistant.audit import AuditLog
    from assistant.types import Answer

    log = AuditLog(path)
    for i in range(n):
        log.record(Answer(f"question {i} " + "x" * 3000, "a", (), (), False, ()), index="idx", domain="general")


def test_processes_append_whole_lines(tmp_path):
    import multiprocessing

    log = tmp_path / "audit.jsonl"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_records, args=(str(log), 50)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert len(_lines(log)) == 200  # every line parses: none torn or interleaved

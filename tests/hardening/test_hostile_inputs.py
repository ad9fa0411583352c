"""Hostile inputs (issue #7): 42 generated files through the real ingest, and hostile upload names.

Each bad file must give exactly one failure naming the file, what is wrong and
what to do; every good file must be committed and found by a question; the
index must open and agree with itself afterwards; the ``slm ingest`` process
must stay in bounded memory. The corpus is described in tests/hardening/hostile.py.
Time is never asserted: the timeouts are hang guards.
"""

from __future__ import annotations

import faulthandler
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from assistant import Assistant
from assistant.domain import GENERAL
from assistant.index import IndexStore
from ingest import ingest
from ingest.pipeline import FileResult
from tests.hardening.hostile import Expect, build_corpus
from ui.uploads import UnsafeName, sanitize_filename, save_staged, staging_dir

SLM = str(Path(sys.executable).with_name("slm"))
MAX_RSS = 1536 * 2**20  # the ingest process, embedder included (it starts at ~600 MB)
HANG_GUARD_S = 600


@pytest.fixture(scope="module")
def corpus() -> Iterator[tuple[Path, list[Expect]]]:
    base = Path(tempfile.mkdtemp(prefix="hostile-"))  # removed at the end, not kept by pytest: it holds 60 MB
    root = base / "corpus"
    root.mkdir()
    expects = build_corpus(root)
    yield root, expects
    shutil.rmtree(base)


def expected_added(expects: list[Expect], *, can_bypass_permissions: bool) -> set[str]:
    """Sources that must be committed: an unreadable file is, for a process that may read anything."""
    sources = {e.source for e in expects if e.status == "added"}
    if can_bypass_permissions:
        sources |= {e.source for e in expects if e.unprivileged}
    return sources


def check_results(results: list[FileResult], expects: list[Expect], *, can_bypass_permissions: bool) -> None:
    """One result per corpus entry, with the expected status and reason phrases."""
    by_source: dict[str, list[FileResult]] = {}
    for r in results:
        by_source.setdefault(r.source, []).append(r)
    assert sorted(by_source) == sorted(e.source for e in expects)
    for e in expects:
        (r,) = by_source[e.source]  # exactly one report per file
        status = "added" if e.unprivileged and can_bypass_permissions else e.status
        assert r.status == status, (e.source, r.status, r.reason)
        if status != "added":
            assert r.reason and "\n" not in r.reason, r
            assert all(phrase in r.reason for phrase in e.says), (e.source, r.reason, e.says)


def check_index(index: Path, expects: list[Expect], added: set[str], embedder: object) -> None:
    """The index opens, holds exactly the committed files, agrees with itself, and answers."""
    with IndexStore.open(index) as store:
        conn = store._conn
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        docs = {d["source"]: d for d in store.documents()}
        assert set(docs) == added
        assert docs["pdf/pages_5000.pdf"]["pages"] == 5000
        assert conn.execute("SELECT count(*) FROM pages WHERE doc_id = ?",
                            (docs["pdf/pages_5000.pdf"]["id"],)).fetchone()[0] == 5000
        for table in ("pages", "chunks"):
            orphans = f"SELECT count(*) FROM {table} WHERE doc_id NOT IN (SELECT id FROM documents)"
            assert conn.execute(orphans).fetchone()[0] == 0, table
        ids = sorted(r[0] for r in conn.execute("SELECT id FROM chunks"))
        vectors = store._vectors
        assert vectors.ntotal == len(ids) == store.stats()["chunks"]
        assert sorted(int(vectors.id_map.at(i)) for i in range(vectors.ntotal)) == ids
        fts = conn.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'saxophone'").fetchone()[0]
        assert fts == 1
    with Assistant(store=IndexStore.open(index), embedder=embedder, domain=GENERAL) as asst:
        for e in expects:
            if e.question:
                hits = asst.retrieve(e.question, k=3)
                assert e.source in [h.source for h in hits], (e.question, [h.source for h in hits])


@contextmanager
def peak_rss(pid: int, into: list[int]) -> Iterator[None]:
    """Poll a process's resident memory every 20 ms; append the peak to ``into``."""
    peak = [0]
    done = threading.Event()
    proc = psutil.Process(pid)

    def poll() -> None:
        while not done.is_set():
            try:
                peak[0] = max(peak[0], proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.02)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        into.append(peak[0])


@contextmanager
def hang_guard(seconds: int) -> Iterator[None]:
    """Abort the test run with every thread's traceback if the block hangs (PDFium cannot be interrupted)."""
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


# --- the library -------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
def test_library_ingest_fails_each_bad_file_once_and_commits_the_rest(corpus, real_embedder, tmp_path, record_property):
    root, expects = corpus
    index = tmp_path / "idx"
    peaks: list[int] = []
    before = psutil.Process().memory_info().rss
    with hang_guard(HANG_GUARD_S), peak_rss(os.getpid(), peaks):
        result = ingest([root], index)
    growth = peaks[0] - before
    record_property("library_ingest_rss_growth_mb", growth >> 20)
    print(f"\nlibrary ingest: {result.seconds:.1f} s, test process RSS {before >> 20} -> peak {peaks[0] >> 20} MB")
    bypass = os.access(root / "links" / "unreadable.txt", os.R_OK)  # true for root
    check_results(list(result.files), expects, can_bypass_permissions=bypass)
    assert not result.ok
    assert growth < MAX_RSS - 600 * 2**20  # the embedder was already loaded in this process
    check_index(index, expects, expected_added(expects, can_bypass_permissions=bypass), real_embedder)


def test_fake_embedder_ingest_gives_the_same_outcomes_and_a_rerun_changes_nothing(corpus, fake_pipeline, tmp_path):
    """The same checks in seconds (no model), then a second run: nothing added, the same failures."""
    root, expects = corpus
    index = tmp_path / "idx"
    bypass = os.access(root / "links" / "unreadable.txt", os.R_OK)
    first = fake_pipeline.run([root], index)
    check_results(list(first.files), expects, can_bypass_permissions=bypass)
    second = fake_pipeline.run([root], index)
    assert second.count("added") == 0 and second.count("unchanged") == first.count("added")
    assert {f.source: f.reason for f in second.failed} == {f.source: f.reason for f in first.failed}
    added = expected_added(expects, can_bypass_permissions=bypass)
    no_questions = [e for e in expects if not e.question]  # the fake embedder's vectors do not find passages
    check_index(index, no_questions, added, fake_pipeline.embedder)


# --- the command line --------------------------------------------------------------------------

_FAILED = re.compile(r"^  failed   (.+?): (.+)$")


def _without_read_override() -> tuple[list[str], bool]:
    """A command prefix that takes root's power to read any file, and whether the run keeps it.

    Root reads a chmod 000 file. setpriv drops CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH from the bounding set, so the command runs as root (it
    still owns the interpreter, which lives under the 0700 /root here, so running
    as "nobody" is not an option) but obeys file permissions.
    """
    if os.geteuid() != 0:
        return [], False
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return [], True
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--"], False


@pytest.mark.integration
@pytest.mark.slow
def test_cli_ingest_prints_one_line_per_bad_file_in_bounded_memory(corpus, real_embedder, tmp_path, record_property):
    root, expects = corpus
    index = tmp_path / "idx"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLM_")}
    peaks: list[int] = []
    started = time.monotonic()
    prefix, bypass = _without_read_override()
    proc = subprocess.Popen([*prefix, SLM, "ingest", str(root), "--index", str(index)], cwd=tmp_path, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with peak_rss(proc.pid, peaks):
        out, err = proc.communicate(timeout=HANG_GUARD_S)
    record_property("cli_ingest_peak_rss_mb", peaks[0] >> 20)
    print(f"\nslm ingest: {time.monotonic() - started:.1f} s, peak RSS {peaks[0] >> 20} MB")
    assert proc.returncode == 1, err

    lines = [line for line in err.splitlines() if line.strip()]
    failures: dict[str, list[str]] = {}
    for line in lines:
        found = _FAILED.match(line)
        assert found, f"stderr holds something other than one line per failed file: {line!r}"
        failures.setdefault(found.group(1), []).append(found.group(2))
    bad = {e.source: e for e in expects if e.status == "failed" and not (e.unprivileged and bypass)}
    assert sorted(failures) == sorted(bad)
    for source, reasons in failures.items():
        assert len(reasons) == 1, (source, reasons)
        assert all(phrase in reasons[0] for phrase in bad[source].says), (source, reasons[0])
    skipped = [e.source for e in expects if e.status == "skipped"]
    assert [line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("  skipped")] == skipped
    added = expected_added(expects, can_bypass_permissions=bypass)
    assert f"{len(added)} added, {len(skipped)} skipped, {len(bad)} failed" in out

    assert peaks[0] < MAX_RSS, f"slm ingest peaked at {peaks[0] >> 20} MB"
    check_index(index, expects, added, real_embedder)


# --- upload names ------------------------------------------------------------------------------

HOSTILE_NAMES = [
    "../../etc/passwd", "/abs/path.pdf", "..\\..\\win.txt", "a/../../b.pdf", "C:\\Windows\\system32\\x.docx",
    "ok\x00.txt", "nul\x00/../../escape.md", "", ".", "..", "....", "./", "/", "\\", " ", "\u202egnp.exe.txt",
    "line\nbreak.pdf", "x" * 5000 + ".pdf", "名" * 300 + ".txt", "é" * 200 + ".html", ".hidden.pdf",
    "dir/.hidden.pdf", "%2e%2e%2fetc%2fpasswd.txt", "..%c0%af..%c0%afetc.txt", "\udcff\udcfe.txt",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: ascii(n)[:40])
def test_upload_names_stay_inside_the_staging_folder(tmp_path, name):
    index = tmp_path / "collections" / "legal"
    try:
        safe = sanitize_filename(name)
    except UnsafeName as exc:
        message = str(exc)
        assert message and "\n" not in message and ("file name" in message or "hidden" in message), message
        return
    assert safe and "/" not in safe and "\\" not in safe and "\x00" not in safe and safe not in (".", "..")
    assert len(safe.encode("utf-8")) <= 240 and sanitize_filename(safe) == safe
    staged = save_staged(index, safe, b"data")
    assert staged.parent == staging_dir(index) and staged.resolve().parent == staging_dir(index).resolve()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == [staged], written  # nothing else, nowhere else (the .part file was renamed)


@pytest.mark.parametrize("name", ["../x.pdf", "a/b.pdf", "..", ".part.pdf", "x\x00.pdf", "/etc/passwd"])
def test_save_staged_refuses_a_name_that_was_not_sanitized(tmp_path, name):
    with pytest.raises(UnsafeName):
        save_staged(tmp_path / "idx", name, b"data")
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]

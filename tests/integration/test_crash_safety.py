"""Crash safety of the index: SIGKILL the ingest at many moments, then open, check, re-run.

DESIGN.md: "A crash (even SIGKILL) at any moment leaves the previous or the new
index, never a broken one. A lock file stops two writers."

Most runs use the FakeEmbedder over a generated corpus, with a commit every few
chunks so that there are many commits to land in. To keep ~60 killed runs fast, a
driver process (``python -c DRIVER``) imports the pipeline once and forks one child
per run; each child is a real process that the test (or the child itself, at an
exact point inside ``IndexWriter.commit``) ends with SIGKILL. After every kill:

* ``IndexStore.open`` works (or, if no index was ever completed, says IndexNotFound);
* SQLite passes its integrity checks (FTS5 included), has no orphans, and every
  document is whole (its chunks ``ord`` 0..n-1, identical to a clean run's);
* the FAISS ids are exactly the chunk ids;
* a re-run completes the job: every file present, the clean run's chunks exactly.
"""

from __future__ import annotations

import json
import os
import queue
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import pytest

from assistant.errors import IndexNotFound
from assistant.index import IndexStore
from assistant.index.store import MANIFEST, SQLITE
from assistant.testing import FakeEmbedder
from ingest.chunking import ChunkerConfig
from ingest.pipeline import Pipeline
from tests.conftest import CORPORA, needs_shared

pytestmark = pytest.mark.integration

CHUNKING = {"chunk_tokens": 40, "overlap_tokens": 5}
COMMIT_EVERY = 10  # chunks; the corpus has ~250, so ~20 commits per run
N_FILES = 30

# The driver. Mode "zygote": read one JSON command per stdin line, fork a child that
# runs it, report "pid", the child's events, and "exit <pid> <wait status>".
# Mode "once": run the command given as argv[2] in this process.
DRIVER = r'''
import json, os, signal, sys
from pathlib import Path
import faiss
import ingest.pipeline as pl
from assistant.index import schema, store
from assistant.testing import FakeEmbedder
from ingest.chunking import ChunkerConfig

def emit(*parts):
    os.write(1, (" ".join(str(p) for p in parts) + "\n").encode())

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def patch(cmd):
    """Commit cadence, progress events, and an optional SIGKILL at an exact point."""
    pl.COMMIT_EVERY_CHUNKS = cmd.get("every", pl.COMMIT_EVERY_CHUNKS)
    point, at, n = cmd.get("point"), cmd.get("commit"), [0]
    here = lambda p: point == p and n[0] == at
    commit, write_index, replace, connect = (store.IndexWriter.commit, faiss.write_index,
                                             store._fsync_replace, schema.connect)
    def commit_(self):
        n[0] += 1
        emit("commit", n[0])
        if here("commit-start"):
            die()
        commit(self)
        emit("committed", n[0])
    def write_index_(index, path):
        if here("faiss-write-start"):      # SQLite has committed; FAISS not yet written
            die()
        write_index(index, path)
        if here("faiss-tmp-partial"):      # a torn write of the tmp file
            os.truncate(path, os.path.getsize(path) // 2)
            die()
    def replace_(tmp, final):
        kind = "faiss" if final.name == store.VECTORS else "manifest"
        if here(kind + "-before-rename"):
            if kind == "manifest":
                os.truncate(tmp, tmp.stat().st_size // 2)
            die()
        replace(tmp, final)
        if here(kind + "-renamed"):        # faiss: renamed, manifest not yet written
            die()
    def connect_(path, readonly=False):
        conn = connect(path, readonly=readonly)
        if point == "sql":                 # before the nth statement starting with `match`
            seen = [0]
            def trace(sql):
                if sql.lstrip().upper().startswith(cmd["match"]):
                    seen[0] += 1
                    if seen[0] == cmd["nth"]:
                        die()
            conn.set_trace_callback(trace)
        return conn
    store.IndexWriter.commit = commit_
    store.faiss.write_index = write_index_
    store._fsync_replace = replace_
    schema.connect = connect_

def run(cmd):
    patch(cmd)
    if cmd.get("embedder") == "real":
        from assistant.embedder import shared_embedder
        embedder, config = shared_embedder(), ChunkerConfig()
    else:
        embedder, config = FakeEmbedder(), ChunkerConfig(**cmd["chunking"])
    pipeline = pl.Pipeline(embedder, chunker_config=config)
    emit("ready")
    result = pipeline.run([cmd["corpus"]], Path(cmd["index"]), on_file=lambda r: emit("file", r.status))
    emit("done", result.chunks_total)

if sys.argv[1] == "once":
    run(json.loads(sys.argv[2]))
    sys.exit(0)
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        try:
            run(json.loads(line))
        except BaseException as exc:
            emit("error", repr(exc).replace("\n", " "))
            os._exit(3)
        os._exit(0)
    emit("pid", pid)
    emit("exit", pid, os.waitpid(pid, 0)[1])
'''


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


# --------------------------------------------------------------------------- the driver
@dataclass
class Run:
    events: list[list[str]]
    status: int

    @property
    def killed(self) -> bool:
        return os.WIFSIGNALED(self.status) and os.WTERMSIG(self.status) == signal.SIGKILL

    @property
    def completed(self) -> bool:
        return os.WIFEXITED(self.status) and os.WEXITSTATUS(self.status) == 0

    @property
    def moment(self) -> tuple[int, int]:
        """(files finished, commits finished) when it died."""
        return (sum(e[0] == "file" for e in self.events), sum(e[0] == "committed" for e in self.events))


class Zygote:
    """The forking driver: one ``python -c`` process, one fork per run."""

    def __init__(self, log: Path) -> None:
        self._err = log.open("w")
        self.proc = subprocess.Popen([sys.executable, "-c", DRIVER, "zygote"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._err, text=True, env=_env())
        self._lines: queue.Queue[list[str]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.split())

    def _next(self) -> list[str]:
        try:
            return self._lines.get(timeout=60)
        except queue.Empty:
            raise AssertionError(f"driver silent for 60 s; see {self._err.name}") from None

    def run(self, cmd: dict, kill_after: float | None = None) -> Run:
        """Run ``cmd`` in a fresh child; SIGKILL it ``kill_after`` seconds after it is ready."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        events: list[list[str]] = []
        pid = ready = None
        while pid is None or ready is None:
            ev = self._next()
            events.append(ev)
            if ev[0] == "pid":
                pid = int(ev[1])
            elif ev[0] == "ready":
                ready = time.monotonic()
            elif ev[0] == "exit":
                break
        if kill_after is not None and events[-1][0] != "exit":
            time.sleep(max(0.0, ready + kill_after - time.monotonic()))
            try:  # the driver's child; pids are not reused within milliseconds
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it finished first (and was reaped): its "exit" event follows
        while events[-1][0] != "exit":
            events.append(self._next())
        errors = [" ".join(e) for e in events if e[0] == "error"]
        assert not errors, errors
        return Run(events, int(events[-1][2]))

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self._err.close()


# --------------------------------------------------------------------------- corpus and checks
_WORDS = ("revenue margin contract party clause notice term license patient dose trial "
          "liability indemnity warranty payment invoice quarter segment cash asset audit "
          "risk delivery breach consent data privacy escrow royalty supplier customer").split()


def _make_corpus(root: Path, seed: int, n: int = N_FILES) -> Path:
    rnd = random.Random(seed)
    for i in range(n):
        sub = root / ("sub" if i % 4 == 0 else "")
        sub.mkdir(parents=True, exist_ok=True)
        paras = []
        for _ in range(rnd.randint(2, 6)):
            sentences = [" ".join(rnd.choice(_WORDS) for _ in range(rnd.randint(6, 16))).capitalize() + "."
                         for _ in range(rnd.randint(2, 7))]
            paras.append(" ".join(sentences))
        suffix = ".md" if i % 5 == 0 else ".txt"
        head = f"# Document {i}\n\n" if suffix == ".md" else f"SECTION {i}\n\n"
        (sub / f"doc{i:02d}{suffix}").write_text(head + "\n\n".join(paras) + "\n", encoding="utf-8")
    (root / "empty.txt").write_text("   \n", encoding="utf-8")  # fails and is rolled back every run
    return root


def _cmd(corpus: Path, index: Path, **extra: object) -> dict:
    return {"corpus": str(corpus), "index": str(index), "chunking": CHUNKING, "every": COMMIT_EVERY, **extra}


def _rerun(corpus: Path, index: Path) -> None:
    result = Pipeline(FakeEmbedder(), chunker_config=ChunkerConfig(**CHUNKING)).run([corpus], index)
    assert [f.source for f in result.failed] == ["empty.txt"]
    assert result.count("added") + result.count("updated") + result.count("unchanged") == N_FILES


def _fts_ok(index: Path, scratch: Path) -> None:
    """FTS5 integrity-check (needs a writable connection, so on a copy)."""
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    for name in (SQLITE, SQLITE + "-wal"):
        if (index / name).exists():
            shutil.copy(index / name, scratch / name)
    conn = sqlite3.connect(scratch / SQLITE)
    try:
        conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')")
    finally:
        conn.close()


def check_index(index: Path, scratch: Path) -> dict[str, list[str]]:
    """Assert the index is whole; return each document's chunk texts in order."""
    try:
        store = IndexStore.open(index)
    except IndexNotFound:
        # Only before the first commit (the index was never complete): the previous state.
        assert not (index / MANIFEST).exists(), "a committed index must open"
        return {}
    with store:
        conn = store._conn
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        chunk_ids = [r[0] for r in conn.execute("SELECT id FROM chunks ORDER BY id")]
        faiss_ids = np.sort(faiss.vector_to_array(store._vectors.id_map)).tolist()
        assert store._vectors.ntotal == len(faiss_ids) and faiss_ids == chunk_ids
        assert conn.execute("SELECT count(*) FROM chunks c LEFT JOIN documents d ON d.id = c.doc_id "
                            "WHERE d.id IS NULL").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM pages p LEFT JOIN documents d ON d.id = p.doc_id "
                            "WHERE d.id IS NULL").fetchone()[0] == 0
        texts: dict[str, list[str]] = {}
        for doc_id, source in conn.execute("SELECT id, source FROM documents"):
            rows = conn.execute("SELECT ord, text FROM chunks WHERE doc_id = ? ORDER BY ord", (doc_id,)).fetchall()
            assert [r[0] for r in rows] == list(range(len(rows))) and rows, f"{source} is not whole"
            assert conn.execute("SELECT count(*) FROM pages WHERE doc_id = ?", (doc_id,)).fetchone()[0] >= 1
            texts[source] = [r[1] for r in rows]
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'docs_fts'").fetchone():
            heads = {r[0] for r in conn.execute("SELECT rowid FROM docs_fts")}
            assert heads == {r[0] for r in conn.execute("SELECT id FROM documents")}
        if chunk_ids:  # the vectors are the chunks' own, not only their ids
            probe = chunk_ids[:: max(1, len(chunk_ids) // 5)]
            by_id = dict(conn.execute(f"SELECT id, vector FROM chunks WHERE id IN ({','.join('?' * len(probe))})", probe))
            for cid in probe:
                assert np.array_equal(store._vectors.reconstruct(cid), np.frombuffer(by_id[cid], dtype=np.float32))
    if (index / MANIFEST).exists():
        manifest = json.loads((index / MANIFEST).read_text(encoding="utf-8"))  # never torn
        assert manifest["embedder"]["id"] == "fake/fake"
    _fts_ok(index, scratch)
    return texts


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("crash")


@pytest.fixture(scope="module")
def zygote(work: Path) -> Iterator[Zygote]:
    z = Zygote(work / "driver.stderr")
    yield z
    z.close()


@dataclass(frozen=True)
class Clean:
    corpus: Path
    index: Path
    texts: dict[str, list[str]]
    seconds: float
    commits: int

    @property
    def chunks(self) -> int:
        return sum(len(t) for t in self.texts.values())


@pytest.fixture(scope="module")
def clean(zygote: Zygote, work: Path) -> Clean:
    """A clean run, in the driver, with the same commit cadence as the killed runs."""
    corpus = _make_corpus(work / "corpus", seed=1)
    index = work / "clean-index"
    started = time.monotonic()
    run = zygote.run(_cmd(corpus, index))
    seconds = time.monotonic() - started
    assert run.completed, run.events
    texts = check_index(index, work / "scratch")
    assert len(texts) == N_FILES
    return Clean(corpus, index, texts, seconds, run.moment[1])


@pytest.fixture(scope="module")
def updated(clean: Clean, work: Path) -> Clean:
    """The same corpus with a third of its files changed, and its clean index."""
    corpus = work / "corpus-v2"
    shutil.copytree(clean.corpus, corpus)
    changed = sorted(p for p in corpus.rglob("doc*"))[::3]
    for i, path in enumerate(changed):
        path.write_text(path.read_text(encoding="utf-8") + f"\nAddendum {i}: the escrow clause changes.\n" * (i % 3 + 1),
                        encoding="utf-8")
    index = work / "clean-index-v2"
    shutil.copytree(clean.index, index)
    _rerun(corpus, index)
    texts = check_index(index, work / "scratch")
    assert sum(texts[s] != clean.texts[s] for s in texts) == len(changed)
    return Clean(corpus, index, texts, clean.seconds, clean.commits)


def _after_kill(run: Run, index: Path, corpus: Path, allowed: list[dict[str, list[str]]], final: Clean,
                scratch: Path) -> None:
    texts = check_index(index, scratch)
    for source, chunks in texts.items():
        assert any(chunks == a.get(source) for a in allowed), f"{source}: neither the old nor the new version"
    _rerun(corpus, index)
    assert check_index(index, scratch) == final.texts


# --------------------------------------------------------------------------- tests
def test_sigkill_at_random_moments(zygote: Zygote, clean: Clean, work: Path) -> None:
    rnd = random.Random(20240611)
    span = clean.seconds  # delays spread over a clean run's duration
    moments: list[object] = []
    for i in range(40):
        if len(moments) - moments.count("completed") == 24:
            break
        index = work / f"random-{i}"
        run = zygote.run(_cmd(clean.corpus, index), kill_after=rnd.uniform(0.0, 0.95) * span)
        assert run.killed or run.completed
        moments.append(run.moment if run.killed else "completed")
        if run.completed:  # the machine got faster than when the clean run was timed
            span *= 0.8
        _after_kill(run, index, clean.corpus, [clean.texts], clean, work / "scratch")
        shutil.rmtree(index)
    killed = [m for m in moments if m != "completed"]
    print(f"clean run {clean.seconds:.2f} s, {clean.commits} commits; killed at (files, commits): {moments}")
    assert len(killed) == 24 and len(set(killed)) >= 8, moments


def test_sigkill_while_updating_changed_files(zygote: Zygote, clean: Clean, updated: Clean, work: Path) -> None:
    rnd = random.Random(7)
    for i in range(8):
        index = work / f"update-{i}"
        shutil.copytree(clean.index, index)
        run = zygote.run(_cmd(updated.corpus, index), kill_after=rnd.uniform(0.0, 0.5) * clean.seconds)
        _after_kill(run, index, updated.corpus, [clean.texts, updated.texts], updated, work / "scratch")
        shutil.rmtree(index)


# (point, commit number): commit 1 creates the index, "last" is the one in close().
INSIDE_COMMIT = [
    ("commit-start", 3), ("commit-start", "last"),
    ("faiss-write-start", 1), ("faiss-write-start", 3), ("faiss-write-start", "last"),
    ("faiss-tmp-partial", 1), ("faiss-tmp-partial", 5), ("faiss-tmp-partial", "last"),
    ("faiss-before-rename", 4), ("faiss-before-rename", "last"),
    ("faiss-renamed", 1), ("faiss-renamed", 3), ("faiss-renamed", "last"),
    ("manifest-before-rename", 1), ("manifest-before-rename", 3), ("manifest-before-rename", "last"),
    ("manifest-renamed", 3), ("manifest-renamed", "last"),
]
# Before SQLite statements: the nth COMMIT (the 1st creates the index), the creation of
# the index between its tables and its metadata, and half-way through writing that metadata.
BEFORE_SQL = [("COMMIT", 1), ("COMMIT", 4), ("INSERT OR REPLACE INTO META", 1), ("INSERT OR REPLACE INTO META", 4)]


@pytest.mark.parametrize(("point", "commit"), INSIDE_COMMIT, ids=[f"{p}@{c}" for p, c in INSIDE_COMMIT])
def test_sigkill_inside_commit(zygote: Zygote, clean: Clean, updated: Clean, work: Path, point: str,
                               commit: int | str) -> None:
    at = clean.commits if commit == "last" else commit
    index = work / f"{point}-{commit}"
    run = zygote.run(_cmd(clean.corpus, index, point=point, commit=at))
    assert run.killed and run.moment[1] == at - 1, run.events
    _after_kill(run, index, clean.corpus, [clean.texts], clean, work / "scratch")
    if point in ("faiss-write-start", "faiss-renamed") and commit == 3:
        # The same moment while changed files replace their chunks (FAISS removals pending).
        shutil.rmtree(index)
        shutil.copytree(clean.index, index)
        run = zygote.run(_cmd(updated.corpus, index, point=point, commit=2))
        assert run.killed, run.events
        _after_kill(run, index, updated.corpus, [clean.texts, updated.texts], updated, work / "scratch")
    shutil.rmtree(index)


@pytest.mark.parametrize(("match", "nth"), BEFORE_SQL, ids=[f"{m.split()[0]}#{n}" for m, n in BEFORE_SQL])
def test_sigkill_before_sqlite_statement(zygote: Zygote, clean: Clean, work: Path, match: str, nth: int) -> None:
    index = work / f"sql-{match.split()[0]}-{nth}"
    run = zygote.run(_cmd(clean.corpus, index, point="sql", match=match, nth=nth))
    assert run.killed, run.events
    _after_kill(run, index, clean.corpus, [clean.texts], clean, work / "scratch")
    shutil.rmtree(index)


def test_sigkill_while_the_index_file_is_created(clean: Clean, work: Path) -> None:
    """A kill inside the first ``PRAGMA journal_mode=WAL`` leaves a hot rollback journal.

    Found by the random kills (about 1 in 100): a read-only open then failed with
    "attempt to write a readonly database", as only a writer may roll the journal
    back. Rebuilt here deterministically: a first transaction cut by SIGKILL after
    its journal is on disk.
    """
    index = work / "hot-journal"
    index.mkdir()
    code = ("import os, signal, sqlite3, sys\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('PRAGMA cache_size=1')\n"  # spill to the file: the journal becomes hot
            "c.execute('BEGIN')\n"
            "c.execute('CREATE TABLE filler(x)')\n"
            "c.executemany('INSERT INTO filler VALUES (?)', [('x' * 500,)] * 200)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(index / SQLITE)], env=_env())
    assert proc.returncode == -signal.SIGKILL and (index / (SQLITE + "-journal")).stat().st_size > 0
    with pytest.raises(IndexNotFound, match="never completed"):
        IndexStore.open(index)
    _rerun(clean.corpus, index)
    assert check_index(index, work / "scratch") == clean.texts


@needs_shared
def test_sigkill_with_the_real_embedder(tmp_path: Path) -> None:
    """Real PDFs and MiniLM: killed while embedding the second file, a re-run completes."""
    from assistant.embedder import shared_embedder
    from ingest.loaders import open_document

    corpus = tmp_path / "pdfs"
    corpus.mkdir()
    names = ["GALACTICOMMTECHNOLOGIESINC_11_07_1997-EX-10.46-WEB HOSTING AGREEMENT.PDF",  # 1 page
             "TICKETSCOMINC_06_22_1999-EX-10.22-SPONSORSHIP AGREEMENT.PDF",  # 2 pages
             "MphaseTechnologiesInc_20030911_10-K_EX-10.15_1560667_EX-10.15_Co-Branding Agreement.pdf"]  # 3
    for i, name in enumerate(names):
        shutil.copy(CORPORA / "legal" / "cuad-dev" / name, corpus / f"{i}-{name}")
    index = tmp_path / "index"
    cmd = {"corpus": str(corpus), "index": str(index), "embedder": "real", "every": 1}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, "once", json.dumps(cmd)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=_env())
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # kill right after the first file is committed: mid-run
        seen.append(line.split())
        if seen[-1][0] == "committed" and any(e[0] == "file" for e in seen):
            proc.send_signal(signal.SIGKILL)
            break
    assert proc.wait(timeout=120) == -signal.SIGKILL, seen
    with IndexStore.open(index) as store:
        sources = [d["source"] for d in store.documents()]
        assert store._vectors.ntotal == store.stats()["chunks"]
    assert 1 <= len(sources) < len(names)

    embedder = shared_embedder()
    result = Pipeline(embedder).run([corpus], index)
    assert result.ok and result.count("unchanged") == len(sources) and result.count("added") == len(names) - len(sources)
    chunker = Pipeline(embedder).chunker
    expected = 0
    for path in sorted(corpus.iterdir()):
        chunker.reset()
        with open_document(path, path.name) as reader:
            expected += sum(len(chunker.split(page)) for page in reader.pages())
    with IndexStore.open(index, embedder_id=embedder.id, dim=embedder.dim) as store:
        assert store.stats()["chunks"] == expected == result.chunks_total
        ids = np.sort(faiss.vector_to_array(store._vectors.id_map)).tolist()
        assert ids == [r[0] for r in store._conn.execute("SELECT id FROM chunks ORDER BY id")]


def test_writer_lock_across_processes(tmp_path: Path, text_corpus: Path) -> None:
    index = tmp_path / "index"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys\nfrom assistant.index import IndexWriter\n"
         f"w = IndexWriter({str(index)!r}, embedder_id='fake/fake', dim=64, chunking={{}}, domain='general')\n"
         "print('locked', flush=True)\nsys.stdin.read()\nw.close()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env())
    assert holder.stdout is not None and holder.stdin is not None
    try:
        assert holder.stdout.readline().strip() == "locked"
        slm = Path(sys.executable).with_name("slm")
        out = subprocess.run([str(slm), "ingest", str(text_corpus), "--index", str(index), "--no-progress"],
                             capture_output=True, text=True, env=_env(), timeout=120)
        assert out.returncode != 0
        assert "being written by another process" in out.stdout + out.stderr
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
    # Released at exit: the next writer gets in.
    result = Pipeline(FakeEmbedder(), chunker_config=ChunkerConfig(**CHUNKING)).run([text_corpus], index)
    assert result.ok and result.count("added") == 3

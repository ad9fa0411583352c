"""The on-disk index: SQLite (authoritative) + FAISS (fast copy of the vectors) + manifest.

Crash safety: SQLite commits atomically (WAL, synchronous=FULL) and holds every
vector, so it is the source of truth. After each SQLite commit the FAISS file is
rewritten beside the old one, fsynced and renamed over it. On open the FAISS ids
are compared with the SQLite chunk ids; if a crash left them apart, FAISS is
rebuilt from SQLite. Either way a reader sees the previous or the new index.

An open store follows later commits (of any process): each search runs in a
:meth:`IndexStore.snapshot`, which first brings the FAISS copy to that state.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faiss  # type: ignore[import-untyped]
import numpy as np
from filelock import FileLock, Timeout

from assistant.errors import IndexLocked, IndexMismatch, IndexNotFound
from assistant.index import schema
from assistant.index.schema import ChunkRow
from assistant.index.vectors import VECTORS, load_vectors

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SQLITE = "chunks.sqlite"
LOCK = ".lock"


def _fsync_replace(tmp: Path, final: Path) -> None:
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class IndexStore:
    """Read access to one index folder. Safe to share between threads."""

    def __init__(self, directory: Path, conn: sqlite3.Connection, vectors: Any, meta: dict[str, str]) -> None:
        self.directory = directory
        self._conn = conn
        self._vectors = vectors
        self.embedder_id = meta["embedder_id"]
        self.dim = int(meta["embedder_dim"])
        self.meta = meta
        self._snapshot_lock = threading.RLock()
        self._data_version: int | None = None  # SQLite's change counter when FAISS was last matched to it

    # -- opening ---------------------------------------------------------------
    @classmethod
    def open(cls, directory: str | Path, *, embedder_id: str | None = None, dim: int | None = None) -> IndexStore:
        """Open an existing index for reading.

        Raises:
            IndexNotFound: no index in ``directory``.
            IndexMismatch: built with another embedder than ``embedder_id``/``dim``.
        """
        directory = Path(directory)
        db = directory / SQLITE
        if not db.is_file():
            raise IndexNotFound(
                f"no index at {directory}; build one with `slm ingest PATH --index {directory}`"
            )
        conn = schema.connect(db, readonly=True)
        try:
            meta = schema.get_meta(conn)
        except sqlite3.OperationalError as exc:
            # Killed while the first ingest was creating the file: no tables yet, or the
            # hot rollback journal of the switch to WAL, which only a writer may roll back.
            if "no such table" not in str(exc) and not (directory / (SQLITE + "-journal")).exists():
                conn.close()
                raise
            meta = {}
        if not meta:
            conn.close()
            raise IndexNotFound(
                f"the index at {directory} was never completed (its first ingest was interrupted); "
                f"run `slm ingest PATH --index {directory}` again"
            )
        check_compatible(directory, meta, embedder_id, dim)
        vectors = load_vectors(directory, conn, int(meta["embedder_dim"]))
        return cls(directory, conn, vectors, meta)

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one committed state of the index, SQLite and FAISS alike.

        A writer (another process, or an upload in the UI) may commit at any time:
        without a snapshot, a search mixed the FAISS vectors loaded at open with
        newer SQLite rows and failed on a chunk id FAISS did not have. Snapshots of
        one store take turns (they last one search, milliseconds).
        """
        with self._snapshot_lock:
            if self._conn.in_transaction:  # nested in this thread's snapshot
                yield
                return
            self._conn.execute("BEGIN")
            try:
                self._conn.execute("SELECT 1 FROM meta LIMIT 1").fetchall()  # the snapshot starts at this read
                version = self._conn.execute("PRAGMA data_version").fetchone()[0]
                if version != self._data_version:  # a commit since FAISS was checked (or never checked)
                    self._vectors = load_vectors(self.directory, self._conn, self.dim, current=self._vectors)
                    self._data_version = version
                yield
            finally:
                if self._conn.in_transaction:  # not after SQLite rolled back on an error of its own
                    self._conn.execute("COMMIT")

    def __enter__(self) -> IndexStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries ---------------------------------------------------------------
    def doc_ids_for(self, patterns: Sequence[str]) -> list[int] | None:
        """Document ids whose source matches any glob pattern (None: no filter)."""
        if not patterns:
            return None
        rows = self._conn.execute("SELECT id, source FROM documents").fetchall()
        return [i for i, s in rows if any(fnmatch.fnmatch(s, p) or s == p for p in patterns)]

    def dense_search(self, vector: np.ndarray, n: int, doc_ids: Sequence[int] | None = None) -> list[tuple[int, float]]:
        """Inner product (cosine on unit vectors) search. Returns (chunk_id, score)."""
        query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        if doc_ids is None:
            if self._vectors.ntotal == 0:
                return []
            scores, ids = self._vectors.search(query, min(n, self._vectors.ntotal))
            return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
        ids = schema.chunk_ids_of(self._conn, doc_ids)
        if not len(ids):
            return []
        params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(ids))
        scores, found = self._vectors.search(query, min(n, len(ids)), params=params)
        return [(int(i), float(s)) for i, s in zip(found[0], scores[0], strict=True) if i >= 0]

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored (unit) vectors of some chunks, in the order given."""
        if not ids:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vectors.reconstruct(int(i)) for i in ids])

    def lexical_search(self, text: str, n: int, doc_ids: Sequence[int] | None = None) -> list[tuple[int, float]]:
        return schema.lexical_search(self._conn, text, n, doc_ids)

    def document_search(self, text: str, n: int) -> list[tuple[int, float]]:
        return schema.document_search(self._conn, text, n)

    def document_meta(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        if not ids:
            return {}
        rows = self._conn.execute(f"SELECT id, meta FROM documents WHERE id IN ({','.join('?' * len(ids))})", list(ids))
        return {i: json.loads(m) for i, m in rows}

    def source_ids(self) -> dict[str, int]:
        return dict(self._conn.execute("SELECT source, id FROM documents"))

    def chunks(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        return schema.chunk_rows(self._conn, ids)

    def page_text(self, source: str, page: int | None) -> str | None:
        row = self._conn.execute(
            "SELECT p.text FROM pages p JOIN documents d ON d.id = p.doc_id WHERE d.source = ? AND p.page = ?",
            (source, schema.WHOLE_FILE_PAGE if page is None else page),
        ).fetchone()
        return row[0] if row else None

    def documents(self) -> list[dict[str, Any]]:
        return list(schema.iter_documents(self._conn))

    def stats(self) -> dict[str, Any]:
        c = self._conn
        size = sum(p.stat().st_size for p in self.directory.iterdir() if p.is_file())
        return {
            "index": str(self.directory),
            "documents": c.execute("SELECT count(*) FROM documents").fetchone()[0],
            "pages": c.execute("SELECT coalesce(sum(coalesce(pages, 1)), 0) FROM documents").fetchone()[0],
            "chunks": c.execute("SELECT count(*) FROM chunks").fetchone()[0],
            "size_bytes": size,
            "embedder": self.embedder_id,
            "dim": self.dim,
            "domain": self.meta.get("domain", "general"),
            "chunking": json.loads(self.meta.get("chunking", "{}")),
            "updated": self.meta.get("updated"),
        }


def check_compatible(directory: Path, meta: dict[str, str], embedder_id: str | None, dim: int | None) -> None:
    if int(meta.get("schema", "0")) != schema.SCHEMA_VERSION:
        raise IndexMismatch(
            f"index {directory} has schema {meta.get('schema')} but this version reads {schema.SCHEMA_VERSION}; re-ingest into a new index"
        )
    if (embedder_id and meta.get("embedder_id") != embedder_id) or (dim and int(meta.get("embedder_dim", 0)) != dim):
        raise IndexMismatch(
            f"index {directory} was built with embedder {meta.get('embedder_id')} (dim {meta.get('embedder_dim')}) "
            f"but the assistant is configured with {embedder_id} (dim {dim}); set embedder.path to the "
            "index's embedder or re-ingest into a new index folder"
        )


class IndexWriter:
    """Exclusive write access to an index folder (creates it if needed).

    Use as a context manager; changes become visible at :meth:`commit`.
    """

    def __init__(self, directory: str | Path, *, embedder_id: str, dim: int, chunking: dict[str, Any], domain: str) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise IndexNotFound(f"cannot create index folder {self.directory}: {exc.strerror}; choose another --index") from None
        self._lock = FileLock(str(self.directory / LOCK), timeout=0)
        try:
            self._lock.acquire()
        except Timeout:
            raise IndexLocked(
                f"index {self.directory} is being written by another process; wait for it to finish"
            ) from None
        for stale in self.directory.glob("*.tmp"):
            stale.unlink()
        db = self.directory / SQLITE
        self._conn = schema.connect(db)
        try:
            os.chmod(db, 0o600)
            # The metadata goes in one transaction: a SIGKILL while an index is being
            # created must not leave some keys written and others missing (autocommit
            # did, and every later ingest then failed on the missing key).
            self._conn.execute("BEGIN IMMEDIATE")
            meta = schema.get_meta(self._conn)
            new = not meta  # a new index, or one whose creation was interrupted
            if new:
                now = _now()
                meta = {
                    "schema": str(schema.SCHEMA_VERSION), "embedder_id": embedder_id, "embedder_dim": str(dim),
                    "normalized": "true", "chunking": json.dumps(chunking, sort_keys=True), "domain": domain,
                    "created": now, "updated": now,
                }
                schema.set_meta(self._conn, meta)
            check_compatible(self.directory, meta, embedder_id, dim)
            self.meta = meta
            self._chunking = {"chunking": json.dumps(chunking, sort_keys=True), "domain": domain}
            # Documents were cut with other settings: unchanged files must be re-chunked.
            self.rechunk = any(meta.get(k) != v for k, v in self._chunking.items())
            self.dim = dim
            self._vectors = load_vectors(self.directory, self._conn, dim)
        except BaseException:
            self._conn.close()  # rolls back; and the lock must not outlive a failed open
            self._lock.release()
            raise
        self._pending_removals: list[np.ndarray] = []
        self._added: list[int] = []
        self._dirty = False
        if new:
            self.commit()

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(commit=exc_type is None)

    @property
    def conn(self) -> sqlite3.Connection:
        return self._conn

    def document_sha(self, source: str) -> str | None:
        row = self._conn.execute("SELECT sha256 FROM documents WHERE source = ?", (source,)).fetchone()
        return row[0] if row else None

    def sources(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT source FROM documents ORDER BY source")]

    def delete_document(self, source: str) -> bool:
        row = self._conn.execute("SELECT id FROM documents WHERE source = ?", (source,)).fetchone()
        if row is None:
            return False
        ids = np.asarray([r[0] for r in self._conn.execute("SELECT id FROM chunks WHERE doc_id = ?", row)], dtype=np.int64)
        self._conn.execute("DELETE FROM documents WHERE id = ?", row)
        # FAISS removal waits for the savepoint/commit so a failed document can be undone.
        self._pending_removals.append(ids)
        self._dirty = True
        return True

    def add_document(self, source: str, *, sha256: str, mtime: float, size: int, kind: str, pages: int | None, meta: dict[str, Any]) -> int:
        """Insert a document row, replacing any previous version of ``source``."""
        self.delete_document(source)
        cur = self._conn.execute(
            "INSERT INTO documents(source, sha256, mtime, size, kind, pages, meta) VALUES (?,?,?,?,?,?,?)",
            (source, sha256, mtime, size, kind, pages, json.dumps(meta, ensure_ascii=False)),
        )
        self._dirty = True
        return int(cur.lastrowid or 0)

    def add_page(self, doc_id: int, page: int | None, text: str) -> None:
        self._conn.execute(
            "INSERT INTO pages(doc_id, page, text) VALUES (?,?,?)",
            (doc_id, schema.WHOLE_FILE_PAGE if page is None else page, text),
        )

    def add_chunks(self, doc_id: int, rows: Sequence[tuple[int, int | None, int, int, str | None, str]], vectors: np.ndarray) -> None:
        ids = schema.insert_chunks(self._conn, doc_id, rows, vectors)
        if ids:
            self._vectors.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
            self._added.extend(ids)
        self._dirty = True

    def record_chunking(self) -> None:
        """Note in the index that every document now follows this writer's chunking."""
        schema.set_meta(self._conn, self._chunking)
        self.meta.update(self._chunking)
        self.rechunk = False

    def set_document_head(self, doc_id: int, head: str) -> None:
        """The text that names a document (file name, metadata, opening lines), for document search."""
        self._conn.execute("INSERT INTO docs_fts(rowid, head) VALUES (?, ?)", (doc_id, head))

    def savepoint(self) -> None:
        """Start a unit that :meth:`rollback_to_savepoint` can undo (one document)."""
        self._apply_removals()
        self._added = []
        self._conn.execute("SAVEPOINT doc")

    def release_savepoint(self) -> None:
        self._conn.execute("RELEASE SAVEPOINT doc")
        self._apply_removals()
        self._added = []

    def rollback_to_savepoint(self) -> None:
        """Undo the current document: its SQLite rows and the vectors it added."""
        self._conn.execute("ROLLBACK TO SAVEPOINT doc")
        self._conn.execute("RELEASE SAVEPOINT doc")
        if self._added:
            self._vectors.remove_ids(faiss.IDSelectorBatch(np.asarray(self._added, dtype=np.int64)))
        self._added = []
        self._pending_removals = []  # the deletions were rolled back too

    def _apply_removals(self) -> None:
        for ids in self._pending_removals:
            if len(ids):
                self._vectors.remove_ids(faiss.IDSelectorBatch(ids))
        self._pending_removals = []

    def commit(self) -> None:
        """Make every change since the last commit durable and visible, atomically."""
        self._apply_removals()
        now = _now()
        schema.set_meta(self._conn, {"updated": now})
        self._conn.execute("COMMIT")
        tmp = self.directory / (VECTORS + ".tmp")
        faiss.write_index(self._vectors, str(tmp))
        os.chmod(tmp, 0o600)
        _fsync_replace(tmp, self.directory / VECTORS)
        self._write_manifest(now)
        self._dirty = False
        self._conn.execute("BEGIN IMMEDIATE")

    def _write_manifest(self, now: str) -> None:
        c = self._conn
        manifest = {
            "schema": schema.SCHEMA_VERSION,
            "embedder": {"id": self.meta["embedder_id"], "dim": self.dim, "normalized": True},
            "chunking": json.loads(self.meta["chunking"]),
            "domain": self.meta.get("domain", "general"),
            "counts": {
                "documents": c.execute("SELECT count(*) FROM documents").fetchone()[0],
                "chunks": c.execute("SELECT count(*) FROM chunks").fetchone()[0],
            },
            "created": self.meta.get("created"),
            "updated": now,
        }
        tmp = self.directory / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o600)
        _fsync_replace(tmp, self.directory / MANIFEST)

    def close(self, *, commit: bool = True) -> None:
        if self._conn is None:
            return
        try:
            if commit and self._dirty:
                self.commit()
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._conn.close()
            self._conn = None  # type: ignore[assignment]
            self._lock.release()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

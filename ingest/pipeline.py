"""The ingestion pipeline: discover -> load -> chunk -> embed -> commit."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from assistant.embedder import Embedder
from assistant.errors import IngestError
from assistant.index import IndexWriter
from assistant.redaction import redact
from assistant.types import Chunk, Page
from ingest.chunking import Chunker, ChunkerConfig
from ingest.document import one_line
from ingest.loaders import SUPPORTED_SUFFIXES, open_document

log = logging.getLogger(__name__)

Status = Literal["added", "updated", "unchanged", "failed", "skipped", "deleted"]
EMBED_BLOCK = 256  # chunks embedded together: enough to group by length, little memory
EMBED_BATCH = 32  # chunks per embedder call within a block (the default embedder batch size)
COMMIT_EVERY_CHUNKS = 5000
COMMIT_EVERY_S = 60.0
HEAD_CHARS = 600  # opening text kept for document search: title block, parties, cover page
MetadataHook = Callable[[str, str, dict[str, str]], dict[str, Any]]


@dataclass(frozen=True)
class FileResult:
    """What happened to one file."""

    source: str
    status: Status
    pages: int | None = None
    chunks: int = 0
    reason: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class IngestResult:
    """The outcome of one ingestion run."""

    index_dir: Path
    files: tuple[FileResult, ...]
    seconds: float
    chunks_total: int = 0

    def count(self, status: Status) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def failed(self) -> tuple[FileResult, ...]:
        return tuple(f for f in self.files if f.status == "failed")

    @property
    def ok(self) -> bool:
        """True when every file made it (skipped files are not failures)."""
        return not self.failed

    @property
    def pages(self) -> int:
        return sum(f.pages or 1 for f in self.files if f.status in ("added", "updated"))  # a text file is one page

    @property
    def chunks(self) -> int:
        return sum(f.chunks for f in self.files if f.status in ("added", "updated"))


@dataclass(frozen=True)
class Candidate:
    path: Path
    source: str
    explicit: bool  # named on the command line (vs found in a folder)


@dataclass
class _Progress:
    on_file: Callable[[FileResult], None] = lambda r: None
    on_chunks: Callable[[int], None] = lambda n: None
    pending_chunks: int = 0
    last_commit: float = field(default_factory=time.monotonic)


def discover(paths: Iterable[str | Path]) -> tuple[list[Candidate], list[FileResult]]:
    """Files to ingest under ``paths``, and the paths that are unusable.

    A file's source is its path relative to the folder given (or its name when a
    file is given), with ``/`` separators; bytes that are not UTF-8 and control
    characters in it are written as ``\\xNN`` escapes (see :func:`source_name`).
    Symlinked folders are not followed (no loops) but reported as skipped; hidden
    files are ignored.
    """
    found: dict[str, Candidate] = {}
    names: dict[str, str] = {}  # source -> the name it was made from
    problems: list[FileResult] = []

    def add(path: Path, name: str, explicit: bool) -> None:
        source = source_name(name)
        if names.setdefault(source, name) != name:  # two names that escape alike
            problems.append(FileResult(source, "failed", reason="another file has the same name once its special "
                                                                "characters are escaped; rename one of them"))
        found.setdefault(source, Candidate(path, source, explicit))

    for raw in paths:
        root = Path(raw)
        if root.is_dir():
            for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
                links = sorted(d for d in dirnames if not d.startswith(".") and os.path.islink(Path(dirpath, d)))
                for name in links:
                    source = source_name((Path(dirpath) / name).relative_to(root).as_posix())
                    problems.append(FileResult(source, "skipped", reason="a symbolic link to a folder is not followed; "
                                                                         "ingest the folder it points to"))
                dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in links)
                for name in sorted(filenames):
                    if not name.startswith("."):
                        path = Path(dirpath) / name
                        add(path, path.relative_to(root).as_posix(), explicit=False)
        elif root.exists() or root.is_symlink():
            add(root, root.name, explicit=True)
        else:
            reason = "no such file or folder; check the path"
            problems.append(FileResult(source_name(str(raw)), "failed", reason=reason))
    return list(found.values()), problems


def source_name(path: str) -> str:
    """``path`` as a source that SQLite can store and a terminal shows on one line.

    A name that is not valid UTF-8 reaches Python with its bytes as lone
    surrogates (which SQLite refuses); those, and control characters such as a
    newline, become ``\\xNN`` / ``\\uNNNN`` escapes. Other names are unchanged.
    """
    if path.isprintable():
        return path
    out = []
    for ch in path:
        if "\udc80" <= ch <= "\udcff":  # an undecodable byte (surrogateescape)
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp"):
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Pipeline:
    """Ingests files into one index with one embedder. Reusable across runs."""

    def __init__(
        self,
        embedder: Embedder,
        *,
        chunker_config: ChunkerConfig = ChunkerConfig(),
        domain: str = "general",
        metadata_hook: MetadataHook | None = None,
        redact: bool = False,
    ) -> None:
        self.embedder = embedder
        self.chunker = Chunker(embedder.count_tokens, embedder.max_tokens, chunker_config)
        self.domain = domain
        self.metadata_hook = metadata_hook
        self.redact = redact

    def _writer(self, index_dir: Path) -> IndexWriter:
        cfg = self.chunker.config
        return IndexWriter(
            index_dir,
            embedder_id=self.embedder.id,
            dim=self.embedder.dim,
            chunking={"chunk_tokens": cfg.chunk_tokens, "overlap_tokens": cfg.overlap_tokens,
                      "rules": hashlib.sha1(repr((cfg.separators, cfg.heading_patterns)).encode()).hexdigest()[:12],
                      "redact": self.redact},
            domain=self.domain,
        )

    def run(
        self,
        paths: Sequence[str | Path],
        index_dir: Path,
        *,
        prune: bool = False,
        on_file: Callable[[FileResult], None] | None = None,
        on_chunks: Callable[[int], None] | None = None,
    ) -> IngestResult:
        """Ingest ``paths`` (files or folders) into ``index_dir``.

        A file that fails is rolled back and reported; the rest is committed.
        """
        started = time.monotonic()
        candidates, results = discover(paths)
        progress = _Progress(on_file or (lambda r: None), on_chunks or (lambda n: None))
        for r in results:
            progress.on_file(r)
        with self._writer(index_dir) as writer:
            for cand in candidates:
                result = self._one(writer, cand, progress)
                results.append(result)
                progress.on_file(result)
                self._maybe_commit(writer, progress)
            seen = {c.source for c in candidates}
            if prune:
                for source in writer.sources():
                    if source not in seen and writer.delete_document(source):
                        results.append(FileResult(source, "deleted", reason="file is gone (--prune)"))
            if writer.rechunk and set(writer.sources()) <= seen:
                writer.record_chunking()  # every document was re-cut with the new settings
            total = writer.conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return IngestResult(Path(index_dir), tuple(results), time.monotonic() - started, total)

    def delete(self, sources: Sequence[str], index_dir: Path) -> IngestResult:
        """Remove documents by source from the index."""
        started = time.monotonic()
        results = []
        with self._writer(index_dir) as writer:
            for source in sources:
                if writer.delete_document(source):
                    results.append(FileResult(source, "deleted"))
                else:
                    results.append(FileResult(source, "failed", reason="not in the index; see `slm index list`"))
        return IngestResult(Path(index_dir), tuple(results), time.monotonic() - started)

    def _maybe_commit(self, writer: IndexWriter, progress: _Progress) -> None:
        # Commit in batches: a crash loses at most the last batch, which a re-run redoes.
        if progress.pending_chunks >= COMMIT_EVERY_CHUNKS or time.monotonic() - progress.last_commit > COMMIT_EVERY_S:
            writer.commit()
            progress.pending_chunks = 0
            progress.last_commit = time.monotonic()

    def _one(self, writer: IndexWriter, cand: Candidate, progress: _Progress) -> FileResult:
        started = time.monotonic()
        suffix = cand.path.suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES and not cand.explicit:
            return FileResult(cand.source, "skipped", reason=f"unsupported file type '{suffix or 'none'}'")
        try:
            sha = file_sha256(cand.path) if cand.path.is_file() else ""
        except OSError as exc:
            return FileResult(cand.source, "failed", reason=f"cannot read file: {exc.strerror}; check its permissions")
        previous = writer.document_sha(cand.source)
        if sha and previous == sha and not writer.rechunk:
            return FileResult(cand.source, "unchanged")
        writer.savepoint()
        try:
            pages, chunks = self._load_into(writer, cand, sha, progress.on_chunks)
        except IngestError as exc:
            writer.rollback_to_savepoint()
            return FileResult(cand.source, "failed", reason=one_line(exc.reason), seconds=time.monotonic() - started)
        except Exception as exc:  # noqa: BLE001 - one bad file must not abort the batch
            writer.rollback_to_savepoint()
            log.debug("unexpected failure on %s", cand.source, exc_info=True)
            reason = (f"could not be ingested ({type(exc).__name__}: {exc}); re-save or convert it, "
                      "and report this if it persists")
            return FileResult(cand.source, "failed", reason=one_line(reason), seconds=time.monotonic() - started)
        except BaseException:
            writer.rollback_to_savepoint()
            raise
        writer.release_savepoint()
        progress.pending_chunks += chunks
        status: Status = "updated" if previous else "added"
        return FileResult(cand.source, status, pages, chunks, seconds=time.monotonic() - started)

    def _load_into(self, writer: IndexWriter, cand: Candidate, sha: str,
                   on_chunks: Callable[[int], None]) -> tuple[int | None, int]:
        with open_document(cand.path, cand.source) as reader:  # first: it explains a missing or looping path
            stat = cand.path.stat()
            info = reader.info
            meta: dict[str, Any] = dict(info.meta)
            doc_id = writer.add_document(cand.source, sha256=sha, mtime=stat.st_mtime, size=stat.st_size,
                                         kind=info.kind, pages=info.page_count, meta=meta)
            self.chunker.reset()
            buffer: list[Chunk] = []
            n_chunks = 0
            n_pages = 0
            first_text = ""
            for page in reader.pages():
                if self.redact:
                    page = Page(page.number, redact(page.text))
                n_pages += 1
                if n_pages <= 2:
                    first_text += page.text
                writer.add_page(doc_id, page.number, page.text)
                buffer.extend(self.chunker.split(page))
                if len(buffer) >= EMBED_BLOCK:
                    n_chunks += self._flush(writer, doc_id, buffer, on_chunks)
                    buffer = []
            n_chunks += self._flush(writer, doc_id, buffer, on_chunks)
            if n_chunks == 0:
                raise IngestError(cand.source, "no text to index (empty or whitespace only)")
            if self.metadata_hook is not None:
                meta.update(self.metadata_hook(cand.source, first_text, dict(info.meta)) or {})
                writer.conn.execute("UPDATE documents SET meta = ? WHERE id = ?", (json.dumps(meta, ensure_ascii=False), doc_id))
            writer.set_document_head(doc_id, document_head(cand.source, meta, first_text))
        return info.page_count, n_chunks

    def _flush(self, writer: IndexWriter, doc_id: int, chunks: list[Chunk], on_chunks: Callable[[int], None]) -> int:
        if not chunks:
            return 0
        vectors = self._embed([c.text for c in chunks])
        writer.add_chunks(doc_id, [(c.ord, c.page, c.char_start, c.char_end, c.section, c.text) for c in chunks], vectors)
        on_chunks(len(chunks))
        return len(chunks)

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Embed in batches of texts of similar length in the model's own tokens.

        SentenceTransformer.encode groups its batches by characters, and characters
        per token vary widely in filings (tables of figures), so its batches of 10-Q
        chunks were ~30% padding. Grouping by token count first made embedding ~12%
        faster, with the same vectors (benchmarks/ingest.py).
        """
        order = sorted(range(len(texts)), key=lambda i: self.embedder.count_tokens(texts[i]))
        vectors = np.empty((len(texts), self.embedder.dim), dtype=np.float32)
        for start in range(0, len(order), EMBED_BATCH):
            batch = order[start:start + EMBED_BATCH]
            vectors[batch] = self.embedder.embed([texts[i] for i in batch])
        return vectors


def document_head(source: str, meta: dict[str, Any], first_text: str) -> str:
    """What names a document: its path words, metadata values and opening text.

    Questions often name their document ("In Apple's Q2 2023 10-Q", "the
    distributor agreement between Peregrine and Neon"); retrieval matches them here.
    """
    name = " ".join(w for w in re.split(r"[\W_]+", source) if w)
    values = " ".join(str(v) for v in meta.values() if isinstance(v, str | int | float))
    return f"{name}\n{values}\n{first_text[:HEAD_CHARS]}"

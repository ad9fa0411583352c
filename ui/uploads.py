"""Collections on disk and the uploaded files kept beside each index.

A collection is one index folder under the collections root. Uploaded files are
kept in its ``files/`` sub-folder so a citation's page can be rendered later:
the index records a document's ``source`` (the file name for an uploaded file),
not where the file lives.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from assistant.index.store import SQLITE
from ingest import SUPPORTED_SUFFIXES

FILES_DIR = "files"
STAGING_DIR = ".staging"  # hidden: ingesting files/ as a folder skips it
MAX_NAME_CHARS = 180
# File systems limit a name to 255 bytes, not characters: 180 CJK characters are
# 540. Staging also writes ".<name>.part", so 6 more bytes must fit.
MAX_NAME_BYTES = 240
ALLOWED_SUFFIXES = tuple(sorted(SUPPORTED_SUFFIXES))  # what ingest reads
INDEX_MARKER = SQLITE

_UNSAFE = re.compile(r"[^\w .,()\[\]&+@'-]", re.UNICODE)
_COLLECTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class UnsafeName(ValueError):
    """A file or collection name that cannot be used as given."""


def sanitize_filename(name: str) -> str:
    """The base name of an uploaded file, made safe to store.

    Directory parts (``/`` or ``\\``) are dropped, control and shell-special
    characters become ``_``, and hidden or empty names are refused.

    Raises:
        UnsafeName: nothing usable is left, or the name is hidden (``.x``).
    """
    base = unicodedata.normalize("NFC", name or "").replace("\\", "/").split("/")[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip()
    if not base or base in (".", ".."):
        raise UnsafeName(f"'{name}' has no usable file name")
    if base.startswith("."):
        raise UnsafeName(f"'{base}' is a hidden file; rename it without the leading dot")
    return _shorten(_UNSAFE.sub("_", base))


def _shorten(base: str) -> str:
    """Cut the stem (never the extension) to MAX_NAME_CHARS characters and MAX_NAME_BYTES bytes."""
    stem, dot, suffix = base.rpartition(".")
    if not dot or not stem or len(suffix) > 10:
        stem, dot, suffix = base, "", ""
    tail = dot + suffix
    cut = stem[: MAX_NAME_CHARS - len(tail)]
    while len((cut + tail).encode("utf-8")) > MAX_NAME_BYTES:
        cut = cut[:-1]
    return base if cut == stem else cut.rstrip() + tail  # rstrip: sanitizing it again must not change it


def check_suffix(name: str) -> None:
    """Raises UnsafeName unless ``name`` has a type the ingester reads."""
    if Path(name).suffix.lower() not in ALLOWED_SUFFIXES:
        kinds = ", ".join(s.lstrip(".") for s in ALLOWED_SUFFIXES)
        raise UnsafeName(f"'{name}' is not a supported type; upload {kinds}")


def sanitize_collection(name: str) -> str:
    """A collection (folder) name: letters, digits, ``.``, ``_``, ``-``; no path parts."""
    name = (name or "").strip()
    if not _COLLECTION.match(name) or name in (".", ".."):
        raise UnsafeName(
            f"'{name}' is not a valid collection name; use letters, digits, '-', '_' or '.' (not first), up to 64"
        )
    return name


def list_collections(root: Path, current: str | None = None) -> list[str]:
    """Collection folders under ``root`` (plus ``current``, which may not exist yet)."""
    names: set[str] = set()
    if root.is_dir():
        for child in root.iterdir():
            if child.is_dir() and not child.name.startswith("."):
                names.add(child.name)
    if current:
        names.add(current)
    return sorted(names)


def files_dir(index_dir: Path) -> Path:
    return index_dir / FILES_DIR


def staging_dir(index_dir: Path) -> Path:
    return files_dir(index_dir) / STAGING_DIR


def has_index(index_dir: Path) -> bool:
    return (index_dir / INDEX_MARKER).is_file()


def index_version(index_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """Changes whenever the index files change: a cache key for readers of the index.

    SQLite's -wal and -shm files are left out: readers create and touch them (the UI
    opened an unchanged index a second time), and every commit rewrites
    vectors.faiss and manifest.json anyway.
    """
    out = []
    try:
        children = list(index_dir.iterdir())
    except OSError:
        return ()
    for p in children:
        if p.name.startswith(".") or not p.name.startswith(("chunks", "vectors", "manifest")) \
                or p.name.endswith(("-wal", "-shm")):
            continue
        try:
            st = p.stat()
        except OSError:  # a temp file renamed away meanwhile
            continue
        out.append((p.name, st.st_mtime_ns, st.st_size))
    return tuple(sorted(out))


def save_staged(index_dir: Path, name: str, data: bytes) -> Path:
    """Write an upload to the collection's staging folder (atomically); return its path.

    Raises:
        UnsafeName: ``name`` is not what :func:`sanitize_filename` makes of it, so
            it could reach outside the staging folder.
    """
    if not name or name != sanitize_filename(name):
        raise UnsafeName(f"'{name}' is not a safe file name; pass it through sanitize_filename first")
    folder = staging_dir(index_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    final = folder / name
    tmp = folder / f".{name}.part"
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    return final


def keep_staged(index_dir: Path, staged: Path) -> Path:
    """Move an ingested upload from staging into ``files/`` (replacing an older copy)."""
    final = files_dir(index_dir) / staged.name
    os.replace(staged, final)
    return final


def discard_staged(staged: Path) -> None:
    staged.unlink(missing_ok=True)


def resolve_source(index_dir: Path, source: str) -> Path | None:
    """The kept original file of a document, or None (ingested from elsewhere)."""
    folder = files_dir(index_dir).resolve()
    try:
        path = (folder / source).resolve()
    except (OSError, ValueError):
        return None
    if folder not in path.parents or not path.is_file():
        return None  # never serve anything outside files/
    return path


def remove_kept(index_dir: Path, source: str) -> bool:
    """Delete the kept original of ``source``, if there is one."""
    path = resolve_source(index_dir, source)
    if path is None:
        return False
    path.unlink(missing_ok=True)
    return True

"""The FAISS half of the index: a fast copy of the vectors SQLite holds.

``vectors.faiss`` is an ``IndexIDMap2`` over a flat inner-product index whose ids
are the SQLite chunk ids. It is only ever a cache: when it is missing, unreadable,
or its ids differ from SQLite's (a crash between the two commits, a writer between
its commit and its rename), it is rebuilt from the vectors stored in SQLite.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import faiss  # type: ignore[import-untyped]
import numpy as np

from assistant.index import schema

log = logging.getLogger(__name__)

VECTORS = "vectors.faiss"


def new_faiss(dim: int) -> Any:
    """An empty index for unit vectors of ``dim`` dimensions, addressed by chunk id."""
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def load_vectors(directory: Path, conn: sqlite3.Connection, dim: int, *, current: Any = None) -> Any:
    """Load the FAISS file; rebuild it from SQLite if it disagrees (after a crash).

    ``current``, an already loaded copy, is kept if its ids are still SQLite's. The
    file may lag SQLite (a writer between its commit and its rename): rebuilt then too.
    """
    ids_db = np.asarray([r[0] for r in conn.execute("SELECT id FROM chunks ORDER BY id")], dtype=np.int64)
    if current is not None and np.array_equal(np.sort(faiss.vector_to_array(current.id_map)), ids_db):
        return current
    path = directory / VECTORS
    if path.is_file():
        try:
            index = faiss.read_index(str(path))
            ids_faiss = np.sort(faiss.vector_to_array(index.id_map).astype(np.int64))
            if index.d == dim and np.array_equal(ids_faiss, ids_db):
                return index
        except RuntimeError as exc:
            log.warning("vector file %s unreadable (%s); rebuilding it", path, exc)
    log.info("rebuilding vectors of %s from SQLite (%d chunks)", directory, len(ids_db))
    index = new_faiss(dim)
    ids, vecs = schema.vectors_for(conn, None, dim)
    if len(ids):
        index.add_with_ids(vecs, ids)
    return index

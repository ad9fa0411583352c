"""The local index: SQLite + FAISS + manifest (see DESIGN.md, "The index")."""

from assistant.index.schema import ChunkRow
from assistant.index.store import IndexStore, IndexWriter

__all__ = ["ChunkRow", "IndexStore", "IndexWriter"]

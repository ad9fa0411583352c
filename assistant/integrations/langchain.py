"""A LangChain retriever over a local index.

    from assistant.integrations.langchain import SlmRetriever

    retriever = SlmRetriever.from_index("var/index/sample", k=3)
    docs = retriever.invoke("Where was the SAIBK strain isolated?")

The search itself is :meth:`assistant.Assistant.retrieve` (hybrid dense + BM25, the
domain's query expansion and document focus); this module only maps its hits to
LangChain documents. It is the only module of the package that imports langchain-core.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from pydantic import Field

from assistant.engine import Assistant
from assistant.errors import ConfigError, InvalidQuestion
from assistant.retrieval import Mode
from assistant.types import Hit

__all__ = ["SlmRetriever"]


class _InvalidQuery(InvalidQuestion, ValueError):
    """An empty or oversized query: LangChain callers expect ValueError, ours InvalidQuestion."""


def _to_document(hit: Hit) -> Document:
    """A retrieved chunk as a LangChain document (the chunk text, its place and scores as metadata)."""
    return Document(
        id=str(hit.chunk_id),
        page_content=hit.text,
        metadata={
            "source": hit.source,
            "page": hit.page,
            "char_start": hit.char_start,
            "char_end": hit.char_end,
            "chunk_id": hit.chunk_id,
            "section": hit.section,
            "score": hit.score,
            "similarity": hit.similarity,
            # Nested, not merged: document metadata (title, governing_law, ...) must not shadow the keys above.
            "doc_meta": dict(hit.doc_meta),
        },
    )


class SlmRetriever(BaseRetriever):
    """Retrieves passages of a local slm-assistant index as LangChain documents.

    Each document's ``page_content`` is the chunk text; its ``metadata`` holds
    ``source``, ``page`` (None for files without pages), ``char_start``/``char_end``
    (offsets into that page's text), ``chunk_id``, ``section``, ``score`` (fused rank
    score), ``similarity`` (cosine to the query) and ``doc_meta`` (the document's
    metadata); ``Document.id`` is the chunk id.

    ``k``, ``mode`` and ``sources`` can also be given per call:
    ``retriever.invoke("...", k=2, sources=["contracts/*"])``.

    Attributes:
        assistant: the open :class:`~assistant.Assistant` that searches the index.
        k: passages per query (default: the ``retrieval.k`` setting).
        mode: ``"hybrid"``, ``"dense"`` or ``"lexical"`` (default: the setting).
        sources: glob patterns of the sources to search in (default: all).

    Raises:
        ValueError: (an :class:`~assistant.InvalidQuestion`) for an empty or oversized query.
    """

    assistant: Assistant
    k: int | None = Field(default=None, ge=1, le=100)
    mode: Mode | None = None
    sources: tuple[str, ...] | None = None

    @classmethod
    def from_index(cls, index_dir: str | Path, *, domain: str | None = None, k: int | None = None,
                   mode: Mode | None = None, sources: Sequence[str] | None = None,
                   **open_kwargs: Any) -> SlmRetriever:
        """Open an index (and its embedder) as a retriever; ``close()`` it when done.

        Args:
            index_dir: the index folder, as written by ``slm ingest``.
            domain: the domain pack to search with (query expansion, document focus).
            k, mode, sources: see the class attributes.
            **open_kwargs: passed to :meth:`assistant.Assistant.open` (``config``, ``llm``, ...).

        Raises:
            IndexNotFound, IndexMismatch, ModelNotFound, ConfigError.
        """
        assistant = Assistant.open(index_dir, domain=domain, **open_kwargs)
        return cls(assistant=assistant, k=k, mode=mode, sources=tuple(sources) if sources is not None else None)

    def close(self) -> None:
        """Close the index (the retriever cannot be used afterwards)."""
        self.assistant.close()

    def __enter__(self) -> SlmRetriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _search(self, query: str, k: int | None, mode: Mode | None, sources: Sequence[str] | None) -> list[Document]:
        k = self.k if k is None else k
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 100):
            raise ValueError(f"k must be a whole number from 1 to 100, not {k!r}")
        mode = mode or self.mode
        if isinstance(sources, str):  # one glob pattern, not a sequence of characters
            sources = (sources,)
        try:
            hits = self.assistant.retrieve(query, k, mode=mode, sources=self.sources if sources is None else sources)
        except InvalidQuestion as exc:
            raise _InvalidQuery(str(exc)) from exc
        except ConfigError as exc:  # an unknown mode
            raise ValueError(str(exc)) from exc
        return [_to_document(h) for h in hits]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                k: int | None = None, mode: Mode | None = None,
                                sources: Sequence[str] | None = None) -> list[Document]:
        return self._search(query, k, mode, sources)

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       k: int | None = None, mode: Mode | None = None,
                                       sources: Sequence[str] | None = None) -> list[Document]:
        # The search is CPU-bound (embedding, FAISS, SQLite): run it off the event loop.
        return await run_in_executor(None, self._search, query, k, mode, sources)

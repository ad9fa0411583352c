"""Hybrid retrieval: dense (FAISS) + lexical (FTS5 BM25), fused by reciprocal rank."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np

from assistant.domain import DocumentChooser
from assistant.embedder import Embedder
from assistant.errors import ConfigError
from assistant.index import ChunkRow, IndexStore
from assistant.settings import RetrievalSettings
from assistant.text import words
from assistant.types import Hit

Mode = Literal["hybrid", "dense", "lexical"]


def rrf(rankings: Sequence[tuple[float, Sequence[int]]], k: int) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of ranked id lists, each with a weight. Best first."""
    scores: dict[int, float] = {}
    for weight, ids in rankings:
        for rank, cid in enumerate(ids, start=1):
            scores[cid] = scores.get(cid, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def _overlaps(a: ChunkRow, b: ChunkRow) -> bool:
    """Same place in the same document (overlapping windows) or the same text."""
    if a.text == b.text:
        return True
    if a.source != b.source or a.page != b.page:
        return False
    inter = min(a.char_end, b.char_end) - max(a.char_start, b.char_start)
    return inter > 0.5 * min(a.char_end - a.char_start, b.char_end - b.char_start)


class Retriever:
    """Finds the chunks of an index that best match a question."""

    def __init__(self, store: IndexStore, embedder: Embedder, settings: RetrievalSettings, *, focus: bool = False,
                 choose_documents: DocumentChooser | None = None) -> None:
        self.store = store
        self.choose_documents = choose_documents
        self.embedder = embedder
        self.settings = settings
        self.focus = settings.focus if settings.focus is not None else focus

    def search(
        self,
        query: str,
        k: int | None = None,
        *,
        mode: Mode | None = None,
        sources: Sequence[str] | None = None,
        lexical_query: str | None = None,
        query_vector: np.ndarray | None = None,
    ) -> list[Hit]:
        """Top-``k`` hits for ``query``, duplicates and overlapping windows collapsed.

        Args:
            query: the text to search for.
            k: number of hits (default: settings).
            mode: hybrid, dense or lexical (default: settings).
            sources: glob patterns of sources to search in (default: settings).
            lexical_query: a different text for BM25 (e.g. with expanded terms).
            query_vector: the embedded ``query``, when the caller has it already.
        """
        s = self.settings
        k = k or s.k
        mode = mode or s.mode
        if mode not in get_args(Mode):
            raise ConfigError(f"retrieval mode must be one of {', '.join(get_args(Mode))}, not {mode!r}")
        if isinstance(sources, str):  # one pattern, not a sequence of one-character patterns
            sources = (sources,)
        doc_ids = self.store.doc_ids_for(tuple(sources) if sources is not None else s.sources)
        qvec = self.embedder.embed([query])[0] if query_vector is None else query_vector
        n = max(s.candidates, k * 3)
        rankings: list[tuple[float, list[int]]] = []
        if mode in ("hybrid", "dense"):
            rankings.append((s.dense_weight, [i for i, _ in self.store.dense_search(qvec, n, doc_ids)]))
        if mode in ("hybrid", "lexical"):
            lexical = self.store.lexical_search(lexical_query or query, n, doc_ids)
            rankings.append((s.lexical_weight, [i for i, _ in lexical]))
        fused = rrf(rankings, s.rrf_k)
        named = self.named_documents(lexical_query or query) if self.focus and doc_ids is None else None
        if named:
            # The question names its document(s): their best passages come first.
            dense = [i for i, _ in self.store.dense_search(qvec, n, named)] if mode != "lexical" else []
            terms = self.defined_terms(lexical_query or query, named)
            lexical = [i for i, _ in self.store.lexical_search(terms, n, named)] if mode != "dense" else []
            focused = rrf([(s.dense_weight, dense), (s.lexical_weight, lexical)], s.rrf_k)[:k]
            fused = focused + [f for f in fused if f[0] not in {cid for cid, _ in focused}]
        rows = self.store.chunks([cid for cid, _ in fused[: n * 2]])
        kept: list[tuple[ChunkRow, float]] = []
        for cid, score in fused:
            row = rows.get(cid)
            if row is None or any(_overlaps(row, other) for other, _ in kept):
                continue
            kept.append((row, score))
            if len(kept) == k:
                break
        sims = self._similarities(qvec, [r.id for r, _ in kept])
        return [
            Hit(chunk_id=r.id, source=r.source, page=r.page, text=r.text, score=score,
                char_start=r.char_start, char_end=r.char_end, section=r.section,
                doc_meta=r.doc_meta, similarity=sims.get(r.id))
            for r, score in kept
        ]

    def named_documents(self, query: str) -> list[int] | None:
        """Ids of the documents the question names, or None when it names none clearly.

        Documents are matched by BM25 over their heads (path words, metadata,
        opening text). The best and any close second (within ``focus_ratio``) are
        named when the next one trails clearly (below ``focus_margin``).
        """
        s = self.settings
        docs = self.store.document_search(query, max(s.focus_max_docs + 2, 20))
        if not docs or docs[0][1] <= 0:
            return None
        if self.choose_documents is not None:
            meta = self.store.document_meta([d for d, _ in docs])
            chosen = self.choose_documents(query, [(d, score, meta.get(d, {})) for d, score in docs])
            if chosen:
                return chosen
        best = docs[0][1]
        named = [d for d, score in docs if score >= s.focus_ratio * best]
        if len(named) > s.focus_max_docs:
            return None
        following = docs[len(named)][1] if len(docs) > len(named) else 0.0
        return named if following < s.focus_margin * best else None

    def defined_terms(self, query: str, doc_ids: Sequence[int]) -> str:
        """``query`` plus the defined terms of the named documents it refers to.

        Contracts say "Licensee" where the question says "Neon Systems" (and the
        other way round); documents record their terms as ``defined_terms`` metadata.
        """
        qwords = set(words(query))
        extra: list[str] = []
        for meta in self.store.document_meta(doc_ids).values():
            terms = meta.get("defined_terms")
            if not isinstance(terms, dict):
                continue
            for term, meaning in terms.items():
                named = {w for w in words(str(meaning)) if len(w) > 3}
                if set(words(term)) <= qwords:
                    extra.append(str(meaning))
                elif named & qwords:
                    extra.append(term)
        return query if not extra else f"{query} {' '.join(dict.fromkeys(extra))}"

    def _similarities(self, qvec: np.ndarray, ids: list[int]) -> dict[int, float]:
        if not ids:
            return {}
        vecs = self.store.vectors(ids)
        return {cid: float(v @ qvec) for cid, v in zip(ids, vecs, strict=True)}

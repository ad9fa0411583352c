"""Data shared by the write path (ingest) and the read path (ask).

Every type here is a frozen dataclass: values, not objects with behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Page:
    """The text of one page of a loaded document.

    Attributes:
        number: 1-based page number for paginated formats (PDF); ``None`` for a
            file that has no pages (text, markdown, HTML, DOCX) and is one "page".
        text: the extracted text. Chunk and citation offsets index into it.
    """

    number: int | None
    text: str


@dataclass(frozen=True)
class Chunk:
    """A span of a page's text that is embedded and searched as one unit."""

    text: str
    page: int | None
    char_start: int
    char_end: int
    section: str | None = None
    ord: int = 0


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk.

    ``char_start``/``char_end`` index into the text of ``page`` (or the whole file
    text when ``page`` is ``None``), end-exclusive.
    """

    chunk_id: int
    source: str
    page: int | None
    text: str
    score: float
    char_start: int
    char_end: int
    section: str | None = None
    doc_meta: Mapping[str, Any] = field(default_factory=dict)
    similarity: float | None = None  # cosine between question and chunk


@dataclass(frozen=True)
class Citation:
    """A verbatim passage of a source that supports (part of) an answer.

    ``quote == page_text[char_start:char_end]`` for the cited page.
    """

    n: int
    source: str
    page: int | None
    quote: str
    char_start: int
    char_end: int
    score: float
    chunk_id: int


@dataclass(frozen=True)
class SentenceSupport:
    """How one sentence of the answer is supported by the sources."""

    text: str
    citations: tuple[int, ...]  # numbers of the Citation objects that support it
    supported: bool
    score: float


@dataclass(frozen=True)
class Timings:
    """Where the time of one answer went (milliseconds, tokens)."""

    retrieval_ms: float = 0.0
    first_token_ms: float | None = None
    total_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_per_s: float | None = None


@dataclass(frozen=True)
class Answer:
    """The result of :meth:`assistant.Assistant.ask`.

    Attributes:
        question: the question as asked.
        text: the answer text (the abstention wording when ``abstained``).
        citations: verified passages supporting the answer, numbered from 1.
        sentences: every answer sentence with its support.
        unsupported: the answer sentences no source supports.
        abstained: True when the documents do not answer the question.
        hits: the passages retrieved for the question (closest first).
        disclaimer: the domain's disclaimer to show with the answer.
        timings: latency and token counts.
    """

    question: str
    text: str
    citations: tuple[Citation, ...]
    sentences: tuple[SentenceSupport, ...]
    abstained: bool
    hits: tuple[Hit, ...]
    disclaimer: str = ""
    timings: Timings = Timings()
    mode: Literal["generate", "extractive"] = "generate"

    @property
    def unsupported(self) -> tuple[str, ...]:
        return tuple(s.text for s in self.sentences if not s.supported)


@dataclass(frozen=True)
class Evidence:
    """First stream event: the retrieved passages, before any generation."""

    hits: tuple[Hit, ...]
    retrieval_ms: float


@dataclass(frozen=True)
class Token:
    """A piece of generated text."""

    text: str


StreamEvent = Evidence | Token | Answer

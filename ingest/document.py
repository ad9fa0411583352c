"""The document reader types and the text helpers every loader shares.

:class:`DocumentInfo` and :class:`DocumentReader` are what
:func:`ingest.loaders.open_document` returns (and re-exports); the helpers
normalise extracted text and metadata (:func:`clean`, :func:`clean_meta`), shorten
a parser's exception into part of a one-line reason (:func:`brief`) and silence a
parser's logging while it runs (:func:`quiet`). Kept apart from ``loaders`` so
the per-format modules (``pdf``, ``html_text``) can use them without an import
cycle.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from assistant.types import Page

__all__ = ["MB", "DocumentInfo", "DocumentReader", "brief", "clean", "clean_meta", "quiet"]

MB = 1 << 20

# Control characters except \t and \n (\r is normalised to \n before this runs),
# and the noncharacter U+FFFF.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\uffff]")


@dataclass(frozen=True)
class DocumentInfo:
    """What is known about a document before its pages are read.

    Attributes:
        kind: ``"pdf"``, ``"text"``, ``"markdown"``, ``"html"`` or ``"docx"``.
        page_count: number of PDF pages; ``None`` for unpaginated kinds.
        meta: non-empty metadata strings, e.g. ``title``, ``author``,
            ``subject``, ``created`` (ISO 8601 when it could be parsed).
    """

    kind: str
    page_count: int | None
    meta: dict[str, str] = field(default_factory=dict)


class DocumentReader(ABC):
    """An open document. Use it as a context manager, or call :meth:`close`.

    Not thread-safe: PDFium must not be used from two threads at once.
    """

    info: DocumentInfo

    def __init__(self, source: str, info: DocumentInfo) -> None:
        self.source = source
        self.info = info

    @abstractmethod
    def pages(self) -> Iterator[Page]:
        """Yield the pages in order, one at a time.

        PDF pages are numbered from 1; an unpaginated document yields exactly one
        ``Page(number=None, text=...)``.

        Raises:
            IngestError: a page could not be extracted, or (raised only after the
                last page of a PDF was yielded) the PDF has no text layer. A
                caller must consume the iterator to the end before it commits the
                document, and drop everything it derived from it on this error.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the file and parser resources. Safe to call twice."""

    def __enter__(self) -> DocumentReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def brief(e: BaseException, *, name: bool = True) -> str:
    """A parser's exception as part of a one-line reason: lxml and pypdf messages may span lines."""
    text = one_line(str(e), 200)
    return f"{type(e).__name__}: {text}" if name else text


def one_line(text: str, limit: int = 400) -> str:
    """``text`` as one line of at most ``limit`` characters: parser messages may span lines."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def clean(text: str) -> str:
    """Normalise line ends and drop control characters that break FTS or display."""
    # PDFium returns some hyphens as the noncharacter U+FFFE (261 times in the SEC
    # filings: "anti\ufffedilutive", "forward\ufffelooking"); the page shows "-".
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufffe", "-")
    return _CONTROL.sub("", text)


def clean_meta(meta: dict[str, Any]) -> dict[str, str]:
    return {k: clean(v).strip() for k, v in meta.items() if isinstance(v, str) and clean(v).strip()}


@contextmanager
def quiet(library: str) -> Iterator[None]:
    """Silence a parser's warnings and errors (pypdf logs one per repaired object, even at ERROR
    for a font it reads with a fallback encoding; bs4 one per undecodable page): with logging
    unconfigured, as in ``slm ingest``, each would print a line on stderr. Whether the file could
    be read is decided by the exceptions, which become one IngestError line."""
    log = logging.getLogger(library)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)

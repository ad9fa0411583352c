"""Sentence splitting with offsets, and word normalisation.

Written here rather than taken from a library: NLTK's punkt needs a data download
and pysbd is slow and unmaintained; what we need is small: sentence spans with
exact offsets so that quotes are verbatim substrings of the source.
"""

from __future__ import annotations

import re
import unicodedata

_ABBREV = frozenset(
    "e.g i.e etc vs mr mrs ms dr prof inc ltd co corp no fig al approx dept est jr sr st u.s u.k "
    "jan feb mar apr jun jul aug sep sept oct nov dec sec art para pp p".split()
)
_BOUNDARY = re.compile(r"(?<=[.!?;])[\"')\]]*\s+|\n\s*\n|\n(?=\s*(?:[-*•]|\d+[.)]|\(?[a-z]\))\s)")
_WORD = re.compile(r"[^\W_]+")


def sentence_spans(text: str, min_chars: int = 3) -> list[tuple[int, int]]:
    """(start, end) of each sentence in ``text``; whitespace is trimmed from spans."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        end = m.start()
        before = text[start:end].rstrip()
        last_word = before.rsplit(None, 1)[-1].rstrip(".").lower() if before.split() else ""
        if text[end - 1 : end] == "." and (last_word in _ABBREV or len(last_word) == 1 or _is_number_dot(before)):
            continue  # "Inc." / "U.S." / "Section 2." do not end a sentence
        _add(text, start, end, spans, min_chars)
        start = m.end()
    _add(text, start, len(text), spans, min_chars)
    return spans


def _is_number_dot(before: str) -> bool:
    tail = before.rsplit(None, 1)[-1]
    return bool(re.fullmatch(r"\(?[0-9ivxIVX]+(?:\.[0-9]+)*\.", tail))


def _add(text: str, start: int, end: int, spans: list[tuple[int, int]], min_chars: int) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end - start >= min_chars:
        spans.append((start, end))


def words(text: str) -> list[str]:
    """Lower-cased runs of letters and digits after NFKC (the eval's normalisation)."""
    return [w.lower() for w in _WORD.findall(unicodedata.normalize("NFKC", text))]


def where(source: str, page: int | None) -> str:
    """A passage's place as people read it: ``report.pdf, p. 12`` (or the file alone)."""
    return f"{source}, p. {page}" if page is not None else source


def squash(text: str) -> str:
    """Collapse whitespace (PDF text wraps lines mid-sentence)."""
    return " ".join(text.split())

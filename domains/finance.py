"""Finance hooks: keep statement rows together; company, form and period from the cover page."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

SEPARATORS = ("\n\n", "\n", "; ", " ", "")  # never split inside a sentence of figures before a line
HEADINGS = (
    r"(?:PART|Part)\s+[IV]+(?:\s*[-—.]\s*\S.*)?",
    r"(?:ITEM|Item)\s+\d+[A-Z]?\.?(?:\s+\S.*)?",
    r"[A-Z][A-Z0-9 ,&'()/-]{3,80}",
    r"(?:CONDENSED )?CONSOLIDATED [A-Z ,()]+",
)

_FORM = re.compile(r"\bFORM\s+(10-Q|10-K|8-K|20-F)\b", re.I)
_PERIOD = re.compile(
    r"(?:quarterly|fiscal) (?:period|year) ended\s+([A-Z][a-z]+\s+\d{1,2},\s+\d{4})", re.I
)
_COMPANY = re.compile(r"^\s*([A-Z][A-Za-z0-9.,&' -]{2,60}?(?:Inc\.|INC\.|Corporation|CORPORATION|Corp\.|Company|Ltd\.))", re.M)


_LATEST = re.compile(r"\b(?:latest|most recent|newest|last|current)\b", re.I)
_MONTHS = {m: i for i, m in enumerate(
    "january february march april may june july august september october november december".split(), start=1)}


def _period_key(meta: Mapping[str, Any]) -> tuple[int, int, int] | None:
    m = re.fullmatch(r"([A-Za-z]+)\s+(\d{1,2}),\s+(\d{4})", str(meta.get("period_end", "")))
    if not m or m.group(1).lower() not in _MONTHS:
        return None
    return int(m.group(3)), _MONTHS[m.group(1).lower()], int(m.group(2))


def choose_documents(question: str, candidates: Sequence[tuple[int, float, Mapping[str, Any]]]) -> list[int] | None:
    """"The latest 10-Q" of a company: its filing with the latest period end.

    The company is that of the best-matching filing; None (generic matching)
    when the question asks for no latest report or periods are unknown.
    """
    if not candidates or not _LATEST.search(question):
        return None
    company = candidates[0][2].get("company")
    dated = [(key, doc) for doc, _, meta in candidates
             if company and meta.get("company") == company and (key := _period_key(meta)) is not None]
    return [max(dated)[1]] if dated else None


def extract_metadata(source: str, first_pages: str, file_meta: Mapping[str, str]) -> dict[str, Any]:
    """Form type, period end and company name from a filing's cover page."""
    meta: dict[str, Any] = {}
    head = first_pages[:6000]
    if m := _FORM.search(head):
        meta["form_type"] = m.group(1).upper()
    if m := _PERIOD.search(head):
        meta["period_end"] = " ".join(m.group(1).split())
    if m := _COMPANY.search(head):
        meta["company"] = " ".join(m.group(1).split())
    return meta

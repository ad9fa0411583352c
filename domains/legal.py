"""Legal hooks: clause-aware splitting and contract metadata."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SEPARATORS = ("\n\n", "\nARTICLE ", "\nSection ", "\nSECTION ", "\n", ". ", "; ", ", ", " ", "")
HEADINGS = (
    r"(?:ARTICLE|Article|SECTION|Section)\s+[0-9IVXLC]+(?:\.\d+)*[.:]?(?:\s+\S.*)?",
    r"\d{1,2}(?:\.\d{1,2}){0,3}\.?\s+[A-Z][A-Za-z ,&'/-]{2,80}\.?",
    r"[A-Z][A-Z0-9 ,&'()/-]{3,80}",
)

_GOVERNING = re.compile(r"governed by[^.]{0,120}?laws? of (?:the )?(?:State of |Commonwealth of )?([A-Z][A-Za-z ]{2,40}?)[,.;( ]", re.S)
_TITLE = re.compile(r"^\s*([A-Z][A-Z &,'-]{5,80}AGREEMENT)\s*$", re.M)


# '... Neon Systems, Inc., a Delaware corporation (the "Licensee")': the parenthesis defines a term.
_DEFINED = re.compile(r"\((?:the\s+|hereinafter\s+(?:referred\s+to\s+as\s+)?(?:the\s+)?)?[\"“']([A-Z][A-Za-z -]{1,40}?)[\"”']\)")
_NAME = re.compile(r"[A-Z][\w&'./-]*(?:,?\s+(?:[A-Z][\w&'./-]*|of|and|&))*")


def defined_terms(text: str, limit: int = 40) -> dict[str, str]:
    """Defined terms and what they stand for: {"Licensee": "Neon Systems, Inc."}."""
    terms: dict[str, str] = {}
    last_end = 0
    for m in _DEFINED.finditer(text):
        # The name just before the parenthesis, never reaching back past the previous definition.
        before = text[max(last_end, m.start() - 160):m.start()]
        last_end = m.end()
        names = [n.strip(" ,") for n in _NAME.findall(before) if len(n.strip(" ,").split()) >= 2]
        if names and m.group(1) not in terms:
            terms[m.group(1)] = names[-1]
        if len(terms) >= limit:
            break
    return terms


def extract_metadata(source: str, first_pages: str, file_meta: Mapping[str, str]) -> dict[str, Any]:
    """Contract title, governing law and defined terms when the first pages state them."""
    meta: dict[str, Any] = {}
    terms = defined_terms(first_pages)
    if terms:
        meta["defined_terms"] = terms
    title = _TITLE.search(first_pages)
    if title:
        meta["contract_title"] = " ".join(title.group(1).split()).title()
    law = _GOVERNING.search(first_pages)
    if law:
        meta["governing_law"] = law.group(1).strip()
    return meta

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


def extract_metadata(source: str, first_pages: str, file_meta: Mapping[str, str]) -> dict[str, Any]:
    """Contract title and governing law when the first pages state them."""
    meta: dict[str, Any] = {}
    title = _TITLE.search(first_pages)
    if title:
        meta["contract_title"] = " ".join(title.group(1).split()).title()
    law = _GOVERNING.search(first_pages)
    if law:
        meta["governing_law"] = law.group(1).strip()
    return meta

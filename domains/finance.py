"""Finance hooks: keep statement rows together; company, form and period from the cover page."""

from __future__ import annotations

import re
from collections.abc import Mapping
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

"""Medical hooks: protocol sections, clinical abbreviations, document type."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SEPARATORS = ("\n\n", "\n", ". ", "; ", ", ", " ", "")
HEADINGS = (
    r"\d{1,2}(?:\.\d{1,2}){0,3}\.?\s+[A-Z][A-Za-z ,&'/()-]{2,80}",
    r"(?:Inclusion|Exclusion) Criteria:?",
    r"(?:Dosage and Administration|Adverse (?:Reactions|Events)|Contraindications|Warnings and Precautions|"
    r"Study Design|Study Population|Statistical (?:Methods|Analysis)|Objectives?|Endpoints?|Background|Abstract|"
    r"Methods|Results|Discussion|Conclusions?)\s*:?",
    r"[A-Z][A-Z0-9 ,&'()/-]{3,80}",
)

ABBREVIATIONS = {
    "AE": "adverse event", "SAE": "serious adverse event", "BP": "blood pressure", "HR": "heart rate",
    "MI": "myocardial infarction", "ICU": "intensive care unit", "IV": "intravenous", "PO": "oral",
    "BID": "twice daily", "TID": "three times daily", "QD": "once daily", "PRN": "as needed",
    "COPD": "chronic obstructive pulmonary disease", "CHF": "congestive heart failure",
    "DM": "diabetes mellitus", "HTN": "hypertension", "ARDS": "acute respiratory distress syndrome",
    "PCR": "polymerase chain reaction", "RT-PCR": "reverse transcription polymerase chain reaction",
    "CFR": "case fatality rate", "R0": "basic reproduction number", "PPE": "personal protective equipment",
    "SARS": "severe acute respiratory syndrome", "MERS": "Middle East respiratory syndrome",
    "COVID-19": "coronavirus disease 2019", "IBV": "infectious bronchitis virus", "ECMO": "extracorporeal membrane oxygenation",
    "SAP": "statistical analysis plan", "ITT": "intention to treat", "CI": "confidence interval", "OR": "odds ratio",
}

_NCT = re.compile(r"\bNCT\d{8}\b")
_TYPES = (("statistical analysis plan", "statistical analysis plan"), ("protocol", "protocol"),
          ("prescribing information", "drug label"), ("abstract", "article"))


def extract_metadata(source: str, first_pages: str, file_meta: Mapping[str, str]) -> dict[str, Any]:
    """Trial identifier and a document type guessed from the first pages."""
    meta: dict[str, Any] = {}
    if m := _NCT.search(first_pages) or _NCT.search(source):
        meta["trial_id"] = m.group(0)
    low = first_pages[:4000].lower()
    for needle, kind in _TYPES:
        if needle in low:
            meta["document_type"] = kind
            break
    return meta

"""The built-in domain packs: reviewable data plus small hooks."""

from __future__ import annotations

from assistant.domain import GENERAL, DomainPack
from domains import finance, legal, medical

__all__ = ["FINANCE", "GENERAL", "LEGAL", "MEDICAL"]

LEGAL = DomainPack(
    name="legal",
    title="Legal (contracts)",
    system_prompt=(
        "You help a lawyer review contracts. Answer using only the numbered contract excerpts. "
        "Quote the operative wording where it matters and cite each excerpt you use like [1]."
    ),
    abstention="The provided contracts do not address this (not in your documents).",
    disclaimer="Not legal advice: verify against the cited contract text.",
    separators=legal.SEPARATORS,
    heading_patterns=legal.HEADINGS,
    extract_metadata=legal.extract_metadata,
    focus=True,
)

FINANCE = DomainPack(
    name="finance",
    title="Finance (filings)",
    system_prompt=(
        "You help a financial analyst read company filings. Answer using only the numbered excerpts. "
        "Give figures exactly as written, with their units and periods, and cite each excerpt like [1]."
    ),
    abstention="The provided filings do not contain this (not in your documents).",
    disclaimer="Not investment advice: verify figures against the cited filing.",
    separators=finance.SEPARATORS,
    heading_patterns=finance.HEADINGS,
    extract_metadata=finance.extract_metadata,
    focus=True,
    choose_documents=finance.choose_documents,
)

MEDICAL = DomainPack(
    name="medical",
    title="Medical (protocols, articles)",
    system_prompt=(
        "You help a clinician read clinical documents. Answer using only the numbered excerpts, "
        "state doses, criteria and outcomes exactly as written, and cite each excerpt like [1]."
    ),
    abstention="The provided documents do not contain this (not in your documents).",
    disclaimer="Not medical advice: verify against the cited source before any clinical use.",
    expansions=medical.ABBREVIATIONS,
    separators=medical.SEPARATORS,
    heading_patterns=medical.HEADINGS,
    extract_metadata=medical.extract_metadata,
)

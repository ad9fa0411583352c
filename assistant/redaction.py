"""Redaction of personal identifiers: applied to logs always, to indexed text on request.

Regular expressions, not a model: they are predictable and reviewable, and they
err on the side of redacting number-like identifiers next to their labels.
"""

from __future__ import annotations

import logging
import re

RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("[EMAIL]", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")),
    ("[DOB]", re.compile(
        r"\b(?:DOB|D\.O\.B\.|date of birth|born(?: on)?)\s*[:#]?\s*"
        r"(?:\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|[A-Z][a-z]+\.? \d{1,2},? \d{4}|\d{1,2} [A-Z][a-z]+\.? \d{4})", re.I)),
    ("[MRN]", re.compile(r"\b(?:MRN|medical record (?:number|no\.?)|patient id)\s*[:#]?\s*[A-Z0-9-]{4,}\b", re.I)),
    ("[SSN]", re.compile(r"\b\d{3}-\d{2}-\d{4}\b")),
    ("[ID]", re.compile(
        r"\b(?:NHS|NI|national insurance|passport|social security|SSN|national id)\s*(?:number|no\.?)?\s*[:#]?\s*"
        r"[A-Z0-9][A-Z0-9 -]{5,14}[A-Z0-9]\b", re.I)),
    ("[PHONE]", re.compile(r"(?<![\w.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\d{2,4}[\s.-])\d{3,4}[\s.-]\d{3,4}\b")),
)


def redact(text: str) -> str:
    """``text`` with emails, phone numbers, national ids, MRNs and dates of birth replaced."""
    for label, pattern in RULES:
        text = pattern.sub(label, text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message of every record.

    Attach it to a handler (``handler.addFilter(RedactingFilter())``); the CLI and
    the UI do so for their log output.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True

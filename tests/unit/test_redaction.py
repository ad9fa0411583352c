"""Redaction rules."""

from __future__ import annotations

import logging

import pytest

from assistant.redaction import RedactingFilter, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Contact jane.doe@example.org today", "Contact [EMAIL] today"),
        ("Call +1 415-555-0132 or (020) 7946 0958.", "Call [PHONE] or [PHONE]."),
        ("SSN 123-45-6789 on file", "SSN [SSN] on file"),
        ("Patient MRN: A1234567 admitted", "Patient [MRN] admitted"),
        ("DOB: 04/07/1961, male", "[DOB], male"),
        ("date of birth March 3, 1950", "[DOB]"),
        ("NHS number 943 476 5919", "[ID]"),
    ],
)
def test_identifiers_are_redacted(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Net sales were $81.8 billion for the three months ended April 1, 2023.",
        "Section 12.3 of the Agreement, dated 1999-03-01, governs.",
        "The trial enrolled 1,257 participants between 2020 and 2021.",
        "NCT06159946 version 2.0",
    ],
)
def test_ordinary_text_is_left_alone(text):
    assert redact(text) == text


def test_logging_filter_redacts_messages(caplog):
    logger = logging.getLogger("test.redaction")
    handler = logging.Handler()
    seen: list[str] = []
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    try:
        logger.warning("failed for %s", "jane@example.org")
    finally:
        logger.removeHandler(handler)
    assert seen == ["failed for [EMAIL]"]

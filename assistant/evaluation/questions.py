"""Question sets: load and validate the JSONL format of ``docs/eval.md``.

One JSON object per line::

    {"id": "q1", "question": "...", "answer": "Texas", "answerable": true,
     "evidence": [{"source": "a.pdf", "page": 12, "text": "...", "char_start": null, "char_end": null}],
     "meta": {}}

A bad line is an error that names the file and the line, never a silent skip:
a question set that quietly lost questions would report flattering numbers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import ConfigError


class QuestionSetError(ConfigError):
    """A questions file is missing or has a line that does not follow the format."""


@dataclass(frozen=True)
class EvidenceItem:
    """Where the answer to a question is, as annotated in the question set.

    Attributes:
        source: path relative to the corpus folder, ``/`` separators.
        page: 1-based PDF page, or None when unknown or not a PDF.
        text: verbatim evidence text, or None.
        char_start: start offset into the whole file text (text files), or None.
        char_end: end offset (exclusive), or None.
    """

    source: str
    page: int | None = None
    text: str | None = None
    char_start: int | None = None
    char_end: int | None = None


@dataclass(frozen=True)
class Question:
    """One question of an evaluation set."""

    id: str
    question: str
    answer: str | None
    answerable: bool
    evidence: tuple[EvidenceItem, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def scored(self) -> bool:
        """True when retrieval metrics count this question (answerable, with evidence)."""
        return self.answerable and bool(self.evidence)


def _optional(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = obj.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise ValueError(f"'{key}' must be {what} or null, not {type(value).__name__}")
    return value


def _evidence(obj: Any, n: int) -> EvidenceItem:
    if not isinstance(obj, dict):
        raise ValueError(f"evidence[{n}] must be an object")
    source = obj.get("source")
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"evidence[{n}].source must be a non-empty path relative to the corpus folder")
    page = _optional(obj, "page", int, "a 1-based page number")
    if page is not None and page < 1:
        raise ValueError(f"evidence[{n}].page must be 1-based (got {page})")
    text = _optional(obj, "text", str, "a string")
    start = _optional(obj, "char_start", int, "an integer")
    end = _optional(obj, "char_end", int, "an integer")
    if (start is None) != (end is None):
        raise ValueError(f"evidence[{n}] needs both char_start and char_end, or neither")
    if start is not None and end is not None and not 0 <= start <= end:
        raise ValueError(f"evidence[{n}] has char_start {start} > char_end {end} or a negative offset")
    return EvidenceItem(source.replace("\\", "/"), page, text, start, end)


def parse_question(obj: Any) -> Question:
    """Validate one decoded JSON line.

    Raises:
        ValueError: what is wrong with it (the caller adds file and line).
    """
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    qid, text = obj.get("id"), obj.get("question")
    if not isinstance(qid, str) or not qid.strip():
        raise ValueError("'id' must be a non-empty string")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("'question' must be a non-empty string")
    answer = _optional(obj, "answer", str, "a string")
    answerable = obj.get("answerable")
    if not isinstance(answerable, bool):
        raise ValueError("'answerable' must be true or false")
    evidence = obj.get("evidence", [])
    if not isinstance(evidence, list):
        raise ValueError("'evidence' must be a list (empty for unanswerable questions)")
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise ValueError("'meta' must be an object or null")
    items = tuple(_evidence(e, n) for n, e in enumerate(evidence))
    return Question(qid, text, answer, answerable, items, meta)


def load_questions(path: str | Path, limit: int | None = None) -> list[Question]:
    """Read a questions file (JSONL), in file order.

    Args:
        path: the ``.jsonl`` file.
        limit: keep only the first ``limit`` questions (None: all).

    Raises:
        QuestionSetError: the file is missing, a line is not valid JSON or does
            not follow the format, or an id repeats. The message names file and line.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise QuestionSetError(f"cannot read questions file {path}: {exc}") from None
    questions: list[Question] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            q = parse_question(json.loads(line))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise QuestionSetError(f"{path}, line {lineno}: {exc}; see docs/eval.md for the format") from None
        if q.id in seen:
            raise QuestionSetError(f"{path}, line {lineno}: id '{q.id}' already used on line {seen[q.id]}")
        seen[q.id] = lineno
        questions.append(q)
        if limit is not None and len(questions) >= limit:
            break
    if not questions:
        raise QuestionSetError(f"{path} holds no questions; see docs/eval.md for the format")
    return questions

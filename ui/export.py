"""The conversation, with its citations, as Markdown and JSON for download."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from assistant import Answer
from assistant.text import squash, where
from ui.render import answer_sentences


def _answer_dict(answer: Answer) -> dict[str, Any]:
    data = asdict(answer)
    data["unsupported"] = list(answer.unsupported)
    for hit in data.get("hits", []):
        hit["doc_meta"] = dict(hit.get("doc_meta") or {})
    return data


def to_json(turns: list[dict[str, Any]], *, now: datetime | None = None) -> str:
    """Every turn: question, collection, domain, and the full answer or the error."""
    out = {
        "exported_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "turns": [
            {
                "question": t["question"], "collection": t.get("collection"), "domain": t.get("domain"),
                "model": t.get("model"), "error": t.get("error"),
                "answer": _answer_dict(t["answer"]) if t.get("answer") is not None else None,
            }
            for t in turns
        ],
    }
    return json.dumps(out, indent=2, ensure_ascii=False, default=str)


def _turn_markdown(i: int, turn: dict[str, Any]) -> list[str]:
    lines = [f"## {i}. {turn['question']}", ""]
    answer: Answer | None = turn.get("answer")
    if turn.get("error"):
        return lines + [f"**Error:** {turn['error']}", ""]
    if answer is None:
        return lines
    if answer.abstained:
        lines += [f"**{answer.text}**", "", "Closest passages:", ""]
        lines += [f"- {where(h.source, h.page)}: \"{squash(h.text)[:300]}\"" for h in answer.hits[:3]]
    else:
        text = " ".join(s + (f" [{', '.join(map(str, c))}]" if c else "") + ("" if ok else " *(unsupported)*")
                        for s, c, ok in answer_sentences(answer))
        lines += [text, "", "**Sources**", ""]
        lines += [f"{c.n}. {where(c.source, c.page)}: \"{squash(c.quote)}\"" for c in answer.citations]
    t = answer.timings
    lines += ["", f"_{answer.disclaimer}_" if answer.disclaimer else "",
              f"<sub>{turn.get('collection')} · {turn.get('domain')} · {answer.mode} · "
              f"retrieval {t.retrieval_ms:.0f} ms · total {t.total_ms / 1000:.1f} s</sub>", ""]
    return lines


def to_markdown(turns: list[dict[str, Any]], *, now: datetime | None = None) -> str:
    """A readable transcript: each question, its answer, numbered sources with quotes."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# Conversation (slm-assistant)", "", f"Exported {stamp}.", ""]
    for i, turn in enumerate(turns, start=1):
        lines += _turn_markdown(i, turn)
    return "\n".join(lines).rstrip() + "\n"

"""Presentation helpers without Streamlit: escaping, answer sentences, timing lines."""

from __future__ import annotations

import re

from assistant import Answer, Timings

_MARKER = re.compile(r"\s*\[\d{1,3}(?:\s*,\s*\d{1,3})*\]")
# Characters Streamlit markdown would interpret: emphasis, links, HTML, LaTeX ($),
# colour directives (:red[...]), tables, headings.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|$~:])")


def md_escape(text: str, *, squash: bool = True) -> str:
    """Text from a document or the model, safe to show as Markdown (one line unless ``squash=False``)."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()) if squash else text)


def answer_sentences(answer: Answer) -> list[tuple[str, tuple[int, ...], bool]]:
    """(sentence, citation numbers, supported) for each sentence of an answer.

    The model's own ``[n]`` markers number the prompt's sources, not the verified
    citations, so they are replaced by the numbers of the citations that
    verification found for the sentence.
    """
    if not answer.sentences:
        return [(answer.text, (), True)] if answer.text else []
    out: list[tuple[str, tuple[int, ...], bool]] = []
    seen: dict[str, int] = {}
    for s in answer.sentences:
        text = _MARKER.sub("", s.text).strip()
        key = " ".join(text.lower().split())
        if not text:
            continue
        if key in seen:  # the same sentence twice (overlapping chunks): once, with both numbers
            i = seen[key]
            prev_text, prev_cites, prev_ok = out[i]
            out[i] = (prev_text, prev_cites + tuple(n for n in s.citations if n not in prev_cites), prev_ok or s.supported)
            continue
        seen[key] = len(out)
        out.append((text, tuple(s.citations), bool(s.supported)))
    return out


def timings_line(t: Timings) -> str:
    """'retrieval 103 ms · first token 7.1 s · 52 tok/s · total 9.8 s'."""
    parts = [f"retrieval {t.retrieval_ms:.0f} ms"]
    if t.first_token_ms is not None:
        parts.append(f"first token {t.first_token_ms / 1000:.1f} s")
    if t.tokens_per_s:
        parts.append(f"{t.tokens_per_s:.0f} tok/s")
    if t.completion_tokens:
        parts.append(f"{t.completion_tokens} tokens")
    parts.append(f"total {t.total_ms / 1000:.1f} s")
    return " · ".join(parts)

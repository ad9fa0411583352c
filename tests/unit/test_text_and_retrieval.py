"""Sentence spans, reciprocal rank fusion and FTS query building."""

from __future__ import annotations

from assistant.index.schema import fts_query
from assistant.retrieval import rrf
from assistant.text import sentence_spans, words


def test_sentence_spans_are_exact_and_skip_abbreviations():
    text = "Apple Inc. reported sales. See Section 2. for details!  Next one?\n\nLast line"
    spans = sentence_spans(text)
    got = [text[s:e] for s, e in spans]
    assert got == ["Apple Inc. reported sales.", "See Section 2. for details!", "Next one?", "Last line"]


def test_sentence_spans_split_list_items():
    text = "Criteria:\n- age over 18\n- signed consent"
    assert [text[s:e] for s, e in sentence_spans(text)] == ["Criteria:", "- age over 18", "- signed consent"]


def test_words_normalise_like_the_eval():
    assert words("Ｆｕｌｌ-width COVID‑19, R0") == ["full", "width", "covid", "19", "r0"]


def test_rrf_weights_and_ranks():
    fused = rrf([(1.0, [1, 2, 3]), (1.0, [3, 1])], k=60)
    ids = [i for i, _ in fused]
    assert ids[0] == 1 and set(ids) == {1, 2, 3}
    assert abs(dict(fused)[3] - (1 / 63 + 1 / 61)) < 1e-12
    only_lexical = rrf([(0.0, [1, 2]), (1.0, [2, 1])], k=60)
    assert only_lexical[0][0] == 2


def test_fts_query_is_safe():
    q = fts_query('What is "the" governing-law? DROP TABLE; NEAR(a b) *')
    assert q is not None and '"governing"' in q and "DROP" not in q and '"drop"' in q
    assert fts_query("?!") is None

"""Evaluation metrics on hand-made cases (values computed by hand), and a cross-check
against the reference scorer ../shared/eval/score.py."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path
from typing import Any

import pytest

from assistant.errors import ConfigError
from assistant.evaluation.metrics import (
    RetrievedChunk,
    answer_correct,
    evidence_hit,
    evidence_strict_hit,
    ngram_coverage,
    normalise_answer,
    numbers_match,
    percentile,
    question_levels,
    quote_on_page,
    score_question,
    score_retrieval,
    token_coverage,
)
from assistant.evaluation.questions import EvidenceItem, Question, QuestionSetError, load_questions, parse_question
from assistant.evaluation.runner import (
    AnswerRecord,
    CitationCheck,
    QuestionRecord,
    assign_indexes,
    build_configs,
    latency_stats,
    parse_compare,
    summarise_answers,
)
from assistant.settings import Settings
from assistant.types import Timings

SHARED_EVAL = Path(__file__).resolve().parents[2].parent / "shared" / "eval"


def q(qid: str, *evidence: EvidenceItem, answerable: bool = True, answer: str | None = None) -> Question:
    return Question(qid, f"question {qid}?", answer, answerable, tuple(evidence))


def c(source: str, page: int | None = None, text: str | None = None, start: int | None = None,
      end: int | None = None) -> RetrievedChunk:
    return RetrievedChunk(source, page, text, start, end)


# -- single matches ------------------------------------------------------------------
def test_token_coverage_counts_with_multiplicity_and_is_inclusive_at_half():
    assert token_coverage("alpha beta gamma delta", "Alpha, BETA!") == 0.5
    assert token_coverage("alpha beta gamma delta", "alpha") == 0.25
    assert token_coverage("the the the cat", "the cat") == 0.5  # "the" matched once only
    assert token_coverage("", "anything") == 0.0 and token_coverage(None, "x") == 0.0


def test_bigram_rule_is_stricter_than_words():
    ev = EvidenceItem("a.pdf", None, "governed by the laws of Texas")
    in_order = c("a.pdf", 4, "This Agreement shall be governed by the laws of the State of Texas.")
    shuffled = c("a.pdf", 4, "Texas of laws the by governed")
    assert evidence_hit(in_order, ev) and evidence_strict_hit(in_order, ev)
    assert evidence_hit(shuffled, ev)  # every word is there ...
    assert not evidence_strict_hit(shuffled, ev)  # ... but none of the 5 bigrams
    assert ngram_coverage("one", "one two") == 1.0  # shorter than a bigram: word rule
    assert not evidence_hit(c("b.pdf", 4, in_order.text), ev)  # another document never hits


def test_char_offsets_overlap_half_open_and_take_precedence_over_text():
    ev = EvidenceItem("x.txt", None, "exact answer", 100, 120)
    assert evidence_hit(c("x.txt", None, "unrelated words", 90, 101), ev)  # overlaps by one char
    assert not evidence_hit(c("x.txt", None, "exact answer", 120, 200), ev)  # touching is not overlapping
    assert evidence_hit(c("x.txt", None, "0123456789", 95, None), ev)  # end = start + len(text) = 105
    assert evidence_strict_hit(c("x.txt", None, "zzz", 110, 130), ev)  # same rule for the strict level
    assert evidence_hit(c("x.txt", None, "the exact answer is", None, None), ev)  # no chunk offsets: text rule


# -- one question ---------------------------------------------------------------------
def test_doc_level_only_gold():
    qq = q("d", EvidenceItem("a.pdf"))
    assert question_levels(qq) == ("doc",)
    s = score_question(qq, [c("b.pdf", 1, "x"), c("a.pdf", 9, "y")])
    assert s.first_rank == {"doc": 2} and s.finest == "doc"
    assert s.hit("doc", 1) is False and s.hit("doc", 3) is True and s.hit("page", 3) is None
    assert s.reciprocal_rank == 0.5


def test_page_levels_and_finest_level_page():
    qq = q("p", EvidenceItem("a.pdf", 3))
    s = score_question(qq, [c("a.pdf", 5), c("a.pdf", 4), c("a.pdf", 3)])
    assert s.first_rank == {"doc": 1, "page": 3, "page_pm1": 2}
    assert s.finest == "page" and s.reciprocal_rank == pytest.approx(1 / 3)


def test_unknown_page_uses_text_evidence_only():
    qq = q("n", EvidenceItem("a.pdf", None, "governed by the laws of Texas"))
    assert question_levels(qq) == ("doc", "evidence", "evidence_strict")
    s = score_question(qq, [c("a.pdf", 1, "Payment terms."), c("a.pdf", 12, "governed by the laws of Texas.")])
    assert s.first_rank == {"doc": 1, "evidence": 2, "evidence_strict": 2} and s.reciprocal_rank == 0.5


def test_multiple_evidence_items_any_one_counts_and_doc_recall():
    qq = q("m", EvidenceItem("a.pdf", 2), EvidenceItem("b.pdf", 7))
    s = score_question(qq, [c("c.pdf", 7), c("b.pdf", 7), c("b.pdf", 8), c("a.pdf", 1)], ks=(1, 3, 5))
    assert s.first_rank == {"doc": 2, "page": 2, "page_pm1": 2}
    assert s.doc_recall == {1: 0.0, 3: 0.5, 5: 1.0}


def test_no_hit_within_ten_scores_zero():
    qq = q("z", EvidenceItem("a.pdf", 1))
    s = score_question(qq, [c("b.pdf", 1)] * 10 + [c("a.pdf", 1)], ks=(1, 20))  # rank 11: in @20, not in MRR@10
    assert s.first_rank["page"] == 11 and s.hit("page", 20) and s.reciprocal_rank == 0.0


# -- a run ----------------------------------------------------------------------------
def test_score_retrieval_by_hand():
    questions = [
        q("q1", EvidenceItem("a.pdf", 3, "alpha beta")),             # evidence at rank 2
        q("q2", EvidenceItem("b.txt", None, "gamma", 10, 15)),        # char gold, hit at rank 1
        q("q3", EvidenceItem("c.pdf")),                               # doc only, absent from the run
        q("q4", answerable=False),                                    # unanswerable: not scored
        q("q5", answerable=True),                                     # answerable without evidence: not scored
    ]
    run = {
        "q1": [c("a.pdf", 4, "nothing here"), c("a.pdf", 3, "alpha beta gamma")],
        "q2": [c("b.txt", None, "gamma", 12, 20)],
        "q4": [c("a.pdf", 1, "x")],
        "stray": [c("a.pdf", 1, "x")],
    }
    res = score_retrieval(questions, run, ks=(1, 3))
    assert (res["n_questions"], res["n_answerable"], res["n_unanswerable"]) == (5, 3, 2)
    assert res["n_missing_retrieval"] == 1 and res["unknown_retrieval_ids"] == 1
    assert res["n_scored"] == {"doc": 3, "page": 1, "evidence": 2}
    assert res["doc_hit"] == {"1": round(2 / 3, 4), "3": round(2 / 3, 4)}
    assert res["page_hit"] == {"1": 0.0, "3": 1.0} and res["page_pm1_hit"] == {"1": 1.0, "3": 1.0}
    assert res["evidence_hit"] == {"1": 0.5, "3": 1.0}
    assert res["doc_recall"] == {"1": round(2 / 3, 4), "3": round(2 / 3, 4)}
    assert res["mrr10"] == 0.5  # (1/2 + 1 + 0) / 3
    assert res["mrr10_level_counts"] == {"evidence": 2, "doc": 1}
    assert res["mrr10_by_level"] == {"doc": round(2 / 3, 4), "page": 0.5, "evidence": 0.75, "evidence_strict": 0.75}
    assert res["per_question_first_rank"]["q3"] == {"doc": None}


def test_no_answerable_questions_gives_none_not_zero():
    res = score_retrieval([q("u", answerable=False)], {}, ks=(1,))
    assert res["doc_hit"] == {"1": None} and res["mrr10"] is None


# -- answers ----------------------------------------------------------------------------
def test_normaliser_splits_numbers_and_words():
    n = normalise_answer("$1,234.5 million, up 12% in three years")
    assert n.numbers == (1234.5, 12.0, 3.0) and n.words == ("million", "up", "in", "years")


def test_numbers_within_one_percent_but_years_exact():
    assert numbers_match(1234.0, 1240.0)  # 0.48 %
    assert not numbers_match(1234.0, 1260.0)  # 2.1 %
    assert not numbers_match(2019.0, 2020.0)  # a year, though within 1 %
    assert numbers_match(0.5, 0.5) and not numbers_match(5.0, 6.0)


def test_answer_correct_short_answers():
    assert answer_correct("1,234", "Revenue was 1,240 dollars.") is True
    assert answer_correct("1,234", "Revenue was 1,260 dollars.") is False
    assert answer_correct("60 days", "Sixty (60) days' notice is required [1].") is True
    assert answer_correct("60 days", "Thirty days.") is False
    assert answer_correct("New York", "The laws of the State of New York govern.") is True
    assert answer_correct("Texas", "Texas", abstained=True) is False  # an abstention is never right
    assert answer_correct(None, "anything") is None
    assert answer_correct(" ".join(["word"] * 11), "word") is None  # long reference: not scored


def test_answer_correct_yes_no_labels():
    assert answer_correct("Yes", "Yes, liability is capped at the fees paid [1].") is True
    assert answer_correct("Yes", "The licensee may audit the records once a year [1].") is True  # asserts content
    assert answer_correct("Yes", "The contract does not restrict assignment.") is False
    assert answer_correct("No", "No. There is no such clause.") is True
    assert answer_correct("No", "Not in your documents.", abstained=True) is True
    assert answer_correct("yes", "No.") is False


def test_quote_on_page():
    page = "Line one.\nThe term is   three\nyears. End."
    quote = "The term is   three\nyears."
    start = page.index(quote)
    assert quote_on_page(quote, start, start + len(quote), page)  # at its offsets
    assert quote_on_page("The term is three years.", 0, 5, page)  # wrapped text, wrong offsets
    assert not quote_on_page("The term is five years.", start, start + 23, page)
    assert not quote_on_page("Line one.", 0, 9, None)  # page not in the index


def test_percentile_linear():
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([float(i) for i in range(1, 101)], 95) == pytest.approx(95.05)
    assert percentile([7.0], 95) == 7.0 and percentile([], 50) is None


def _record(qq: Question, *, abstained: bool = False, correct: bool | None = None, cites: tuple[bool, ...] = (),
            sentences: int = 0, unsupported: int = 0, ms: float = 10.0) -> QuestionRecord:
    checks = tuple(CitationCheck(i, "a.pdf", 1, "q", 0, 1, ok) for i, ok in enumerate(cites, start=1))
    answer = AnswerRecord("text", abstained, "generate", checks, sentences, unsupported, correct,
                          Timings(retrieval_ms=ms, first_token_ms=ms * 10, total_ms=ms * 20))
    return QuestionRecord(qq, (), ms, None, answer)


def test_summarise_answers_by_hand():
    a1, a2, u1, u2 = q("a1"), q("a2"), q("u1", answerable=False), q("u2", answerable=False)
    records = [
        _record(a1, correct=True, cites=(True, False), sentences=3, unsupported=1, ms=10),
        _record(a2, abstained=True, correct=False, sentences=2, unsupported=2, ms=30),  # abstained: no sentence counts
        _record(u1, abstained=True, ms=20),
        _record(u2, cites=(True,), sentences=1, ms=40),
        QuestionRecord(q("e"), None, 0.0, None, None, error="InvalidQuestion: too long"),
    ]
    s = summarise_answers(records)
    assert (s.correct, s.n_correct_scored) == (0.5, 2)
    assert (s.citation_precision, s.n_citations) == (round(2 / 3, 4), 3)
    assert (s.unsupported_rate, s.n_sentences) == (0.25, 4)
    assert (s.abstention_rate, s.n_unanswerable) == (0.5, 2)
    assert (s.false_abstention_rate, s.n_answerable) == (0.5, 2)
    assert s.errors == 1
    lat = {x.name: x for x in latency_stats(records)}
    assert lat["retrieval_ms"].n == 4 and lat["retrieval_ms"].p50 == 25.0  # the failed retrieval is left out
    assert lat["total_ms"].p50 == 500.0 and lat["first_token_ms"].p95 == pytest.approx(385.0)


# -- question files -------------------------------------------------------------------
def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = json.dumps({"id": "a", "question": "Q?", "answer": "Texas", "answerable": True,
                   "evidence": [{"source": "x.pdf", "page": 2, "text": "t", "char_start": None, "char_end": None}]})


def test_load_questions_and_limit(tmp_path: Path):
    second = GOOD.replace('"a"', '"b"')
    path = _write(tmp_path, [GOOD, "", second])
    got = load_questions(path)
    assert [x.id for x in got] == ["a", "b"] and got[0].evidence[0] == EvidenceItem("x.pdf", 2, "t")
    assert [x.id for x in load_questions(path, limit=1)] == ["a"]


@pytest.mark.parametrize("bad, message", [
    ("{not json", "line 2"),
    (json.dumps({"id": "b", "question": "Q?", "evidence": []}), "'answerable' must be true or false"),
    (json.dumps({"id": "b", "question": "Q?", "answerable": True, "evidence": [{"source": "x", "char_start": 1}]}),
     "both char_start and char_end"),
    (json.dumps({"id": "b", "question": "Q?", "answerable": True, "evidence": [{"source": "x", "page": 0}]}),
     "1-based"),
    (GOOD, "already used on line 1"),
])
def test_bad_line_names_file_and_line(tmp_path: Path, bad: str, message: str):
    path = _write(tmp_path, [GOOD, bad])
    with pytest.raises(QuestionSetError) as err:
        load_questions(path)
    assert str(path) in str(err.value) and "line 2" in str(err.value) and message in str(err.value)


def test_parse_question_rejects_non_objects():
    with pytest.raises(ValueError):
        parse_question(["a"])


# -- configurations --------------------------------------------------------------------
def test_compare_values_parse_as_json_else_string():
    assert parse_compare("retrieval.mode=dense, lexical") == ("retrieval.mode", (("dense", "dense"), ("lexical", "lexical")))
    assert parse_compare("retrieval.k=3,10")[1] == (("3", 3), ("10", 10))
    with pytest.raises(ConfigError):
        parse_compare("retrieval.mode")


def test_build_configs_product_and_validation():
    configs = build_configs(Settings(), ["retrieval.mode=dense,hybrid", "retrieval.k=3,10"])
    assert [x.label for x in configs][:2] == ["retrieval.mode=dense, retrieval.k=3", "retrieval.mode=dense, retrieval.k=10"]
    assert configs[1].settings.retrieval.k == 10 and configs[1].settings.retrieval.mode == "dense"
    with pytest.raises(ConfigError):
        build_configs(Settings(), ["retrieval.nope=1"])
    with pytest.raises(ConfigError):
        build_configs(Settings(), ["retrieval.mode=fuzzy"])


def test_index_per_domain_but_shared_across_retrieval_modes(tmp_path: Path):
    corpus = tmp_path / "cuad-dev"
    modes = assign_indexes(build_configs(Settings(domain="legal"), ["retrieval.mode=dense,hybrid"]), corpus, None)
    assert {str(x.settings.index.dir) for x in modes} == {str(Path("var/eval/cuad-dev-legal"))}
    domains = assign_indexes(build_configs(Settings(), ["domain=general,legal"]), corpus, tmp_path / "ix")
    assert [x.settings.index.dir.name for x in domains] == ["ix-domain=general", "ix-domain=legal"]


# -- cross-check with the reference scorer ------------------------------------------------
def _reference_scorer() -> Any:
    path = SHARED_EVAL / "score.py"
    if not path.is_file():
        pytest.skip("../shared/eval/score.py is not here")
    spec = importlib.util.spec_from_file_location("reference_score", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_chunk(rng: random.Random, qd: dict[str, Any], sources: list[str]) -> dict[str, Any]:
    """A chunk near the gold (same doc, page ± 1, part of the evidence, overlapping offsets) or elsewhere."""
    ev = rng.choice(qd["evidence"]) if qd["evidence"] and rng.random() < 0.7 else None
    source = ev["source"] if ev else rng.choice(sources)
    page = None
    if ev and ev.get("page") is not None:
        page = max(1, ev["page"] + rng.choice((-2, -1, 0, 0, 1)))
    elif source.endswith(".pdf"):
        page = rng.randint(1, 30)
    words = (ev.get("text") or "" if ev else "").split()
    lo = rng.randint(0, max(0, len(words) - 1))
    text = " ".join(words[lo:lo + rng.randint(0, 2 * len(words) + 1)] + ["filler", "of", "the"] * rng.randint(0, 3))
    if rng.random() < 0.3:
        rng.shuffle(words)
        text = " ".join(words)
    start = end = None
    if source.endswith(".txt"):
        base = ev["char_start"] if ev and ev.get("char_start") is not None else 0
        start = max(0, base + rng.randint(-300, 300))
        end = None if rng.random() < 0.2 else start + rng.randint(1, 400)
    return {"source": source, "page": page, "text": text or None, "char_start": start, "char_end": end}


def test_metrics_equal_reference_scorer_on_generated_runs():
    ref = _reference_scorer()
    rng = random.Random(7)
    qsets = [SHARED_EVAL / n for n in ("legal-cuad-dev.jsonl", "medical-covidqa-dev.jsonl", "finance-sec10q.jsonl")]
    for path in [p for p in qsets if p.is_file()]:
        raw = ref.load_questions(str(path))
        sources = sorted({e["source"] for qd in raw for e in qd["evidence"]}) or ["none.pdf"]
        run = {qd["id"]: [_fake_chunk(rng, qd, sources) for _ in range(rng.randint(0, 12))]
               for qd in raw if rng.random() < 0.95}  # some questions missing from the run
        run["not-a-question"] = []
        expected = ref.score(raw, run, (1, 3, 5, 10))
        ours = score_retrieval([parse_question(x) for x in raw],
                               {k: [RetrievedChunk(**ch) for ch in v] for k, v in run.items()}, (1, 3, 5, 10))
        assert ours == expected, path.name

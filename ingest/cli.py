"""``slm ingest`` and ``slm index``: thin commands over :mod:`ingest.pipeline`."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from assistant.cli import domain_option, index_option, settings_from
from ingest.pipeline import FileResult, IngestResult

_COLOURS = {"added": "green", "updated": "cyan", "unchanged": None, "skipped": "yellow", "failed": "red", "deleted": "magenta"}


def _summary(result: IngestResult, *, verbose: bool) -> None:
    counts = ", ".join(f"{result.count(s)} {s}" for s in ("added", "updated", "unchanged", "deleted", "skipped", "failed")
                       if result.count(s))
    click.echo(f"\n{result.index_dir}: {counts or 'nothing to do'} in {result.seconds:.1f} s "
               f"({result.pages} pages, {result.chunks} new chunks; {result.chunks_total} chunks in the index)")
    for f in result.files:
        if f.status in ("failed", "skipped", "deleted") or (verbose and f.status != "unchanged"):
            pages = f"{f.pages} pages, " if f.pages else ""
            detail = f": {f.reason}" if f.reason else (f" ({pages}{f.chunks} chunks)" if f.chunks else "")
            click.secho(f"  {f.status:<8} {f.source}{detail}", fg=_COLOURS[f.status], err=f.status == "failed")


@click.command("ingest")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@index_option
@domain_option
@click.option("--prune", is_flag=True, help="remove documents whose files are gone")
@click.option("--redact", is_flag=True, default=None, help="replace emails, phones, ids, MRNs, birth dates in the indexed text")
@click.option("--delete", "delete", multiple=True, metavar="SOURCE", help="remove this document from the index (repeatable)")
@click.option("--progress/--no-progress", default=None, help="progress bars (default: on a terminal)")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.option("-V", "--list", "verbose", is_flag=True, help="list every file, not only problems")
@click.pass_context
def ingest_command(ctx: click.Context, paths: tuple[str, ...], index_dir: str | None, domain: str | None,
                   prune: bool, redact: bool | None, delete: tuple[str, ...], progress: bool | None, as_json: bool,
                   verbose: bool) -> None:
    """Add PDFs, text, markdown, HTML and DOCX files (or folders of them) to the index.

    Unchanged files are skipped; changed files replace their old version. Exits 1
    if any file failed (the others are committed).
    """
    from ingest.api import build_pipeline

    if not paths and not delete and not prune:
        raise click.UsageError("give files or folders to ingest, e.g. `slm ingest data/legal`")
    settings = settings_from(ctx.find_root(), index={"dir": index_dir} if index_dir else {}, domain=domain,
                             ingest={"redact": redact})
    pipeline = build_pipeline(settings)
    index = settings.index.dir
    if delete:
        result = pipeline.delete(list(delete), index)
    else:
        result = _run_with_progress(pipeline, paths, index, prune, progress)
    if as_json:
        click.echo(json.dumps(result_json(result), indent=2))
    else:
        _summary(result, verbose=verbose)
    ctx.exit(0 if result.ok else 1)


def _run_with_progress(pipeline: Any, paths: tuple[str, ...], index: Any, prune: bool, progress: bool | None) -> IngestResult:
    from tqdm import tqdm

    from ingest.pipeline import discover

    show = sys.stderr.isatty() if progress is None else progress
    n_files = len(discover(paths)[0])
    with tqdm(total=n_files, desc="files", unit="file", disable=not show, position=0) as files, \
         tqdm(desc="chunks", unit="chunk", disable=not show, position=1) as chunks:
        def on_file(r: FileResult) -> None:
            files.update(1)

        return pipeline.run(list(paths), index, prune=prune, on_file=on_file, on_chunks=chunks.update)


def result_json(result: IngestResult) -> dict[str, Any]:
    return {
        "index": str(result.index_dir), "ok": result.ok, "seconds": round(result.seconds, 3),
        "chunks_total": result.chunks_total,
        "counts": {s: result.count(s) for s in ("added", "updated", "unchanged", "deleted", "skipped", "failed")},
        "files": [f.__dict__ for f in result.files],
    }


@click.group("index")
def index_group() -> None:
    """Inspect an index."""


@index_group.command("stats")
@index_option
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def stats(ctx: click.Context, index_dir: str | None, as_json: bool) -> None:
    """Documents, pages, chunks, size and embedder of an index."""
    from assistant.index import IndexStore

    settings = settings_from(ctx.find_root(), index={"dir": index_dir} if index_dir else {})
    with IndexStore.open(settings.index.dir) as store:
        st = store.stats()
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    for key in ("index", "documents", "pages", "chunks", "embedder", "dim", "domain", "updated"):
        click.echo(f"{key:<10} {st[key]}")
    click.echo(f"{'size':<10} {st['size_bytes'] / 1e6:.1f} MB")
    click.echo(f"{'chunking':<10} {st['chunking']}")


@index_group.command("list")
@index_option
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_documents(ctx: click.Context, index_dir: str | None, as_json: bool) -> None:
    """The documents in an index."""
    from assistant.index import IndexStore

    settings = settings_from(ctx.find_root(), index={"dir": index_dir} if index_dir else {})
    with IndexStore.open(settings.index.dir) as store:
        docs = store.documents()
    if as_json:
        click.echo(json.dumps(docs, indent=2, ensure_ascii=False))
        return
    for d in docs:
        click.echo(f"{d['source']}  ({d['kind']}, {d['pages'] or 1} pages, {d['chunks']} chunks, added {d['added_at']})")

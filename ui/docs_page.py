"""The documents page: upload and ingest files, list, delete and re-index documents."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from assistant import AssistantError, Settings
from ingest import FileResult, IngestResult
from ui import backend
from ui.options import Options
from ui.render import md_escape
from ui.uiconfig import UIConfig
from ui.uploads import (
    ALLOWED_SUFFIXES,
    UnsafeName,
    check_suffix,
    discard_staged,
    files_dir,
    keep_staged,
    remove_kept,
    resolve_source,
    sanitize_filename,
    save_staged,
)

log = logging.getLogger(__name__)
REPORT = "ingest_report"
UPLOADER_N = "uploader_n"
_OK = {"added", "updated", "unchanged", "deleted"}
_ICON = {"added": ":material/check_circle:", "updated": ":material/sync:", "unchanged": ":material/check:",
         "deleted": ":material/delete:", "skipped": ":material/warning:", "failed": ":material/error:"}


@dataclass(frozen=True)
class Row:
    """One line of an ingest report."""

    name: str
    status: str
    detail: str = ""


def _row(r: FileResult) -> Row:
    if r.reason:
        return Row(r.source, r.status, r.reason)
    detail = f"{r.pages or 1} pages, {r.chunks} chunks, {r.seconds:.1f} s" if r.chunks else ""
    return Row(r.source, r.status, detail)


def _pipeline_settings(opts: Options, base: Settings) -> Settings:
    # An existing collection keeps the domain it was built with: its chunking rules follow it.
    domain = backend.index_domain(opts.index_dir) or opts.domain
    return backend.effective_settings(base, opts.index_dir, domain, None)


def _validate(files: list[Any], cfg: UIConfig) -> tuple[dict[str, Any], list[Row]]:
    accepted: dict[str, Any] = {}
    rows: list[Row] = []
    for f in files:
        try:
            name = sanitize_filename(f.name)
            check_suffix(name)
        except UnsafeName as exc:
            rows.append(Row(f.name, "failed", str(exc)))
            continue
        if f.size > cfg.max_upload_bytes:
            rows.append(Row(name, "failed", f"{f.size / 2**20:.0f} MB is over the {cfg.max_upload_mb} MB limit"))
        elif name in accepted:
            rows.append(Row(name, "failed", "two files with this name in one upload; rename one"))
        else:
            accepted[name] = f
    return accepted, rows


def _run(label: str, n_files: int, work: Any) -> IngestResult:
    """Run ``work(on_file)`` under a status box with a per-file progress bar."""
    with st.status(label, expanded=True) as status:
        bar = st.progress(0.0, text=f"0 / {n_files} files")
        done = 0

        def on_file(r: FileResult) -> None:
            nonlocal done
            done += 1
            bar.progress(min(done / max(n_files, 1), 1.0), text=f"{done} / {n_files} files · {r.source}: {r.status}")

        result = work(on_file)
        status.update(label=f"{label} done in {result.seconds:.1f} s", state="complete", expanded=False)
    return result


def ingest_uploads(files: list[Any], opts: Options, base: Settings, cfg: UIConfig) -> list[Row]:
    """Save, ingest and keep (or discard) uploaded files; one report row per file."""
    accepted, rows = _validate(files, cfg)
    if not accepted:
        return rows
    staged: dict[str, Path] = {name: save_staged(opts.index_dir, name, f.getvalue()) for name, f in accepted.items()}
    try:
        pipeline = backend.make_pipeline(_pipeline_settings(opts, base), cfg.fake_models)
        result = _run(f"Ingesting {len(staged)} file(s) into {opts.collection}", len(staged),
                      lambda on_file: pipeline.run(list(staged.values()), opts.index_dir, on_file=on_file))
    except AssistantError as exc:
        for path in staged.values():
            discard_staged(path)
        return rows + [Row(name, "failed", str(exc)) for name in staged]
    for r in result.files:
        done = staged.pop(r.source) if r.source in staged else None
        if done is not None and r.status in _OK:
            keep_staged(opts.index_dir, done)
        elif done is not None:
            discard_staged(done)
        rows.append(_row(r))
    for name, path in staged.items():  # not reported by the pipeline: should not happen
        discard_staged(path)
        rows.append(Row(name, "failed", "not processed"))
    return rows


def _report(rows: list[Row]) -> None:
    for r in rows:
        line = f"{_ICON.get(r.status, '•')} **{md_escape(r.name)}** — {r.status}" + (f": {md_escape(r.detail)}" if r.detail else "")
        (st.error if r.status == "failed" else st.warning if r.status == "skipped" else st.markdown)(line)


def _upload_section(opts: Options, base: Settings, cfg: UIConfig) -> None:
    n = st.session_state.setdefault(UPLOADER_N, 0)
    files = st.file_uploader(
        "Add documents (PDF, text, Markdown, HTML, DOCX)", type=[s.lstrip(".") for s in ALLOWED_SUFFIXES],
        accept_multiple_files=True, key=f"uploader-{n}", max_upload_size=cfg.max_upload_mb,
        help=f"Files stay on this machine, in {files_dir(opts.index_dir)}. Up to {cfg.max_upload_mb} MB each.",
    )
    if files and st.button(f"Ingest {len(files)} file(s) into {opts.collection}", type="primary", key="ingest"):
        rows = ingest_uploads(list(files), opts, base, cfg)
        st.session_state[REPORT] = {"collection": opts.collection, "rows": rows}
        st.session_state[UPLOADER_N] = n + 1  # a fresh, empty uploader
        st.rerun()


def _documents_table(docs: list[dict[str, Any]], index_dir: Path) -> None:
    rows = [{
        "Document": d["source"], "Pages": d.get("pages") or 1, "Chunks": d.get("chunks"),
        "Added": str(d.get("added_at") or "").replace("T", " ").rstrip("Z"),
        "Size (KB)": round((d.get("size") or 0) / 1024), "Page images": resolve_source(index_dir, d["source"]) is not None,
    } for d in docs]
    st.dataframe(rows, hide_index=True, width="stretch")


def _maintenance(docs: list[dict[str, Any]], opts: Options, base: Settings, cfg: UIConfig) -> None:
    left, right = st.columns([3, 2], vertical_alignment="bottom")
    target = left.selectbox("Document", [d["source"] for d in docs], key="delete-target")
    if right.button("Delete from index", key="delete", icon=":material/delete:") and target:
        try:
            result = backend.make_pipeline(_pipeline_settings(opts, base), cfg.fake_models).delete([target], opts.index_dir)
        except AssistantError as exc:
            st.session_state[REPORT] = {"collection": opts.collection, "rows": [Row(target, "failed", str(exc))]}
        else:
            if result.ok:
                remove_kept(opts.index_dir, target)
            st.session_state[REPORT] = {"collection": opts.collection, "rows": [_row(r) for r in result.files]}
        st.rerun()
    kept = files_dir(opts.index_dir)
    if st.button("Re-index uploaded files", key="reindex", icon=":material/refresh:",
                 help="Re-reads the files kept in this collection: changed files are updated, unchanged ones skipped."):
        try:
            pipeline = backend.make_pipeline(_pipeline_settings(opts, base), cfg.fake_models)
            n_files = sum(1 for p in kept.iterdir() if p.is_file() and not p.name.startswith(".")) if kept.is_dir() else 0
            result = _run("Re-indexing", n_files, lambda on_file: pipeline.run([kept], opts.index_dir, on_file=on_file))
            rows = [_row(r) for r in result.files] or [Row(str(kept), "skipped", "no uploaded files kept here")]
        except AssistantError as exc:
            rows = [Row(opts.collection, "failed", str(exc))]
        st.session_state[REPORT] = {"collection": opts.collection, "rows": rows}
        st.rerun()


def render_documents(opts: Options, base: Settings, cfg: UIConfig) -> None:
    st.subheader(f"Documents in {opts.collection}")
    report = st.session_state.get(REPORT)
    if report and report.get("collection") == opts.collection:
        _report(report["rows"])
    _upload_section(opts, base, cfg)
    try:
        store = backend.get_store(opts.index_dir)
    except AssistantError as exc:
        st.error(str(exc))
        return
    if store is None:
        st.info(f"No documents yet. The index will be created in {md_escape(str(opts.index_dir))}.")
        return
    stats = store.stats()
    docs = store.documents()
    c = st.columns(4)
    c[0].metric("Documents", stats["documents"])
    c[1].metric("Pages", stats["pages"])
    c[2].metric("Chunks", stats["chunks"])
    c[3].metric("Domain", stats.get("domain") or "general")
    if docs:
        _documents_table(docs, opts.index_dir)
        _maintenance(docs, opts, base, cfg)

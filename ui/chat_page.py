"""The chat page: evidence first, the streamed answer, then verified citations with their pages."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import streamlit as st

from assistant import Answer, AssistantError, Citation, Evidence, Hit, Settings, Token
from assistant.text import where
from ui import backend
from ui.export import to_json, to_markdown
from ui.options import Options
from ui.pdfview import PageImage, highlight_html, render_page
from ui.render import answer_sentences, md_escape, timings_line
from ui.uiconfig import UIConfig
from ui.uploads import has_index, resolve_source

log = logging.getLogger(__name__)
TURNS = "turns"
SNIPPET_CHARS = 260


@st.cache_data(max_entries=64, show_spinner="Rendering the page…")
def _page_png(path: str, mtime_ns: int, page: int, quote: str) -> PageImage:
    return render_page(Path(path), page, quote)


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[:SNIPPET_CHARS].rsplit(" ", 1)[0] + " …"


def _passages(hits: tuple[Hit, ...], limit: int) -> None:
    for i, h in enumerate(hits[:limit], start=1):
        st.markdown(f"({i}) **{md_escape(where(h.source, h.page))}** — “{md_escape(_snippet(h.text))}”")


def _show_page(index_dir: Path, c: Citation) -> None:
    """The cited page as an image with the quote highlighted, or its text with the quote marked."""
    path = resolve_source(index_dir, c.source)
    if path is not None and path.suffix.lower() == ".pdf" and c.page:
        try:
            img = _page_png(str(path), path.stat().st_mtime_ns, c.page, c.quote)
        except Exception as exc:  # noqa: BLE001 - a broken file must not end the session
            st.warning(f"Could not render page {c.page} of {c.source}: {exc}")
        else:
            st.image(img.png, caption=f"{c.source}, page {c.page}" + (" (quote highlighted)" if img.found else ""),
                     width="stretch")
            if img.found:
                return
            st.caption("The quote could not be located in the rendered page's text layer; the indexed text follows.")
    store = backend.get_store(index_dir)
    text = store.page_text(c.source, c.page) if store is not None else None
    if text is None:
        st.caption("This page is no longer in the index (the document was deleted or re-ingested).")
        return
    if path is None:
        st.caption("The original file was not uploaded here, so the page's indexed text is shown.")
    st.html(highlight_html(text, c.char_start, c.char_end, c.quote))


def _grouped(citations: tuple[Citation, ...]) -> list[tuple[tuple[int, ...], Citation]]:
    """Citations quoting the same passage shown once, with all their numbers."""
    groups: dict[tuple[str, int | None, str], list[Citation]] = {}
    for c in citations:
        groups.setdefault((c.source, c.page, " ".join(c.quote.split())), []).append(c)
    return [(tuple(c.n for c in cs), cs[0]) for cs in groups.values()]


def _citation(turn: dict[str, Any], numbers: tuple[int, ...], c: Citation) -> None:
    refs = " ".join(f"\\[{n}\\]" for n in numbers)
    st.markdown(f"**{refs}** {md_escape(c.source)} · **p. {c.page if c.page is not None else '–'}**")
    st.markdown(f"> “{md_escape(c.quote)}”")
    label = f"Show page {c.page} of {c.source}" if c.page is not None else f"Show {c.source}"
    box = st.expander(md_escape(label), key=f"page-{turn['id']}-{c.n}", on_change="rerun",
                      icon=":material/description:")
    if box.open:
        with box:
            _show_page(Path(turn["index_dir"]), c)


def _answer_text(answer: Answer, *, warn: bool = True) -> None:
    parts = []
    unsupported = 0
    for text, cites, ok in answer_sentences(answer):
        refs = "".join(f" \\[{n}\\]" for n in cites) if answer.citations else ""
        if ok:
            parts.append(md_escape(text) + refs)
        else:
            unsupported += 1
            parts.append(f":orange-background[{md_escape(text)}] :orange[:material/warning: **unsupported**]")
    st.markdown(" ".join(parts))
    if unsupported and warn:
        st.warning(f"{unsupported} sentence(s) are not supported by your documents (marked unsupported). "
                   "Check them against the sources before relying on them.")


def render_turn(turn: dict[str, Any]) -> None:
    """One assistant message: answer or abstention, citations, disclaimer, timings."""
    if turn.get("error"):
        st.error(turn["error"], icon=":material/error:")
        return
    answer: Answer = turn["answer"]
    if answer.abstained:
        if turn.get("streamed"):
            st.warning("The generated answer was not supported by your documents, so it was withdrawn.")
            if answer.sentences:
                with st.expander("What the model wrote (withdrawn)", icon=":material/visibility:"):
                    _answer_text(answer, warn=False)
        st.info(f"**Not in your documents.** {md_escape(answer.text)}", icon=":material/search_off:")
        if answer.hits:
            st.markdown("**Closest passages**")
            _passages(answer.hits, 3)
    else:
        _answer_text(answer)
        if answer.citations:
            st.markdown("**Sources**")
            for numbers, c in _grouped(answer.citations):
                _citation(turn, numbers, c)
    if answer.disclaimer:
        st.caption(f":material/gavel: {md_escape(answer.disclaimer)}")
    mode = "quotes only" if answer.mode == "extractive" else turn.get("model", "")
    st.caption(f"{md_escape(timings_line(answer.timings))} · {md_escape(mode)}")


def _stream(live: Any, asst: Any, question: str, history: list[tuple[str, str]], opts: Options) -> tuple[Answer, bool]:
    """Show the evidence, stream the tokens into ``live``; return the final Answer."""
    events = asst.stream(question, k=opts.k, history=history, extractive=opts.extractive,
                         max_tokens=opts.max_tokens, temperature=opts.temperature)
    holder: dict[str, Answer] = {}
    try:
        return _consume(live, events, holder, opts)
    finally:
        # a rerun (new question, page switch) can interrupt the stream: closing the
        # generator now releases the shared model's lock at once, not at garbage collection
        events.close()


def _consume(live: Any, events: Any, holder: dict[str, Answer], opts: Options) -> tuple[Answer, bool]:
    with live.container():
        status = st.empty()
        status.caption("Searching your documents…")
        first = next(events)
        if isinstance(first, Evidence):
            status.caption(f"Found {len(first.hits)} passages in {first.retrieval_ms:.0f} ms"
                           + ("" if opts.extractive else " · the model is reading them (the first words can take "
                              "several seconds on a CPU)…"))
            with st.container(border=True):
                st.markdown("**Evidence**")
                _passages(first.hits, opts.k)
        elif isinstance(first, Answer):
            holder["answer"] = first

        def tokens() -> Any:
            for event in events:
                if isinstance(event, Token):
                    yield md_escape(event.text, squash=False)  # model text is shown, never interpreted
                elif isinstance(event, Answer):
                    holder["answer"] = event

        streamed = st.write_stream(tokens, cursor="▌") if "answer" not in holder else ""
    if "answer" not in holder:
        raise AssistantError("the assistant stopped without an answer; try again")
    return holder["answer"], bool(streamed)


def _history(turns: list[dict[str, Any]], collection: str) -> list[tuple[str, str]]:
    return [(t["question"], t["answer"].text) for t in turns
            if t.get("answer") is not None and not t["answer"].abstained and t.get("collection") == collection]


def _ask(question: str, opts: Options, base: Settings, cfg: UIConfig) -> None:
    turns: list[dict[str, Any]] = st.session_state[TURNS]
    turn: dict[str, Any] = {
        "id": uuid.uuid4().hex[:12], "question": question, "collection": opts.collection,
        "index_dir": str(opts.index_dir), "domain": opts.domain, "model": opts.model_label,
        "answer": None, "error": None, "streamed": False,
    }
    with st.chat_message("user"):
        st.markdown(md_escape(question))
    with st.chat_message("assistant"):
        live = st.empty()
        try:
            settings = backend.effective_settings(base, opts.index_dir, opts.domain, opts.model_path)
            asst = backend.get_assistant(settings, cfg.fake_models)
            turn["answer"], turn["streamed"] = _stream(live, asst, question, _history(turns, opts.collection), opts)
        except AssistantError as exc:
            turn["error"] = str(exc)
        except Exception as exc:  # noqa: BLE001 - show it, keep the session
            log.exception("answering failed")
            turn["error"] = f"Unexpected {type(exc).__name__}: {exc}"
        turns.append(turn)
        with live.container():
            render_turn(turn)


def render_chat(opts: Options, base: Settings, cfg: UIConfig) -> None:
    st.subheader(f"Ask {opts.collection}")
    st.caption(f"Domain: {md_escape(opts.domain)} · model: {md_escape(opts.model_label)}"
               + (" · quotes only" if opts.extractive else "")
               + " · every answer cites the document, page and passage it rests on.")
    turns = st.session_state.setdefault(TURNS, [])
    for turn in turns:
        with st.chat_message("user"):
            st.markdown(md_escape(turn["question"]))
        with st.chat_message("assistant"):
            render_turn(turn)
    ready = has_index(opts.index_dir)
    if not ready:
        st.info(f"The collection **{md_escape(opts.collection)}** has no documents yet: open **Documents** in the "
                "sidebar and upload some.", icon=":material/upload_file:")
    question = st.chat_input("Ask a question about your documents", disabled=not ready, max_chars=4000)
    if question:
        _ask(question, opts, base, cfg)


def render_conversation_tools() -> None:
    """Sidebar: export the conversation (Markdown, JSON) or clear it."""
    turns = st.session_state.get(TURNS) or []
    if not turns:
        return
    st.markdown("**Conversation**")
    c1, c2 = st.columns(2)
    c1.download_button("Markdown", to_markdown(turns), file_name="conversation.md", mime="text/markdown",
                       icon=":material/download:", on_click="ignore", key="export-md")
    c2.download_button("JSON", to_json(turns), file_name="conversation.json", mime="application/json",
                       icon=":material/download:", on_click="ignore", key="export-json")
    if st.button("Clear conversation", key="clear-chat"):
        st.session_state[TURNS] = []
        st.rerun()

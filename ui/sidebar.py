"""The sidebar: page, collection, domain, model and answer settings."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from assistant import AssistantError, Settings
from assistant.domain import available_domains
from ui import backend
from ui.options import CHAT, PAGES, Options
from ui.uiconfig import UIConfig
from ui.uploads import UnsafeName, list_collections, sanitize_collection

BUNDLED = "Bundled: SmolLM2-135M-Instruct (Q4_1)"
OTHER = "Other .gguf path…"
MAX_MODELS_LISTED = 50


def _new_collection(root: Path) -> None:
    """on_click of "Create": make the folder and select it (before the selectbox exists)."""
    raw = st.session_state.get("new-collection", "")
    try:
        name = sanitize_collection(raw)
        (root / name).mkdir(parents=True, exist_ok=True, mode=0o700)
    except (UnsafeName, OSError) as exc:
        st.session_state["collection-error"] = str(exc)
        return
    st.session_state["collection"] = name
    st.session_state["new-collection"] = ""


def _collection(cfg: UIConfig) -> str:
    st.session_state.setdefault("collection", cfg.collection)
    names = list_collections(cfg.collections_root, st.session_state["collection"])
    name = st.selectbox("Collection", names, key="collection", help=f"Folders under {cfg.collections_root}")
    with st.popover("New collection", icon=":material/create_new_folder:"):
        st.text_input("Name", key="new-collection", placeholder="e.g. contracts-2024")
        st.button("Create", key="create-collection", on_click=_new_collection, args=(cfg.collections_root,))
    if err := st.session_state.pop("collection-error", None):
        st.error(err)
    return str(name)


def _domain(cfg: UIConfig, index_dir: Path, base: Settings, collection: str) -> str:
    built_with = None
    try:
        built_with = backend.index_domain(index_dir)
    except AssistantError as exc:
        st.error(str(exc))
    options = available_domains()
    default = cfg.domain or built_with or base.domain
    if default not in options:
        options.append(default)
    key = f"domain::{collection}"
    st.session_state.setdefault(key, default)
    domain = str(st.selectbox("Domain", options, key=key, help="Prompts, disclaimer and abstention wording"))
    if built_with and domain != built_with:
        st.caption(f"This collection was built for the {built_with} domain; new uploads keep its chunking.")
    return domain


def _model(cfg: UIConfig, base: Settings) -> tuple[str | None, str]:
    """(model path or None for the configured default, label)."""
    if base.llm.backend == "openai":
        st.caption(f"Model: served at {base.llm.base_url}")
        return None, base.llm.model_name
    configured = base.llm.model_path
    choices: dict[str, str | None] = {f"Configured: {configured.name}" if configured else BUNDLED: None}
    if cfg.models_dir.is_dir():
        for p in sorted(cfg.models_dir.rglob("*.gguf"))[:MAX_MODELS_LISTED]:
            choices[str(p.relative_to(cfg.models_dir))] = str(p.resolve())
    choices[OTHER] = None
    label = str(st.selectbox("Model", list(choices), key="model", help=f"GGUF files in {cfg.models_dir}"))
    if cfg.fake_models:
        st.caption("Test mode: fake models answer (SLM_UI_FAKE_MODELS=1)")
    if label == OTHER:
        path = st.text_input("GGUF file", key="model-path", placeholder="/path/to/model.gguf").strip()
        return (path or None), (Path(path).name if path else BUNDLED)
    return choices[label], (label.split(": ", 1)[-1] if label in (BUNDLED,) or label.startswith("Configured") else label)


def render_sidebar(cfg: UIConfig, base: Settings) -> Options:
    """Draw the sidebar and return what the user chose."""
    with st.sidebar:
        st.markdown("### :material/library_books: slm-assistant")
        page = str(st.segmented_control("Page", PAGES, default=CHAT, key="page", required=True,
                                        label_visibility="collapsed") or CHAT)
        collection = _collection(cfg)
        index_dir = cfg.collections_root / collection
        domain = _domain(cfg, index_dir, base, collection)
        with st.expander("Answer settings", expanded=True, icon=":material/tune:"):
            model_path, model_label = _model(cfg, base)
            k = st.slider("Passages (top-k)", 1, 20, base.retrieval.k, key="k")
            temperature = st.slider("Temperature", 0.0, 1.5, float(base.llm.temperature), step=0.05, key="temperature")
            max_tokens = int(st.number_input("Max answer tokens", 16, 2048, min(base.llm.max_tokens, 2048), step=16,
                                             key="max-tokens"))
            extractive = st.toggle("Quotes only (extractive, no generation)", key="extractive",
                                   value=base.answer.mode == "extractive",
                                   help="Answer with the most relevant source sentences, verbatim; no model text.")
    return Options(page, collection, index_dir, domain, model_path, model_label, int(k), float(temperature),
                   max_tokens, bool(extractive))

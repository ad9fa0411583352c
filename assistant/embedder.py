"""Embedders: the protocol and the sentence-transformers implementation."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from assistant.errors import ModelNotFound
from assistant.models import check_embedder_dir, default_embedder_path, force_offline

log = logging.getLogger(__name__)
SMALL_BATCH = 8


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors."""

    @property
    def id(self) -> str:
        """Stable identity recorded in the index manifest."""
        ...

    @property
    def dim(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """Tokens the model reads per text; longer text is truncated by the model."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an array of shape (len(texts), dim), rows of unit length."""
        ...

    def count_tokens(self, text: str) -> int: ...


class SentenceTransformerEmbedder:
    """A local sentence-transformers model (default: the packaged all-MiniLM-L6-v2).

    Length bucketing comes from ``SentenceTransformer.encode``, which sorts each call's
    texts by length before batching; callers pass blocks of a few hundred texts.
    """

    def __init__(self, path: Path | None = None, *, batch_size: int = 32, threads: int | None = None) -> None:
        force_offline()
        model_dir = check_embedder_dir(Path(path)) if path else default_embedder_path()
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - dependency missing
            raise ModelNotFound(f"sentence-transformers is not installed ({exc}); reinstall slm-assistant") from exc
        self._torch = torch
        self._threads = threads or torch.get_num_threads()
        try:
            self._model: Any = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - library raises many types
            raise ModelNotFound(f"cannot load embedder from {model_dir}: {exc}") from exc
        self._name = model_identity(model_dir, packaged=path is None)
        self._dim = int(self._model.get_embedding_dimension() if hasattr(self._model, "get_embedding_dimension") else self._model.get_sentence_embedding_dimension())
        self._max_tokens = int(self._model.max_seq_length)
        self._batch_size = batch_size
        self._lock = threading.Lock()  # torch modules are not safe to call concurrently
        log.debug("loaded embedder %s (dim %d, max %d tokens)", model_dir, self._dim, self._max_tokens)

    @property
    def id(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def count_tokens(self, text: str) -> int:
        return len(self._model.tokenizer.tokenize(text))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        # A few short texts (a question) are latency-bound: one thread. Measured with
        # the other core busy: a query took 82 ms on 1 thread and 1,330 ms on 2,
        # whose threads wait on each other. Batches (ingest) use all threads.
        threads = 1 if len(texts) <= SMALL_BATCH else self._threads
        with self._lock:
            if self._torch.get_num_threads() != threads:
                self._torch.set_num_threads(threads)
            vectors = self._model.encode(
                list(texts),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def model_identity(model_dir: Path, *, packaged: bool) -> str:
    """A stable name for an embedding model, recorded in (and checked against) the index.

    The folder name alone is not enough (the packaged model lives in ``model/``):
    the identity adds a digest of the model config and the weights' sizes.
    """
    digest = hashlib.sha1()
    for name in ("config.json", "modules.json", "sentence_bert_config.json"):
        if (model_dir / name).is_file():
            digest.update((model_dir / name).read_bytes())
    for weights in sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.bin")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    name = "all-MiniLM-L6-v2" if packaged else model_dir.name
    return f"sentence-transformers/{name}@{digest.hexdigest()[:10]}"


_shared: dict[tuple[str, int | None], SentenceTransformerEmbedder] = {}
_shared_lock = threading.Lock()


def shared_embedder(path: Path | None = None, *, batch_size: int = 32, threads: int | None = None) -> SentenceTransformerEmbedder:
    """Load an embedder once per process and share it (it is read-only)."""
    key = (str(path or ""), threads)
    with _shared_lock:
        if key not in _shared:
            _shared[key] = SentenceTransformerEmbedder(path, batch_size=batch_size, threads=threads)
        return _shared[key]

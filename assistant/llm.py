"""Language-model backends: llama.cpp in process, or an OpenAI-compatible server."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from assistant.errors import BackendUnavailable, ContextOverflow, GenerationError, ModelNotFound
from assistant.models import check_gguf, default_gguf_path

log = logging.getLogger(__name__)

Message = dict[str, str]


@runtime_checkable
class LLM(Protocol):
    """A chat model that streams text."""

    @property
    def id(self) -> str: ...

    @property
    def n_ctx(self) -> int:
        """Context window in the model's tokens."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def stream_chat(self, messages: Sequence[Message], *, max_tokens: int, temperature: float) -> Iterator[str]:
        """Yield the answer piece by piece (about one token each)."""
        ...


def default_threads() -> int:
    """Threads for llama.cpp: half the cores this process may use.

    Measured on 2 cores with the other core busy: n_threads=2 processed prompts at
    43 tokens/s and generated 3 tokens/s, n_threads=1 at 138 and 78 (llama.cpp's
    threads wait on each other when one shares its core). The embedder, the UI
    and other work need the rest.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // 2)


class LlamaCppLLM:
    """A GGUF model run by llama-cpp-python in this process.

    One loaded model is shared by every caller of the same file; a lock makes
    concurrent callers (threads, Streamlit sessions) take turns, since a llama.cpp
    context is not safe to use from two threads at once.
    """

    _cache: dict[tuple[str, int, int], tuple[Any, threading.Lock]] = {}
    _cache_lock = threading.Lock()

    def __init__(self, model_path: Path | None = None, *, n_ctx: int = 2048, n_threads: int | None = None) -> None:
        path = check_gguf(Path(model_path)) if model_path else default_gguf_path()
        threads = n_threads or default_threads()
        key = (str(path.resolve()), n_ctx, threads)
        with LlamaCppLLM._cache_lock:
            if key not in LlamaCppLLM._cache:
                LlamaCppLLM._cache[key] = (self._load(path, n_ctx, threads), threading.Lock())
        self._llm, self._lock = LlamaCppLLM._cache[key]
        self._path = path

    @staticmethod
    def _load(path: Path, n_ctx: int, threads: int) -> Any:
        try:
            from llama_cpp import Llama
        except ImportError as exc:  # pragma: no cover
            raise BackendUnavailable(f"llama-cpp-python is not installed ({exc}); reinstall slm-assistant") from exc
        try:
            return Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                         n_batch=512, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ModelNotFound(f"llama.cpp could not load {path}: {exc}; is it a complete GGUF file?") from exc

    @property
    def id(self) -> str:
        return self._path.name

    @property
    def n_ctx(self) -> int:
        return int(self._llm.n_ctx())

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream_chat(self, messages: Sequence[Message], *, max_tokens: int, temperature: float) -> Iterator[str]:
        with self._lock:
            try:
                stream = self._llm.create_chat_completion(
                    messages=list(messages), max_tokens=max_tokens, temperature=temperature,
                    top_p=0.9, repeat_penalty=1.1, stream=True,
                )
                for chunk in stream:
                    piece = chunk["choices"][0]["delta"].get("content")
                    if piece:
                        yield piece
            except ValueError as exc:  # e.g. "Requested tokens (N) exceed context window of M"
                raise ContextOverflow(f"the model could not take this prompt: {exc}; ask a shorter question or lower answer.context_tokens") from exc


TOKENIZER_TIMEOUT_S = 5.0
TOKENIZER_RETRY_S = 30.0  # after a failed count, estimate for this long before asking again


def _count_of(data: Any) -> int:
    return int(data["count"]) if "count" in data else len(data["tokens"])


# Where servers count tokens (outside the OpenAI API, under the server root), tried in
# order: llama-cpp-python's server (`slm serve`) takes {"input"}; llama.cpp's
# llama-server ({"content"} -> {"tokens"}) and vLLM ({"model", "prompt"} -> {"count"})
# share /tokenize. One body carries every spelling.
TOKENIZE_PATHS = ("/extras/tokenize/count", "/tokenize")


class OpenAICompatLLM:
    """Any server that speaks OpenAI chat completions (``slm serve``, llama.cpp, vLLM)."""

    def __init__(self, base_url: str, *, model: str = "local", api_key: str | None = None,
                 n_ctx: int = 2048, timeout_s: float = 120.0) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s, trust_env=False)
        self._model = model
        self._n_ctx = n_ctx
        self._base_url = base_url
        root = base_url.rstrip("/")
        self._root = root[:-3] if root.endswith("/v1") else root
        self._tokenize_paths: tuple[str, ...] = TOKENIZE_PATHS  # () once the server proved to have none
        self._estimate_until = 0.0

    @property
    def id(self) -> str:
        return f"{self._model}@{self._base_url}"

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    def count_tokens(self, text: str) -> int:
        """Tokens in the server's own tokenizer when it offers one, else an estimate.

        A local round trip costs a few ms and the engine counts a few texts per
        question (each passage, each message), so budgets can be exact.
        """
        if self._tokenize_paths and time.monotonic() >= self._estimate_until:
            try:
                return self._server_count(text)
            except LookupError:
                self._tokenize_paths = ()  # no tokenize endpoint: estimate from now on
            except (OSError, ValueError, TypeError) as exc:  # down, refused, odd reply: ask again later
                log.debug("token count from %s failed (%s); estimating", self._root, exc)
                self._estimate_until = time.monotonic() + TOKENIZER_RETRY_S
        # ~3 characters a token overestimates English text a little: a safe budget.
        return max(1, len(text) // 3)

    def _server_count(self, text: str) -> int:
        """The count from the first tokenize endpoint the server has (LookupError: none)."""
        import httpx

        body = {"input": text, "content": text, "prompt": text, "model": self._model}
        for path in self._tokenize_paths:
            try:
                resp = self._client.post(self._root + path, json=body, timeout=TOKENIZER_TIMEOUT_S)
            except httpx.HTTPError as exc:
                raise OSError(str(exc)) from exc
            if resp.status_code in (404, 405) and len(self._tokenize_paths) > 1:
                continue  # not this server's spelling
            if resp.status_code != 200:
                raise OSError(f"HTTP {resp.status_code}")
            try:
                count = _count_of(resp.json())
            except KeyError as exc:
                raise ValueError(f"no count in the reply of {path}") from exc
            self._tokenize_paths = (path,)
            return count
        raise LookupError("no tokenize endpoint")

    def stream_chat(self, messages: Sequence[Message], *, max_tokens: int, temperature: float) -> Iterator[str]:
        import httpx

        body = {"model": self._model, "messages": list(messages), "max_tokens": max_tokens,
                "temperature": temperature, "top_p": 0.9, "stream": True}  # top_p as in process
        try:
            with self._client.stream("POST", "/chat/completions", json=body) as resp:
                if resp.status_code in (401, 403):
                    raise BackendUnavailable(
                        f"the LLM server at {self._base_url} refused the API key (HTTP {resp.status_code}); "
                        "set llm.api_key (SLM_LLM__API_KEY) to the key it was started with (`slm serve --api-key`)"
                    )
                if resp.status_code != 200:
                    resp.read()
                    raise GenerationError(f"LLM server {self._base_url} answered {resp.status_code}: {resp.text[:200]}")
                for line in resp.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    delta = json.loads(data)["choices"][0].get("delta", {})
                    if delta.get("content"):
                        yield delta["content"]
        except httpx.HTTPError as exc:
            raise BackendUnavailable(
                f"cannot reach the LLM server at {self._base_url} ({exc}); start it with `slm serve` or set llm.backend=llamacpp"
            ) from exc

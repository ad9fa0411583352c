"""Public test fakes: small, deterministic stand-ins for the embedder and the LLM.

For fast unit tests of code built on the library. They are not models: the
integration tests use the real ones.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence

import numpy as np

from assistant.llm import Message
from assistant.text import words

_SOURCE = re.compile(r"\[(\d+)\] \([^)]*\)\n<<<\n(.*?)\n>>>", re.S)


class FakeEmbedder:
    """Hashed bag-of-words vectors: texts sharing words are similar."""

    def __init__(self, dim: int = 64, max_tokens: int = 128, name: str = "fake") -> None:
        self._dim = dim
        self._max = max_tokens
        self._name = name

    @property
    def id(self) -> str:
        return f"fake/{self._name}"

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int:
        return self._max

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for w in words(text):
                h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=4).digest(), "little")
                out[i, h % self._dim] += 1.0
            norm = np.linalg.norm(out[i])
            out[i] = out[i] / norm if norm else out[i]
            if not norm:
                out[i, 0] = 1.0
        return out


class FakeLLM:
    """Answers with the first sentence of source [1] (or a fixed reply), cited."""

    def __init__(self, reply: str | None = None, n_ctx: int = 2048) -> None:
        self.reply = reply
        self._n_ctx = n_ctx
        self.calls: list[list[Message]] = []

    @property
    def id(self) -> str:
        return "fake-llm"

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream_chat(self, messages: Sequence[Message], *, max_tokens: int, temperature: float) -> Iterator[str]:
        self.calls.append(list(messages))
        text = self.reply
        if text is None:
            found = _SOURCE.search(messages[-1]["content"])
            first = found.group(2).split(" ... ")[0] if found else "no sources"
            text = f"{first} [1]"
        yield from re.findall(r"\S+\s*", text)

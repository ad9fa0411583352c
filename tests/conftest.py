"""Shared fixtures. Unit tests use the public fakes; integration tests the real models."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.models import force_offline
from tests.hardening import netguard

force_offline()
netguard.install()  # before collection: importing a test module must not reach the network either
SHARED = Path(__file__).resolve().parents[2] / "shared"
CORPORA = SHARED / "corpora"
EVAL = SHARED / "eval"

needs_shared = pytest.mark.skipif(not CORPORA.is_dir(), reason="../shared/corpora is not beside the checkout")


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    """Fail any test that tried to reach past loopback, even if the error was caught (see netguard)."""
    netguard.install()
    yield
    assert netguard.installed(), "something restored the real socket functions: the network guard is off"
    blocked = netguard.take_blocked()
    if blocked:
        pytest.fail(f"the test tried to reach the network: {blocked}", pytrace=False)


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads a developer's slm.toml or SLM_* variables."""
    for key in list(os.environ):
        if key.startswith("SLM_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def fake_embedder():
    from assistant.testing import FakeEmbedder

    return FakeEmbedder()


@pytest.fixture
def fake_pipeline(fake_embedder):
    from ingest.chunking import ChunkerConfig
    from ingest.pipeline import Pipeline

    return Pipeline(fake_embedder, chunker_config=ChunkerConfig(chunk_tokens=40, overlap_tokens=5))


@pytest.fixture
def text_corpus(tmp_path: Path) -> Path:
    """A small folder of text documents about distinct topics."""
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    (root / "law.txt").write_text(
        "GOVERNING LAW\n\nThis Agreement shall be governed by the laws of the State of Texas. "
        "Any dispute shall be resolved in the courts of Dallas County.\n\n"
        "TERMINATION\n\nEither party may terminate this Agreement with ninety days written notice.\n",
        encoding="utf-8",
    )
    (root / "virus.md").write_text(
        "# Virology\n\nThe infectious bronchitis virus causes economic losses to the poultry industry. "
        "The strain SAIBK was isolated in Sichuan province in 2005.\n\n## Methods\n\n"
        "The genome was sequenced with RT-PCR and assembled from overlapping fragments.\n",
        encoding="utf-8",
    )
    (root / "sub" / "finance.txt").write_text(
        "Net sales for the quarter were 81.8 billion dollars, down 1 percent year over year. "
        "Services revenue reached a record 21.2 billion dollars.\n",
        encoding="utf-8",
    )
    return root


@pytest.fixture(scope="session")
def real_embedder():
    from assistant.embedder import shared_embedder

    return shared_embedder()


@pytest.fixture(scope="session")
def real_llm():
    from assistant.llm import LlamaCppLLM

    return LlamaCppLLM()

"""The choices a user makes in the sidebar, passed to the pages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CHAT = "Chat"
DOCUMENTS = "Documents"
PAGES = (CHAT, DOCUMENTS)


@dataclass(frozen=True)
class Options:
    """What to ask, of which collection, with which model and answer settings."""

    page: str
    collection: str
    index_dir: Path
    domain: str
    model_path: str | None
    model_label: str
    k: int
    temperature: float
    max_tokens: int
    extractive: bool

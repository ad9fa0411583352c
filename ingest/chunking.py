"""Cut page text into chunks sized in the embedder's own tokens.

Splitting is LangChain's RecursiveCharacterTextSplitter measured with the
embedder's tokenizer, so no chunk exceeds what the model reads (all-MiniLM-L6-v2
stops at 256 word pieces). Every chunk is an exact substring of its page text and
keeps its offsets and the nearest heading above it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

from assistant.types import Chunk, Page

DEFAULT_SEPARATORS: tuple[str, ...] = ("\n\n", "\n", ". ", "; ", ", ", " ", "")

# Lines that look like headings in contracts, filings, protocols and markdown.
DEFAULT_HEADING_PATTERNS: tuple[str, ...] = (
    r"#{1,6}\s+\S.*",                                   # markdown
    r"(?:ARTICLE|Article|SECTION|Section|PART|Part|ITEM|Item)\s+[0-9IVXLC]+[.:]?(?:\s+\S.*)?",
    r"\d{1,2}(?:\.\d{1,2}){0,3}\.?\s+[A-Z][^.;:]{2,80}",  # 1. Term / 2.3 Payment
    r"[A-Z][A-Z0-9 ,&'()/-]{3,80}",                     # ALL CAPS HEADING
)


@dataclass(frozen=True)
class ChunkerConfig:
    """How text is cut. Domains may supply their own separators and heading patterns."""

    chunk_tokens: int = 200
    overlap_tokens: int = 32
    separators: tuple[str, ...] = DEFAULT_SEPARATORS
    heading_patterns: tuple[str, ...] = DEFAULT_HEADING_PATTERNS


class Chunker:
    """Splits pages into :class:`~assistant.types.Chunk` objects."""

    def __init__(self, count_tokens: Callable[[str], int], max_tokens: int, config: ChunkerConfig = ChunkerConfig()) -> None:
        # Leave room for the model's special tokens ([CLS], [SEP]).
        size = min(config.chunk_tokens, max_tokens - 2)
        overlap = min(config.overlap_tokens, size // 2)
        self.config = config
        self._splitter = RecursiveCharacterTextSplitter(
            length_function=count_tokens,
            chunk_size=size,
            chunk_overlap=overlap,
            separators=list(config.separators),
            keep_separator="end",
            strip_whitespace=True,
        )
        self._heading = re.compile("|".join(f"(?:{p})" for p in config.heading_patterns))
        self._section: str | None = None
        self._ord = 0

    def reset(self) -> None:
        """Start a new document."""
        self._section = None
        self._ord = 0

    def headings(self, text: str) -> list[tuple[int, str]]:
        """(offset, heading) of lines in ``text`` that look like headings."""
        found = []
        pos = 0
        for line in text.splitlines(keepends=True):
            stripped = line.strip()
            if 3 <= len(stripped) <= 100 and not stripped.endswith((",", ";")) and self._heading.fullmatch(stripped):
                if sum(ch.isalpha() for ch in stripped) >= 3:
                    found.append((pos + line.index(stripped[0]), stripped.lstrip("#").strip()))
            pos += len(line)
        return found

    def split(self, page: Page) -> list[Chunk]:
        """Chunks of one page, in order; offsets index into ``page.text``."""
        text = page.text
        if not text.strip():
            return []
        heads = self.headings(text)
        chunks: list[Chunk] = []
        cursor = 0
        for piece in self._splitter.split_text(text):
            start = text.find(piece, cursor)
            if start < 0:  # cannot happen for substrings; stay safe
                start = text.find(piece)
                if start < 0:
                    continue
            end = start + len(piece)
            chunks.append(
                Chunk(text=piece, page=page.number, char_start=start, char_end=end,
                      section=self._section_at(heads, start, end), ord=self._ord)
            )
            self._ord += 1
            cursor = start + 1
        if heads:
            self._section = heads[-1][1]
        return chunks

    def _section_at(self, heads: Sequence[tuple[int, str]], start: int, end: int) -> str | None:
        """The last heading at or before the chunk, or one that opens it."""
        section = self._section
        for offset, title in heads:
            if offset <= start or (offset < end and offset - start < 40):
                section = title
            else:
                break
        return section

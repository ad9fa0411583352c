"""Building the ingestion pipeline from settings (the write path's composition root)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from assistant.domain import load_domain
from assistant.embedder import shared_embedder
from assistant.settings import Settings, load_settings, with_overrides
from ingest.chunking import DEFAULT_HEADING_PATTERNS, DEFAULT_SEPARATORS, ChunkerConfig
from ingest.pipeline import IngestResult, Pipeline


def build_pipeline(settings: Settings) -> Pipeline:
    """A pipeline with the configured embedder, chunking and domain hints."""
    pack = load_domain(settings.domain)
    embedder = shared_embedder(settings.embedder.path, batch_size=settings.embedder.batch_size,
                               threads=settings.embedder.threads)
    config = ChunkerConfig(
        chunk_tokens=settings.chunking.chunk_tokens,
        overlap_tokens=settings.chunking.overlap_tokens,
        separators=pack.separators or DEFAULT_SEPARATORS,
        heading_patterns=pack.heading_patterns or DEFAULT_HEADING_PATTERNS,
    )
    return Pipeline(embedder, chunker_config=config, domain=pack.name, metadata_hook=pack.extract_metadata,
                    redact=settings.ingest.redact)


def ingest(paths: Sequence[str | Path], index_dir: str | Path | None = None, *, domain: str | None = None,
           prune: bool = False, settings: Settings | None = None) -> IngestResult:
    """Ingest files or folders into an index; the library form of ``slm ingest``.

    Returns:
        An :class:`IngestResult`: per-file status (added, updated, unchanged,
        skipped, failed with a reason) and totals. Failed files do not stop the run.
    """
    s = settings or load_settings()
    s = with_overrides(s, index={"dir": index_dir} if index_dir else {}, domain=domain)
    return build_pipeline(s).run(list(paths), Path(s.index.dir), prune=prune)

"""Ingestion: loaders, chunking and the pipeline that builds the local index."""

from ingest.api import build_pipeline, ingest
from ingest.loaders import SUPPORTED_SUFFIXES
from ingest.pipeline import FileResult, IngestResult, Pipeline

__all__ = ["SUPPORTED_SUFFIXES", "FileResult", "IngestResult", "Pipeline", "build_pipeline", "ingest"]

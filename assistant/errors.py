"""The one exception tree. Every message says what to do next.

    AssistantError
    ├── ConfigError            a bad setting or config file
    ├── ModelNotFound          a model file or directory is missing / not usable
    ├── BackendUnavailable     an optional backend (server, package) is not there
    ├── IndexNotFound          no index at the given folder
    ├── IndexMismatch          index built with another embedder / schema
    ├── IndexLocked            another writer holds the index
    ├── GenerationError        the LLM failed (server error, ...)
    │   └── ContextOverflow    the prompt does not fit the model's context
    ├── InvalidQuestion        empty or oversized question
    └── IngestError            a document could not be ingested (per-document)
"""

from __future__ import annotations


class AssistantError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(AssistantError):
    """A setting or config file is invalid."""


class ModelNotFound(AssistantError):
    """A model file or directory is missing or is not a usable model."""


class BackendUnavailable(AssistantError):
    """A backend (an extra package or a server) is not available."""


class IndexNotFound(AssistantError):
    """There is no index at the given folder."""


class IndexMismatch(AssistantError):
    """The index was built with a different embedder or schema."""


class IndexLocked(AssistantError):
    """Another process is writing to the index."""


class GenerationError(AssistantError):
    """The language model could not produce an answer."""


class ContextOverflow(GenerationError):
    """The prompt plus the answer's tokens exceed the model's context window."""


class InvalidQuestion(AssistantError):
    """The question is empty or cannot be processed."""


class IngestError(AssistantError):
    """One document could not be ingested.

    Attributes:
        source: the file, as given or relative to the ingested folder.
        reason: one line saying what is wrong and how to fix it.
    """

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason

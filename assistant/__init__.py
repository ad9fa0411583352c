"""slm-assistant: grounded answers from your own documents, on your own machine.

    from assistant import Assistant
    with Assistant.open("var/index/legal", domain="legal") as asst:
        answer = asst.ask("What is the governing law?")
        for c in answer.citations:
            print(c.source, c.page, c.quote)
"""

import logging

from assistant.domain import DomainPack
from assistant.engine import Assistant
from assistant.errors import (
    AssistantError,
    BackendUnavailable,
    ConfigError,
    ContextOverflow,
    GenerationError,
    IndexLocked,
    IndexMismatch,
    IndexNotFound,
    IngestError,
    InvalidQuestion,
    ModelNotFound,
)
from assistant.settings import Settings, load_settings
from assistant.types import Answer, Citation, Evidence, Hit, SentenceSupport, Timings, Token

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Answer",
    "Assistant",
    "AssistantError",
    "BackendUnavailable",
    "Citation",
    "ConfigError",
    "ContextOverflow",
    "DomainPack",
    "Evidence",
    "GenerationError",
    "Hit",
    "IndexLocked",
    "IndexMismatch",
    "IndexNotFound",
    "IngestError",
    "InvalidQuestion",
    "ModelNotFound",
    "SentenceSupport",
    "Settings",
    "Timings",
    "Token",
    "load_settings",
]
__version__ = "0.1.0"

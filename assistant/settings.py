"""One typed settings tree: defaults < slm.toml < SLM_* env vars < explicit arguments.

Nothing is read at import time; call :func:`load_settings`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from assistant.errors import ConfigError

DEFAULT_CONFIG_FILE = "slm.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IndexSettings(_Section):
    dir: Path = Field(Path("var/index/default"), description="index folder")


class EmbedderSettings(_Section):
    path: Path | None = Field(None, description="sentence-transformers model folder; default: packaged all-MiniLM-L6-v2")
    batch_size: int = Field(32, ge=1, le=1024)
    threads: int | None = Field(None, ge=1, description="torch threads; default: all cores")


class ChunkSettings(_Section):
    chunk_tokens: int = Field(200, ge=16, le=8192, description="chunk size in the embedder's tokens")
    overlap_tokens: int = Field(32, ge=0, le=1024)


class IngestSettings(_Section):
    redact: bool = Field(False, description="replace emails, phone numbers, ids, MRNs and birth dates in indexed text")


class LLMSettings(_Section):
    backend: Literal["llamacpp", "openai"] = "llamacpp"
    model_path: Path | None = Field(None, description="GGUF file; default: packaged SmolLM2-135M-Instruct Q4_1")
    n_ctx: int = Field(2048, ge=256)
    n_threads: int | None = Field(None, ge=1, description="default: measured best for this machine")
    temperature: float = Field(0.1, ge=0.0, le=2.0)
    max_tokens: int = Field(160, ge=1, le=8192)
    base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible server (backend=openai)")
    api_key: str | None = None
    model_name: str = Field("local", description="model name sent to the OpenAI-compatible server")
    timeout_s: float = Field(120.0, gt=0)


class RetrievalSettings(_Section):
    k: int = Field(5, ge=1, le=100)
    mode: Literal["hybrid", "dense", "lexical"] = "hybrid"
    candidates: int = Field(40, ge=1, le=1000, description="hits taken from each retriever before fusion")
    dense_weight: float = Field(1.0, ge=0.0)
    lexical_weight: float = Field(1.0, ge=0.0)
    rrf_k: int = Field(10, ge=1, description="reciprocal rank fusion constant; small values favour the top ranks")
    sources: tuple[str, ...] = Field((), description="only search these sources (glob patterns)")
    focus: bool | None = Field(None, description="when the question names documents, rank their passages first (default: the domain decides)")
    focus_ratio: float = Field(0.8, gt=0.0, le=1.0, description="documents scoring this share of the best are named too")
    focus_margin: float = Field(0.7, gt=0.0, le=1.0, description="focus only if the next document scores below this share")
    focus_max_docs: int = Field(4, ge=1)


class AnswerSettings(_Section):
    mode: Literal["generate", "extractive"] = "generate"
    context_tokens: int = Field(450, ge=64, description="budget for sources in the prompt, in LLM tokens")
    sentences_per_hit: int = Field(2, ge=1)
    support_threshold: float = Field(0.55, ge=0.0, le=1.0, description="min similarity for a sentence to count as supported")
    min_relevance: float = Field(0.25, ge=-1.0, le=1.0, description="abstain when the best passage is less similar than this")
    history_turns: int = Field(3, ge=0, description="chat turns used to rewrite follow-up questions")


class AuditSettings(_Section):
    path: Path | None = Field(None, description="append a JSON line per answered question (time, question, cited documents) to this file")
    questions: Literal["redacted", "omit"] = Field("redacted", description="log questions with personal identifiers redacted, or only their hash")


class Settings(BaseSettings):
    """The effective configuration of the assistant."""

    model_config = SettingsConfigDict(
        env_prefix="SLM_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    domain: str = "general"
    index: IndexSettings = IndexSettings()
    embedder: EmbedderSettings = EmbedderSettings()
    chunking: ChunkSettings = ChunkSettings()
    ingest: IngestSettings = IngestSettings()
    llm: LLMSettings = LLMSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    answer: AnswerSettings = AnswerSettings()
    audit: AuditSettings = AuditSettings()

    @field_validator("domain")
    @classmethod
    def _domain_name(cls, v: str) -> str:
        if not v or not v.replace("-", "").replace("_", "").isalnum():
            raise ValueError("domain must be a name like 'legal'")
        return v


def load_settings(config: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from defaults, a TOML file, ``SLM_*`` env vars and overrides.

    Args:
        config: the TOML file; default ``$SLM_CONFIG`` or ``./slm.toml`` if present.
            A file given explicitly must exist.
        **overrides: top-level keys (nested sections as dicts) that win over all else.

    Raises:
        ConfigError: unknown key, bad value or missing config file.
    """
    explicit = config is not None or "SLM_CONFIG" in os.environ
    path = Path(config if config is not None else os.environ.get("SLM_CONFIG", DEFAULT_CONFIG_FILE))
    if explicit and not path.is_file():
        raise ConfigError(f"config file {path} not found; create it or drop --config/SLM_CONFIG")
    toml_file = path if path.is_file() else None

    class _FromFile(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if toml_file is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
            return tuple(sources)

    try:
        loaded = _FromFile(**overrides)
    except ValidationError as exc:
        where = f" (from {toml_file}, SLM_* env vars or arguments)" if toml_file else " (from SLM_* env vars or arguments)"
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid settings{where}: {problems}") from None
    except (OSError, ValueError) as exc:  # unreadable or malformed TOML
        raise ConfigError(f"cannot read config file {toml_file}: {exc}") from None
    return Settings.model_validate(loaded.model_dump())


def with_overrides(settings: Settings, **sections: dict[str, Any] | Any) -> Settings:
    """Return a copy of ``settings`` with some keys replaced (validated).

    ``with_overrides(s, retrieval={"k": 3}, domain="legal")``.
    """
    data = settings.model_dump()
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **{k: v for k, v in value.items() if v is not None}}
        elif value is not None:
            data[key] = value
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from None

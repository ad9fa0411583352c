"""Settings precedence and validation."""

from __future__ import annotations

import pytest

from assistant.errors import ConfigError
from assistant.settings import load_settings, with_overrides


def test_defaults_toml_env_args_precedence(tmp_path, monkeypatch):
    cfg = tmp_path / "slm.toml"
    cfg.write_text('domain = "legal"\n[retrieval]\nk = 7\nmode = "dense"\n')
    assert load_settings().retrieval.k == 7  # ./slm.toml is read when present (cwd is tmp_path)
    monkeypatch.setenv("SLM_RETRIEVAL__K", "9")
    s = load_settings(cfg)
    assert (s.domain, s.retrieval.k, s.retrieval.mode) == ("legal", 9, "dense")
    s = load_settings(cfg, retrieval={"k": 3})
    assert s.retrieval.k == 3
    assert with_overrides(s, retrieval={"k": 4, "mode": None}).retrieval.mode == "dense"


def test_unknown_key_and_bad_values_are_errors(tmp_path, monkeypatch):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[retrieval]\nkk = 7\n")
    with pytest.raises(ConfigError, match="retrieval.kk"):
        load_settings(cfg)
    cfg.write_text("[retrieval]\nk = 0\n")
    with pytest.raises(ConfigError, match="retrieval.k"):
        load_settings(cfg)
    cfg.write_text("this is = not toml [")
    with pytest.raises(ConfigError, match="bad.toml"):
        load_settings(cfg)
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml")
    monkeypatch.setenv("SLM_LLM__TEMPERATURE", "hot")
    with pytest.raises(ConfigError, match="llm.temperature"):
        load_settings()

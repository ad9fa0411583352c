"""The README's examples work as written."""

from __future__ import annotations

import re
from pathlib import Path

from assistant.domain import load_domain
from assistant.settings import load_settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _block(marker: str) -> str:
    for block in re.findall(r"```toml\n(.*?)```", README, re.S):
        if marker in block:
            return block
    raise AssertionError(f"no toml block with {marker!r} in README")


def test_domain_file_example(tmp_path):
    path = tmp_path / "tax.toml"
    path.write_text(_block("# tax.toml"), encoding="utf-8")
    pack = load_domain(str(path))
    assert pack.name == "tax" and pack.focus and "value added tax" in pack.expand_query("Is VAT due?")


def test_settings_example(tmp_path):
    path = tmp_path / "slm.toml"
    path.write_text(_block('domain = "legal"'), encoding="utf-8")
    s = load_settings(path)
    assert s.domain == "legal" and s.llm.n_ctx == 4096 and s.retrieval.k == 5

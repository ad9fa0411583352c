"""The import layers of DESIGN.md hold: ui -> {ingest, domains} -> assistant."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_layers():
    exe = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(exe)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_importing_the_library_loads_no_model_and_sets_nothing_global():
    code = (
        "import sys, logging; import assistant, ingest, domains;"
        "assert 'torch' not in sys.modules and 'llama_cpp' not in sys.modules, 'heavy import at import time';"
        "assert not logging.getLogger().handlers, 'logging configured at import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)

"""``slm serve``: llama-cpp-python's OpenAI-compatible server for the configured model."""

from __future__ import annotations

import os
import sys

from assistant.errors import BackendUnavailable
from assistant.llm import default_threads
from assistant.models import check_gguf, default_gguf_path
from assistant.settings import Settings


def server_argv(settings: Settings, *, host: str, port: int, api_key: str | None) -> list[str]:
    """The command line that starts ``llama_cpp.server`` for these settings."""
    s = settings.llm
    model = check_gguf(s.model_path) if s.model_path else default_gguf_path()
    argv = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model), "--model_alias", s.model_name,
        "--host", host, "--port", str(port),
        "--n_ctx", str(s.n_ctx), "--n_threads", str(s.n_threads or default_threads()),
    ]
    if api_key:
        argv += ["--api_key", api_key]
    return argv


def run_model_server(settings: Settings, *, host: str, port: int, api_key: str | None) -> None:
    """Replace this process with the model server (so signals reach it directly)."""
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailable(f"llama-cpp-python's server extra is missing ({exc}); run pip install 'llama-cpp-python[server]'") from exc
    argv = server_argv(settings, host=host, port=port, api_key=api_key)
    print(f"serving {argv[argv.index('--model') + 1]} on http://{host}:{port}/v1 (Ctrl-C stops)", file=sys.stderr, flush=True)
    os.execv(sys.executable, argv)

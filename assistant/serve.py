"""``slm serve``: llama-cpp-python's OpenAI-compatible server for the configured model.

Flags checked against llama-cpp-python 0.3.36 (``python -m llama_cpp.server --help``,
``llama_cpp/server/{settings,__main__,app}.py``). Where its defaults differ from how
:class:`assistant.llm.LlamaCppLLM` runs the model in process, the command says so.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping

from assistant.errors import BackendUnavailable
from assistant.llm import default_threads
from assistant.models import check_gguf, default_gguf_path
from assistant.settings import Settings

# Environment variables the server reads besides its flags: __main__ passes
# os.getenv("HOST") / os.getenv("PORT") to uvicorn *over* --host/--port (a stray
# HOST=0.0.0.0 published the model to the network), CONFIG_FILE replaces every
# flag, and each settings field not given as a flag is read from the environment
# (case-insensitively: API_KEY, CHAT_FORMAT, ...).
_SERVER_ENV = frozenset({"host", "port", "config_file"})


def server_argv(settings: Settings, *, host: str, port: int, api_key: str | None) -> list[str]:
    """The command line that starts ``llama_cpp.server`` for these settings."""
    s = settings.llm
    model = check_gguf(s.model_path) if s.model_path else default_gguf_path()
    threads = str(s.n_threads or default_threads())
    argv = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model), "--model_alias", s.model_name,
        "--host", host, "--port", str(port), "--n_ctx", str(s.n_ctx),
        # The server's n_threads_batch defaults to every core: prompts then ran ~3x
        # slower whenever another process held one of the 2 cores (see default_threads).
        "--n_threads", threads, "--n_threads_batch", threads,
        # Its default logits_all=True keeps full-vocabulary logits for every prompt
        # token (an n_ctx x n_vocab float array); only logprobs need them.
        "--logits_all", "False",
        # Its default interrupt_requests=True ends a stream in progress (with a normal
        # [DONE]) whenever another request arrives: two users, or one user's token
        # count, silently truncated answers. Requests take turns instead.
        "--interrupt_requests", "False",
    ]
    if api_key:
        argv += ["--api_key", api_key]
    return argv


def server_env(environ: Mapping[str, str], setting_names: Iterable[str]) -> dict[str, str]:
    """``environ`` without the variables that would override the server's flags."""
    drop = _SERVER_ENV | {n.lower() for n in setting_names}
    return {k: v for k, v in environ.items() if k.lower() not in drop}


def run_model_server(settings: Settings, *, host: str, port: int, api_key: str | None) -> None:
    """Replace this process with the model server (so signals reach it directly)."""
    try:
        from llama_cpp.server.settings import ModelSettings, ServerSettings
    except ImportError as exc:
        raise BackendUnavailable(f"llama-cpp-python's server extra is missing ({exc}); run pip install 'llama-cpp-python[server]'") from exc
    argv = server_argv(settings, host=host, port=port, api_key=api_key)
    env = server_env(os.environ, [*ModelSettings.model_fields, *ServerSettings.model_fields])
    print(f"serving {argv[argv.index('--model') + 1]} on http://{host}:{port}/v1 (Ctrl-C stops)", file=sys.stderr, flush=True)
    os.execve(sys.executable, argv, env)

"""`slm serve` for real: llama-cpp-python's server with the bundled GGUF, used by our client.

The servers start in an environment that tries to override their flags (HOST,
PORT, API_KEY are read by llama_cpp.server itself): the flags must win.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from assistant import Assistant
from assistant.errors import BackendUnavailable
from assistant.llm import OpenAICompatLLM
from assistant.serve import server_argv, server_env
from assistant.settings import Settings
from tests.conftest import CORPORA, needs_shared

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STARTUP_S = 60
HOSTILE_ENV = {"HOST": "0.0.0.0", "API_KEY": "from-the-environment", "CONFIG_FILE": "/nonexistent.json"}
QUESTION = "Where was the SAIBK strain isolated?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _slm() -> str:
    return str(Path(sys.executable).with_name("slm"))


class Server:
    """A running `slm serve`; its log is kept for failure messages."""

    def __init__(self, workdir: Path, *extra: str) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log = workdir / f"serve-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLM_")}
        env.update(HOSTILE_ENV, PORT=str(_free_port()))
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([_slm(), "serve", "--port", str(self.port), *extra], cwd=workdir,
                                         env=env, stdout=out, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        """Until /v1/models answers at all (401 counts: the server is up)."""
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"slm serve exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                httpx.get(f"{self.base_url}/models", timeout=2, trust_env=False)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        pytest.fail(f"slm serve did not answer within {STARTUP_S} s:\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _serve(workdir: Path, *extra: str) -> Iterator[Server]:
    server = Server(workdir, *extra)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    yield from _serve(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    from ingest import ingest

    path = tmp_path_factory.mktemp("idx") / "index"
    docs = CORPORA / "medical" / "covidqa-dev"
    result = ingest([docs / "1547.txt", docs / "2432.txt"], path)
    assert result.ok and result.count("added") == 2, result
    return path


# -- the command line --------------------------------------------------------------

def test_argv_is_accepted_by_the_installed_server():
    from llama_cpp.server.cli import add_args_from_model, parse_model_from_args
    from llama_cpp.server.settings import ModelSettings, ServerSettings
    from llama_cpp.server.settings import Settings as ServerCliSettings

    argv = server_argv(Settings(llm={"n_threads": 1}), host="127.0.0.1", port=8123, api_key="k")
    assert argv[1:3] == ["-m", "llama_cpp.server"]
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_args_from_model(parser, ServerCliSettings)
    args = parser.parse_args(argv[3:])  # an unknown flag raises
    server, model = parse_model_from_args(ServerSettings, args), parse_model_from_args(ModelSettings, args)
    assert (server.host, server.port, server.api_key, server.interrupt_requests) == ("127.0.0.1", 8123, "k", False)
    assert (model.n_threads, model.n_threads_batch, model.logits_all, model.n_ctx) == (1, 1, False, 2048)
    assert model.model_alias == "local" and model.model.endswith(".gguf")


def test_environment_cannot_override_the_flags():
    env = server_env({"HOST": "0.0.0.0", "port": "1", "API_KEY": "x", "N_CTX": "9", "PATH": "/bin", "HOME": "/h"},
                     ["api_key", "n_ctx", "host", "port"])
    assert env == {"PATH": "/bin", "HOME": "/h"}


# -- a running server --------------------------------------------------------------

def test_listens_on_loopback_only(server):
    listening = {(c.laddr.ip, c.laddr.port) for c in psutil.Process(server.proc.pid).net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN}
    assert listening == {("127.0.0.1", server.port)}, f"HOST=0.0.0.0 in the environment won: {listening}"
    others = [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
              if a.family == socket.AF_INET and not a.address.startswith("127.")]
    for address in others:  # the machine's other addresses must refuse
        with pytest.raises(OSError), socket.create_connection((address, server.port), timeout=2):
            pass


def test_client_streams_and_counts_with_the_servers_tokenizer(server):
    from llama_cpp import Llama

    from assistant.models import default_gguf_path

    llm = OpenAICompatLLM(server.base_url)  # no key: API_KEY from the environment was ignored
    pieces = list(llm.stream_chat([{"role": "user", "content": "Name one colour."}], max_tokens=12, temperature=0.0))
    assert "".join(pieces).strip(), pieces
    vocab = Llama(model_path=str(default_gguf_path()), vocab_only=True, verbose=False)
    text = "The strain SAIBK was isolated in Sichuan province in 2005."
    assert llm.count_tokens(text) == len(vocab.tokenize(text.encode(), add_bos=False, special=False))


@needs_shared
def test_assistant_answers_through_the_server(server, index):
    llm = {"backend": "openai", "base_url": server.base_url, "temperature": 0.0}
    with Assistant.open(index, llm=llm) as asst:
        assert isinstance(asst.llm, OpenAICompatLLM)
        answer = asst.ask(QUESTION)
    assert answer.hits and answer.hits[0].source == "1547.txt", [h.source for h in answer.hits]
    if not answer.abstained:  # the 135M model's wording varies; where its support comes from must not
        assert answer.citations and {c.source for c in answer.citations} == {"1547.txt"}, answer.citations
    t = answer.timings
    assert t.first_token_ms and t.prompt_tokens > 0 and t.completion_tokens > 0


def test_api_key_is_required_when_set(tmp_path_factory):
    for server in _serve(tmp_path_factory.mktemp("serve-key"), "--api-key", "secret"):
        models = f"{server.base_url}/models"
        assert httpx.get(models, trust_env=False).status_code == 401
        assert httpx.get(models, headers={"Authorization": "Bearer wrong"}, trust_env=False).status_code == 401
        assert httpx.get(models, headers={"Authorization": "Bearer secret"}, trust_env=False).status_code == 200
        assert httpx.get(models, headers={"Authorization": "Bearer from-the-environment"}, trust_env=False).status_code == 401

        message = [{"role": "user", "content": "Say yes."}]
        keyed = OpenAICompatLLM(server.base_url, api_key="secret")
        assert "".join(keyed.stream_chat(message, max_tokens=4, temperature=0.0)).strip()
        assert keyed.count_tokens("one two three") >= 3
        anonymous = OpenAICompatLLM(server.base_url)
        with pytest.raises(BackendUnavailable, match="API key"):
            list(anonymous.stream_chat(message, max_tokens=4, temperature=0.0))
        assert anonymous.count_tokens("one two three") >= 1  # refused: falls back to the estimate


def test_server_not_running_names_the_url_and_the_fix():
    url = f"http://127.0.0.1:{_free_port()}/v1"
    llm = OpenAICompatLLM(url)
    assert llm.count_tokens("a few words here") >= 1  # estimates rather than fails
    with pytest.raises(BackendUnavailable) as err:
        list(llm.stream_chat([{"role": "user", "content": "hi"}], max_tokens=4, temperature=0.0))
    assert url in str(err.value) and "slm serve" in str(err.value)


@needs_shared
def test_assistant_without_its_server_says_so(index):
    url = f"http://127.0.0.1:{_free_port()}/v1"
    with Assistant.open(index, llm={"backend": "openai", "base_url": url}) as asst, \
            pytest.raises(BackendUnavailable, match="slm serve"):
        asst.ask(QUESTION)

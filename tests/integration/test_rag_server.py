"""`slm serve --rag` for real: the assistant behind the OpenAI protocol, used by the `openai` client.

Two indexes of the shipped sample corpus (data/), each ingested with its domain,
served by one real server process with the bundled GGUF and embedder.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import openai
import psutil
import pytest

from assistant.index import IndexStore
from ingest import ingest
from tests.integration.test_serve import Server, _serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DATA = Path(__file__).resolve().parents[2] / "data"
NEON = "NEONSYSTEMSINC_03_01_1999-EX-10.5-DISTRIBUTOR AGREEMENT_New.pdf"
SAIBK = "Where was the SAIBK strain of infectious bronchitis virus isolated?"
LAW = "Which state's laws govern the NEON distributor agreement?"


@pytest.fixture(scope="module")
def indexes(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rag")
    for name, domain in (("medical", "medical"), ("legal", "legal")):
        result = ingest([DATA / name], root / name, domain=domain)
        assert result.ok and result.count("added") >= 2, result
    return {"medical": root / "medical", "contracts": root / "legal"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, indexes) -> Iterator[Server]:
    yield from _serve(tmp_path_factory.mktemp("serve-rag"), "--rag", "--index", str(indexes["medical"]),
                      "--index", f"contracts={indexes['contracts']}")


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=300)


def _verbatim(index: Path, citations: list[dict]) -> None:
    with IndexStore.open(index) as store:
        for c in citations:
            page = store.page_text(c["source"], c["page"])
            assert page is not None and page[c["char_start"]:c["char_end"]] == c["quote"]


def test_models_are_the_collections_with_their_domains(client):
    models = {m.id: m.model_extra["domain"] for m in client.models.list()}
    assert models == {"medical": "medical", "contracts": "legal"}


def test_answer_and_citations_through_the_openai_client(client, indexes):
    r = client.chat.completions.create(model="medical", temperature=0,
                                       messages=[{"role": "system", "content": "Answer like a pirate."},
                                                 {"role": "user", "content": SAIBK}])
    content = r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop" and not r.slm["abstained"], content
    assert r.citations and {c["source"] for c in r.citations} == {"1547.txt"}
    _verbatim(indexes["medical"], r.citations)
    assert "Sources:\n[1] 1547.txt" in content and r.slm["disclaimer"] in content
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0


def test_streaming_ends_with_the_citations(client, indexes):
    stream = client.chat.completions.create(model="contracts", stream=True, temperature=0,
                                            stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": LAW}])
    chunks = list(stream)
    final = next(c for c in chunks if c.choices and c.choices[0].finish_reason == "stop")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and len(chunks) > 3
    passages = final.slm["passages"]
    assert passages and passages[0]["source"] == NEON, passages  # the named contract comes first
    if final.slm["abstained"]:  # the 135M model may not produce a supported answer: then nothing is cited
        assert final.citations == [] and "Closest passages:" in text
    else:
        assert final.citations and "Sources:" in text
        _verbatim(indexes["contracts"], final.citations)


def test_absent_topic_abstains(client):
    r = client.chat.completions.create(model="contracts", messages=[
        {"role": "user", "content": "What is the boiling point of liquid nitrogen in kelvin?"}])
    assert r.slm["abstained"] and r.citations == []


def test_errors_are_openai_errors(client):
    with pytest.raises(openai.NotFoundError, match="use one of: contracts, medical"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": SAIBK}])
    with pytest.raises(openai.BadRequestError, match="empty"):
        client.chat.completions.create(model="medical", messages=[{"role": "user", "content": " "}])


def test_eight_clients_at_once_each_get_their_own_answer(client):
    """8 threads, streaming and not, on two collections: no error, no crossed answers."""
    jobs = [("medical", SAIBK, "1547.txt"), ("contracts", LAW, NEON)] * 4
    results: list[tuple[str, object]] = [("", None)] * len(jobs)

    def run(i: int) -> None:
        model, question, _ = jobs[i]
        try:
            if i % 2:
                r = client.chat.completions.create(model=model, max_tokens=48,
                                                   messages=[{"role": "user", "content": question}])
                results[i] = (r.choices[0].message.content, r.slm["passages"][0]["source"])
            else:
                chunks = list(client.chat.completions.create(model=model, max_tokens=48, stream=True,
                                                             messages=[{"role": "user", "content": question}]))
                final = next(c for c in chunks if c.choices and c.choices[0].finish_reason == "stop")
                text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
                results[i] = (text, final.slm["passages"][0]["source"])
        except Exception as exc:  # reported below with its job
            results[i] = ("", exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    for (text, top), (_, _, source) in zip(results, jobs, strict=True):
        assert top == source and text, (text, top)


def test_binds_loopback_and_requires_the_key(tmp_path, indexes):
    for server in _serve(tmp_path, "--rag", "--index", str(indexes["medical"]), "--api-key", "k3y"):
        listening = {c.laddr.ip for c in psutil.Process(server.proc.pid).net_connections("inet")
                     if c.status == psutil.CONN_LISTEN}
        assert listening == {"127.0.0.1"}  # although HOST=0.0.0.0 is set in its environment
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0).models.list()
        assert [m.id for m in openai.OpenAI(base_url=server.base_url, api_key="k3y").models.list()] == ["medical"]


def test_readme_example_runs(server, capsys):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## OpenAI-compatible server", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "http://127.0.0.1:8000/v1" in code and 'model="sample"' in code
    exec(code.replace("http://127.0.0.1:8000/v1", server.base_url).replace('model="sample"', 'model="medical"'), {})
    out = capsys.readouterr().out
    assert "1547.txt" in out or "not in your documents" in out, out

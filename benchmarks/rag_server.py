"""RAG server benchmark: what the OpenAI-compatible endpoint adds to an answer.

Run on demand (not a test), from the repository root::

    .venv/bin/python benchmarks/rag_server.py                    # builds an index of data/ in a temp dir
    .venv/bin/python benchmarks/rag_server.py --index var/index/sample --rounds 5

For each question of a fixed list (about the shipped sample corpus), interleaved:

in-process  ``Assistant.ask`` on an Assistant opened in this process (temperature 0).
http        the same question through ``slm serve --rag`` (a real server process
            on 127.0.0.1) with the ``openai`` client, non-streamed, temperature 0.
stream      the same, streamed: time to the first content chunk and to the last. It
            runs right after the other two on the same question, so llama.cpp finds
            the whole prompt cached: compare these two figures with each other only.
            (The server verifies an answer before sending any of it, so the first
            content arrives with the last, about one answer's time after the request.)

Both sides run the same model and embedder with the same settings, so the answer
work is identical; the difference is HTTP, JSON and the server's threads. Printed:
p50 of each, and the ratio http / in-process (median of per-question ratios).
The machine has 2 cores shared with other jobs: the load average is printed too.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import openai

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the packages, not this folder's ingest.py
QUESTIONS = [
    "Where was the SAIBK strain of infectious bronchitis virus isolated?",
    "Which state's laws govern the NEON distributor agreement?",
    "What genome size does infectious bronchitis virus have?",
    "Who are the parties to the distributor agreement?",
    "What was the accession number of the SAIBK genome sequence?",
]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, help="an index folder (default: ingest data/ into a temp dir)")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the questions")
    args = parser.parse_args()
    from assistant import Assistant
    from assistant.models import force_offline

    force_offline()
    tmp = tempfile.TemporaryDirectory()
    index = args.index
    if index is None:
        from ingest import ingest

        index = Path(tmp.name) / "sample"
        result = ingest([ROOT / "data" / "legal", ROOT / "data" / "finance", ROOT / "data" / "medical"], index)
        print(f"built {index}: {result.count('added')} documents", flush=True)

    port = _port()
    log = Path(tmp.name) / "serve.log"
    slm = str(Path(sys.executable).with_name("slm"))
    with log.open("wb") as out:
        server = subprocess.Popen([slm, "serve", "--rag", "--index", f"bench={index}", "--port", str(port)],
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"the server did not start:\n{log.read_text()}")
                time.sleep(0.3)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        with Assistant.open(index, llm={"temperature": 0.0}) as asst:
            asst.ask(QUESTIONS[0])  # warm both sides: model loaded, KV cache of the system prompt
            client.chat.completions.create(model="bench", temperature=0,
                                           messages=[{"role": "user", "content": QUESTIONS[0]}])
            local, http, first, last, ratios = [], [], [], [], []
            print(_load(), flush=True)
            for r in range(args.rounds):
                for i, q in enumerate(QUESTIONS):
                    msgs = [{"role": "user", "content": q}]
                    order = (0, 1) if (r + i) % 2 == 0 else (1, 0)
                    times = {}
                    for side in order:
                        t0 = time.perf_counter()
                        if side == 0:
                            asst.ask(q)
                        else:
                            client.chat.completions.create(model="bench", temperature=0, messages=msgs)
                        times[side] = time.perf_counter() - t0
                    local.append(times[0])
                    http.append(times[1])
                    ratios.append(times[1] / times[0])
                    t0 = time.perf_counter()
                    got_first = None
                    for chunk in client.chat.completions.create(model="bench", temperature=0, stream=True,
                                                                messages=msgs):
                        if got_first is None and chunk.choices and chunk.choices[0].delta.content:
                            got_first = time.perf_counter() - t0
                    first.append(got_first or 0.0)
                    last.append(time.perf_counter() - t0)
            print(_load())
    finally:
        server.terminate()
        server.wait(15)

    def p50(xs: list[float]) -> str:
        return f"{statistics.median(xs) * 1000:.0f} ms"

    print(f"{len(local)} answers per side")
    print(f"in-process Assistant.ask       p50 {p50(local)}")
    print(f"http (openai client, no stream) p50 {p50(http)}")
    print(f"http stream: first content p50 {p50(first)}, complete p50 {p50(last)}")
    print(f"ratio http / in-process: median of per-question ratios {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()

"""Concurrency and load (issue #7): one Assistant under 8 threads, one `slm serve` under 8 clients,
and ingest while readers answer.

Real GGUF and MiniLM throughout (the FakeLLM where generation is not the point, and
the FakeEmbedder in a writer process whose many commits are the point). Rounds are
few and bounded; time is never asserted, only generous hang guards. Answers given
under load are compared with the same questions asked one at a time: greedy
decoding makes them identical unless something was mixed up or cut short.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import faiss
import httpx
import numpy as np
import psutil
import pytest

import ingest.pipeline as pipeline_module
from assistant import Answer, Assistant, Hit
from assistant.testing import FakeEmbedder, FakeLLM
from ingest.pipeline import Pipeline
from tests.integration.test_serve import Server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

THREADS = 8
HANG_S = 300  # a hang guard, not a performance bound
MAX_TOKENS = 24
MB = 1024 * 1024

# source -> (text, question, words the answer must quote). Distinct topics: the right source is known.
FACTS: dict[str, tuple[str, str, str]] = {
    "lighthouse.txt": ("The Karsten Point lighthouse was built in 1871 from red granite. Its lamp can be seen "
                       "twenty-two nautical miles out to sea. The keeper's cottage is now a museum of shipwrecks.",
                       "When was the Karsten Point lighthouse built?", "1871"),
    "bakery.txt": ("The Ollander bakery makes its rye bread with a sourdough starter kept alive since 1952. Each "
                   "loaf rests for fourteen hours before baking. The bakery sells four hundred loaves every Saturday.",
                   "How long does each Ollander rye loaf rest before baking?", "fourteen hours"),
    "glacier.txt": ("The Veltrin glacier retreated by 340 metres between 1990 and 2020. Meltwater from the glacier "
                    "feeds Lake Aspen. Researchers measure the thickness of its ice with ground radar.",
                    "How far did the Veltrin glacier retreat between 1990 and 2020?", "340 metres"),
    "violin.txt": ("The luthier Marta Quell varnishes every violin she builds with amber resin. A violin takes her "
                   "about two hundred hours of work. Her instruments are strung with gut strings.",
                   "What does the luthier Marta Quell varnish her violins with?", "amber resin"),
    "railway.txt": ("The Dunmore narrow-gauge railway runs on track 762 millimetres wide. Its steam locomotives "
                    "burn anthracite coal. The line climbs six hundred metres to the Brecken pass.",
                    "How wide is the track of the Dunmore narrow-gauge railway?", "762 millimetres"),
    "apiary.txt": ("The Halloway apiary keeps sixty hives of Carniolan bees. The bees forage mostly on heather in "
                   "August. The honey is extracted twice a year with a centrifuge.",
                   "How many hives of bees does the Halloway apiary keep?", "sixty hives"),
    "telescope.txt": ("The Orrin telescope has a primary mirror 3.6 metres across. It stands at an altitude of 2,400 "
                      "metres on Mount Tessel. Astronomers use it to study the atmospheres of exoplanets.",
                      "How wide is the primary mirror of the Orrin telescope?", "3.6 metres"),
    "vineyard.txt": ("The Castelmora vineyard grows Nebbiolo grapes on limestone terraces. The harvest begins in "
                     "the second week of October. Its wine ages for thirty months in oak casks.",
                     "How long does the Castelmora wine age in oak casks?", "thirty months"),
}
SOURCES = list(FACTS)
ROUNDS = (True, False, True, False, True, True, False, True)  # extractive?
STEADY = 4  # rounds of warm-up (thread arenas, caches) before memory must stay flat


def write_corpus(folder: Path, texts: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for source, text in texts.items():
        (folder / source).write_text(text + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, real_embedder: Any) -> Path:
    work = tmp_path_factory.mktemp("concurrency")
    corpus = write_corpus(work / "docs", {s: text for s, (text, _, _) in FACTS.items()})
    result = Pipeline(real_embedder).run([corpus], work / "index")
    assert result.ok and result.count("added") == len(FACTS), result
    return work / "index"


def rss_mb(pid: int | None = None) -> float:
    return psutil.Process(pid).memory_info().rss / MB


def in_threads(work: Callable[[int, threading.Barrier], list[Any]], on_round: Callable[[], None],
               rounds: int) -> list[list[Any]]:
    """Run ``work(i, barrier)`` in THREADS threads, which wait at the barrier before each round and
    after the last; ``on_round`` runs each time all have arrived (between rounds)."""
    barrier = threading.Barrier(THREADS, action=on_round, timeout=HANG_S)

    def run(i: int) -> list[Any]:
        try:
            return work(i, barrier)
        except BaseException:
            barrier.abort()  # the others stop waiting for this one
            raise

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(run, i) for i in range(THREADS)]
        errors = [f.exception(timeout=HANG_S * (rounds + 1)) for f in futures]
    failed = sorted((e for e in errors if e is not None), key=lambda e: isinstance(e, threading.BrokenBarrierError))
    if failed:
        raise failed[0]  # the error itself, not the broken barrier it left the others at
    return [f.result() for f in futures]


def answer_key(answer: Answer) -> tuple[Any, ...]:
    """What must not change when the same question is asked under load (timings may)."""
    return (answer.question, answer.text, answer.abstained, answer.mode,
            tuple((c.source, c.page, c.quote) for c in answer.citations), tuple(h.chunk_id for h in answer.hits))


# -- many threads, one Assistant ------------------------------------------------------------------

def test_eight_threads_ask_one_assistant(index: Path, real_embedder: Any, real_llm: Any) -> None:
    """One Assistant (SQLite, FAISS, MiniLM, llama.cpp shared) answers 8 threads at once, correctly."""
    rss: list[float] = []
    with Assistant.open(index, embedder=real_embedder, llm=real_llm, retrieval={"k": 3},
                        answer={"context_tokens": 160}) as asst:
        def ask(question: str, extractive: bool) -> Answer:
            return asst.ask(question, extractive=extractive, max_tokens=MAX_TOKENS, temperature=0.0)

        alone = {(q, ex): ask(q, ex) for _, q, _ in FACTS.values() for ex in (True, False)}  # also the warm-up
        for source, (_, question, quote) in FACTS.items():
            extractive = alone[question, True]
            assert extractive.hits[0].source == source and extractive.citations[0].source == source, extractive
            assert quote in extractive.citations[0].quote, extractive.citations
            assert alone[question, False].hits[0].source == source

        def work(i: int, barrier: threading.Barrier) -> list[tuple[str, bool, Answer]]:
            out = []
            for r, extractive in enumerate(ROUNDS):
                barrier.wait()
                source = SOURCES[(i + r) % THREADS]
                out.append((source, extractive, ask(FACTS[source][1], extractive)))
            barrier.wait()
            return out

        results = in_threads(work, lambda: rss.append(rss_mb()), len(ROUNDS))

    answers = [a for per_thread in results for a in per_thread]
    assert len(answers) == THREADS * len(ROUNDS)
    generated = 0
    for source, extractive, answer in answers:
        question = FACTS[source][1]
        assert answer.hits[0].source == source, (question, [h.source for h in answer.hits])
        assert answer_key(answer) == answer_key(alone[question, extractive]), f"{question!r} changed under load"
        generated += not extractive and not answer.abstained
    print(f"\n{len(answers)} answers ({generated} generated, not abstained); RSS per round (MB): "
          f"{[round(r) for r in rss]}")
    # Memory is bounded: once warm (threads' malloc arenas, caches), rounds add nothing that stays.
    # Measured: ~+110 MB over the first 4 rounds, then +0-5 MB over the next 8.
    assert rss[-1] - rss[STEADY] < 32, f"RSS grew from {rss[STEADY]:.0f} to {rss[-1]:.0f} MB after warm-up"


# -- many clients, one `slm serve` --------------------------------------------------------------

WORDS = ("apple", "river", "violin", "copper", "tiger", "maple", "harbor", "comet")
HTTP_ROUNDS = 6


def chat(client: httpx.Client, word: str, *, stream: bool) -> tuple[str, str | None]:
    """(text, finish_reason) of one chat completion; asserts the protocol on the way."""
    body = {"model": "local", "messages": [{"role": "user", "content": f"Write a short sentence about a {word}."}],
            "max_tokens": MAX_TOKENS, "temperature": 0.0, "stream": stream}
    if not stream:
        resp = client.post("/chat/completions", json=body)
        assert resp.status_code == 200, resp.text
        data = resp.json()
        choice = data["choices"][0]
        if choice["finish_reason"] == "length":
            assert data["usage"]["completion_tokens"] == MAX_TOKENS, data["usage"]
        return choice["message"]["content"], choice["finish_reason"]
    pieces, finish, done = [], None, False
    with client.stream("POST", "/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            assert not done, "data after [DONE]"
            if data == "[DONE]":
                done = True
                continue
            choice = json.loads(data)["choices"][0]
            pieces.append(choice.get("delta", {}).get("content") or "")
            finish = choice.get("finish_reason") or finish
    assert done, "the stream ended without [DONE]"
    return "".join(pieces), finish


def test_eight_clients_on_slm_serve(tmp_path: Path) -> None:
    """8 clients at once, streaming and not: every answer whole, none mixed with another's."""
    server = Server(tmp_path)
    try:
        server.wait_ready()

        def client() -> httpx.Client:
            return httpx.Client(base_url=server.base_url, timeout=HANG_S, trust_env=False)

        with client() as c:
            alone = {w: chat(c, w, stream=False) for w in WORDS}
        for word, (text, finish) in alone.items():
            assert text.strip() and finish in ("stop", "length"), (word, text, finish)
        rss: list[float] = []

        def work(i: int, barrier: threading.Barrier) -> list[tuple[str, bool, tuple[str, str | None]]]:
            out = []
            with client() as c:
                for r in range(HTTP_ROUNDS):
                    barrier.wait()
                    word, stream = WORDS[(i + r) % THREADS], (i + r) % 2 == 0
                    out.append((word, stream, chat(c, word, stream=stream)))
                barrier.wait()
            return out

        results = in_threads(work, lambda: rss.append(rss_mb(server.proc.pid)), HTTP_ROUNDS)
        assert server.proc.poll() is None, server.tail()
    finally:
        server.stop()
    replies = [x for per_thread in results for x in per_thread]
    assert len(replies) == THREADS * HTTP_ROUNDS and {s for _, s, _ in replies} == {True, False}
    for word, stream, (text, finish) in replies:
        assert finish in ("stop", "length"), f"{word} (stream={stream}): no finish_reason, cut short: {text!r}"
        assert (text, finish) == alone[word], f"{word} (stream={stream}): {text!r} != {alone[word][0]!r}"
    print(f"\n{len(replies)} replies; server RSS per round (MB): {[round(r) for r in rss]}")
    # Measured: 230 MB idle, ~+15 MB over the first 2 rounds, then ~+1.5 MB a round (48 requests: ~+7 MB).
    assert rss[-1] - rss[2] < 32, f"server RSS grew from {rss[2]:.0f} to {rss[-1]:.0f} MB after warm-up"


# -- ingest while reading -------------------------------------------------------------------------

def revision(text: str, source: str, rev: int) -> str:
    """A document's text at a revision: the marker makes every version's single chunk distinct."""
    return f"{text} Revision {rev} of {source.removesuffix('.txt')} notes was filed under record {rev}{rev}{rev}."


class ReadChecker:
    """What one reader saw: each hit is a whole chunk of a version of its document, one version per
    document within an answer, and never an older version than this reader saw before."""

    def __init__(self, versions: dict[str, list[str]], lock: threading.Lock) -> None:
        self.versions, self.lock = versions, lock
        self.latest: dict[str, int] = {}
        self.reads = 0

    def check(self, hits: Sequence[Hit]) -> None:
        assert hits, "no hits"
        seen: dict[str, int] = {}
        for hit in hits:
            with self.lock:
                texts = list(self.versions.get(hit.source, ()))
            revs = [r for r, t in enumerate(texts) if t[hit.char_start:hit.char_end] == hit.text and hit.text.strip()]
            assert revs, f"hit {hit.chunk_id} of {hit.source}: {hit.text!r} is in no version of that document"
            rev = max(revs)
            assert seen.setdefault(hit.source, rev) == rev, f"{hit.source}: two versions in one answer"
            assert rev >= self.latest.get(hit.source, -1), f"{hit.source}: revision {rev} after {self.latest}"
            self.latest[hit.source] = rev
        self.reads += 1


def check_answer(checker: ReadChecker, answer: Answer) -> None:
    checker.check(answer.hits)
    for c in answer.citations:
        assert any(c.quote in h.text for h in answer.hits if h.source == c.source), c


def faiss_matches_sqlite(asst: Assistant) -> None:
    store = asst.store
    with store.snapshot():
        ids = np.sort(faiss.vector_to_array(store._vectors.id_map)).tolist()
        assert ids == [r[0] for r in store._conn.execute("SELECT id FROM chunks ORDER BY id")]


def test_ingest_while_the_ui_answers(tmp_path: Path, real_embedder: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """In one process, as in `slm ui`: a Documents-page ingest (adds, replaces, prunes, a commit per file)
    while one session asks through the UI's cached Assistant and another keeps its Assistant open."""
    import streamlit as st

    from ui import backend

    monkeypatch.setattr(pipeline_module, "COMMIT_EVERY_CHUNKS", 1)  # many commits to land between
    texts = {s: revision(t, s, 0) for s, (t, _, _) in FACTS.items()}
    versions = {s: [t] for s, t in texts.items()}
    corpus = write_corpus(tmp_path / "docs", texts)
    index = tmp_path / "collections" / "main"
    pipeline = Pipeline(real_embedder)
    assert pipeline.run([corpus], index).count("added") == len(FACTS)
    settings = backend.effective_settings(backend.base_settings(), index, "general", None)
    first = backend.get_assistant(settings, False)
    first.retrieve(FACTS["lighthouse.txt"][1])
    assert backend.get_assistant(settings, False) is first, "the UI opened the unchanged index twice"
    lock = threading.Lock()
    ui_check, chat_check = ReadChecker(versions, lock), ReadChecker(versions, lock)
    open_assistant = Assistant.open(index, embedder=real_embedder, llm=FakeLLM())  # `slm chat`, an answer under way
    stop = threading.Event()
    questions = [q for _, q, _ in FACTS.values()]

    def read(checker: ReadChecker, ask: Callable[[str], Answer]) -> None:
        n = 0
        while not stop.is_set():
            check_answer(checker, ask(questions[n % len(questions)]))
            n += 1

    def ui_ask(q: str) -> Answer:
        return backend.get_assistant(settings, False).ask(q, extractive=True)

    def chat_ask(q: str) -> Answer:
        return open_assistant.ask(q)

    def wait_for_reads(futures: list[Any]) -> None:
        """Each reader asks every question once more after the last commit (+1: one may be under way)."""
        targets = [c.reads + len(questions) + 1 for c in (ui_check, chat_check)]
        while any(c.reads < t for c, t in zip((ui_check, chat_check), targets, strict=True)):
            for f in futures:
                if f.done():
                    f.result()  # a reader failed: raise its error here
            stop.wait(0.05)

    plan = [  # (rewritten, added, deleted)
        (["lighthouse.txt", "glacier.txt"], "extra1.txt", None),
        (["glacier.txt", "apiary.txt", "vineyard.txt"], "extra2.txt", "violin.txt"),
        (["lighthouse.txt", "telescope.txt"], "extra3.txt", "extra1.txt"),
    ]
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(read, ui_check, ui_ask), pool.submit(read, chat_check, chat_ask)]
        try:
            for n, (rewritten, added, deleted) in enumerate(plan, start=1):
                wait_for_reads(futures)
                new = {s: revision(FACTS[s][0], s, n) for s in rewritten}
                new[added] = revision(f"The warehouse {added[:-4]} stores {n * 111} crates of figs.", added, n)
                with lock:
                    for s, t in new.items():
                        versions.setdefault(s, []).extend([""] * (n - len(versions.get(s, ()))) + [t])
                write_corpus(corpus, new)
                if deleted:
                    (corpus / deleted).unlink()
                result = pipeline.run([corpus], index, prune=True)
                assert result.count("updated") == len(rewritten) and result.count("added") == 1, result
                assert result.count("deleted") == (1 if deleted else 0), result
            wait_for_reads(futures)
        finally:
            stop.set()
            for f in futures:
                f.result(timeout=HANG_S)

    final_sources = {p.name for p in corpus.iterdir()}
    fresh = backend.get_assistant(settings, False)
    try:
        for asst in (fresh, open_assistant):  # the UI's new Assistant, and the one open all along
            assert {d["source"] for d in asst.store.documents()} == final_sources
            hit = asst.retrieve("How many crates of figs does the warehouse extra3 store?", k=1)[0]
            assert hit.source == "extra3.txt" and "333 crates" in hit.text, hit
            hit = asst.retrieve(FACTS["lighthouse.txt"][1], k=1)[0]
            assert hit.source == "lighthouse.txt" and hit.text.strip() == versions["lighthouse.txt"][3].strip()
            faiss_matches_sqlite(asst)
        # Reading the index is no change to it: the next rerun of the page gets the same Assistant.
        assert backend.get_assistant(settings, False) is fresh, "the UI opened the unchanged index again"
    finally:
        open_assistant.close()
        st.cache_resource.clear()  # the cached Assistants of this test's index
    final_revs = {s: len(v) - 1 for s, v in versions.items() if s in FACTS and s in final_sources and len(v) > 1}
    for checker in (ui_check, chat_check):  # both saw the last revision of every document they asked about
        assert {s: checker.latest.get(s) for s in final_revs} == final_revs, checker.latest
    print(f"\nreads while ingesting: ui {ui_check.reads}, open assistant {chat_check.reads}")


# The writer process: a plan of passes, each a commit per file; it waits for a line on stdin after each.
WRITER = r"""
import json, sys
from pathlib import Path
import ingest.pipeline as pl
from assistant.testing import FakeEmbedder
pl.COMMIT_EVERY_CHUNKS = 1
corpus, index, plan = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
pipeline = pl.Pipeline(FakeEmbedder())
for n, (writes, deletes) in enumerate(plan):
    for source, text in writes.items():
        (corpus / source).write_text(text + "\n", encoding="utf-8")
    for source in deletes:
        (corpus / source).unlink()
    result = pipeline.run([corpus], index, prune=True)
    print("pass", n, result.count("added") + result.count("updated"), result.count("deleted"), flush=True)
    sys.stdin.readline()
"""


def test_ingest_process_while_a_reader_searches(tmp_path: Path) -> None:
    """`slm ingest`-like writer process, many commits; a long-lived reader here sees old or new, never a mix."""
    names = [f"note{i:02d}.txt" for i in range(20)]
    topics = {s: f"Note {s[4:6]} records that shipment {i}{i} of {['tea', 'salt', 'wool', 'iron'][i % 4]} "
                 f"left port {['Avon', 'Brill', 'Corran'][i % 3]} on day {i + 3}." for i, s in enumerate(names)}
    versions = {s: [revision(t, s, 0)] for s, t in topics.items()}
    plan: list[tuple[dict[str, str], list[str]]] = []
    alive = list(names)
    for n in range(1, 7):
        writes = {s: revision(topics[s], s, n) for s in alive[n % 3::3]}
        topics[f"new{n}.txt"] = f"Note new{n} records that shipment {n} of figs left port Dunmore."
        writes[f"new{n}.txt"] = revision(topics[f"new{n}.txt"], f"new{n}.txt", n)
        deletes = [alive.pop(n)]
        plan.append((writes, deletes))
        alive.append(f"new{n}.txt")
        for s, t in writes.items():
            versions.setdefault(s, []).extend([""] * (n - len(versions.get(s, ()))) + [t])
    corpus = write_corpus(tmp_path / "docs", {s: v[0] for s, v in versions.items() if s in names})
    index = tmp_path / "index"
    embedder = FakeEmbedder()
    Pipeline(embedder).run([corpus], index)
    checker = ReadChecker(versions, threading.Lock())
    log = tmp_path / "writer.log"
    with log.open("w") as err:
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(corpus), str(index), json.dumps(plan)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
    assert writer.stdin is not None and writer.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in writer.stdout], daemon=True).start()  # type: ignore[union-attr]
    questions = [f"Which shipment left port {p}?" for p in ("Avon", "Brill", "Corran", "Dunmore")]
    passes = []
    try:
        with Assistant.open(index, embedder=embedder, llm=FakeLLM()) as asst:
            n = 0
            while len(passes) < len(plan):
                checker.check(asst.retrieve(questions[n % len(questions)], k=8, mode="hybrid" if n % 2 else "dense"))
                n += 1
                try:
                    line = lines.get_nowait()
                except queue.Empty:
                    assert writer.poll() is None, log.read_text()
                    continue
                passes.append(line.split())
                for q in questions:  # read the state this pass left, then let the writer go on
                    checker.check(asst.retrieve(q, k=8))
                writer.stdin.write("\n")
                writer.stdin.flush()
            assert writer.wait(timeout=HANG_S) == 0, log.read_text()
            final = set(alive)
            assert {d["source"] for d in asst.store.documents()} == final
            for s in final:
                hit = asst.retrieve(f"{topics[s]} record", k=1, sources=[s])[0]
                assert hit.text.strip() == versions[s][-1].strip(), (s, hit.text)
            faiss_matches_sqlite(asst)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert [p[0] for p in passes] == ["pass"] * len(plan) and all(int(p[3]) == 1 for p in passes), passes
    assert max(checker.latest.values()) == len(plan)
    print(f"\n{checker.reads} reads during {len(plan)} writer passes")

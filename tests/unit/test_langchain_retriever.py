"""SlmRetriever with the public fakes: the mapping of hits to LangChain documents, k, sources, errors.

The LangChain standard retriever suite also runs here, over a fake-embedder index
(fast); tests/integration/test_langchain.py runs it with the real embedder.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.documents import Document

from assistant import Assistant, InvalidQuestion, Settings
from assistant.domain import GENERAL
from assistant.index import IndexStore
from assistant.integrations.langchain import SlmRetriever
from assistant.testing import FakeEmbedder, FakeLLM
from ingest.chunking import ChunkerConfig
from ingest.pipeline import Pipeline
from tests.langchain_suite import SlmRetrieverSuite

LAW_QUESTION = "Which laws govern this Agreement, Texas?"


def _open(index: Path, embedder: FakeEmbedder) -> Assistant:
    store = IndexStore.open(index, embedder_id=embedder.id, dim=embedder.dim)
    return Assistant(store=store, embedder=embedder, domain=GENERAL, settings=Settings(), llm=FakeLLM())


@pytest.fixture
def assistant(fake_embedder, text_corpus, tmp_path):
    pipeline = Pipeline(fake_embedder, chunker_config=ChunkerConfig(chunk_tokens=40, overlap_tokens=5),
                        metadata_hook=lambda source, text, meta: {"title": source.upper()})
    pipeline.run([text_corpus], tmp_path / "idx")
    with _open(tmp_path / "idx", fake_embedder) as asst:
        yield asst


def test_documents_carry_the_hits_text_place_and_scores(assistant):
    hits = assistant.retrieve(LAW_QUESTION, k=3)
    docs = SlmRetriever(assistant=assistant, k=3).invoke(LAW_QUESTION)
    assert len(docs) == len(hits) == 3
    for doc, hit in zip(docs, hits, strict=True):
        assert isinstance(doc, Document) and doc.id == str(hit.chunk_id)
        assert doc.page_content == hit.text
        assert doc.metadata == {
            "source": hit.source, "page": hit.page, "char_start": hit.char_start, "char_end": hit.char_end,
            "chunk_id": hit.chunk_id, "section": hit.section, "score": hit.score, "similarity": hit.similarity,
            "doc_meta": dict(hit.doc_meta),
        }
        assert doc.metadata["doc_meta"]["title"] == hit.source.upper()
        page = assistant.store.page_text(hit.source, hit.page)
        assert page is not None and page[hit.char_start:hit.char_end] == doc.page_content
    assert docs[0].metadata["source"] == "law.txt"


def test_k_from_the_constructor_the_call_or_the_settings(assistant):
    retriever = SlmRetriever(assistant=assistant, k=2)
    assert len(retriever.invoke(LAW_QUESTION)) == 2
    assert len(retriever.invoke(LAW_QUESTION, k=1)) == 1
    assert len(SlmRetriever(assistant=assistant).invoke(LAW_QUESTION)) == min(
        assistant.settings.retrieval.k, len(assistant.retrieve(LAW_QUESTION, k=100)))
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="k must be"):
            retriever.invoke(LAW_QUESTION, k=bad)
    with pytest.raises(ValueError):
        SlmRetriever(assistant=assistant, k=0)


def test_sources_and_mode_restrict_the_search(assistant):
    retriever = SlmRetriever(assistant=assistant, k=5, sources=["sub/*"])
    docs = retriever.invoke(LAW_QUESTION)
    assert docs and {d.metadata["source"] for d in docs} == {"sub/finance.txt"}
    docs = retriever.invoke(LAW_QUESTION, sources=["virus.md"], mode="lexical")
    assert {d.metadata["source"] for d in docs} <= {"virus.md"}
    assert retriever.invoke("Texas Dallas County", sources=["*.txt"], mode="lexical")[0].metadata["source"] == "law.txt"


async def _ainvoke(retriever: SlmRetriever, query: str, **kwargs) -> list[Document]:
    return await retriever.ainvoke(query, **kwargs)


def test_async_calls_take_the_same_arguments(assistant):
    retriever = SlmRetriever(assistant=assistant, k=3)
    docs = asyncio.run(_ainvoke(retriever, LAW_QUESTION, k=2, sources=["law.txt", "virus.md"]))
    assert docs == retriever.invoke(LAW_QUESTION, k=2, sources=["law.txt", "virus.md"])
    assert len(docs) == 2


@pytest.mark.parametrize("query", ["", "   ", "x" * 5000])
def test_an_empty_or_oversized_query_is_a_value_error_and_an_invalid_question(assistant, query):
    retriever = SlmRetriever(assistant=assistant)
    with pytest.raises(ValueError, match="question") as info:
        retriever.invoke(query)
    assert isinstance(info.value, InvalidQuestion)


def test_unknown_call_arguments_are_refused(assistant):
    with pytest.raises(TypeError):
        SlmRetriever(assistant=assistant).invoke(LAW_QUESTION, top_k=2)


def test_from_index_opens_and_closes_the_index(assistant, fake_embedder):
    index = assistant.store.directory
    with SlmRetriever.from_index(index, k=1, embedder=fake_embedder, llm=FakeLLM(), sources=["*.md"]) as retriever:
        assert retriever.sources == ("*.md",) and retriever.assistant.embedder is fake_embedder
        assert [d.metadata["source"] for d in retriever.invoke("virus genome")] == ["virus.md"]


def test_importing_the_library_does_not_import_langchain():
    code = "import sys, assistant, assistant.integrations; assert 'langchain_core' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.fixture(scope="class")
def _fake_index_assistant(request, tmp_path_factory):
    """One fake-embedder index of four one-chunk documents for the standard suite."""
    corpus = tmp_path_factory.mktemp("lc-corpus")
    topics = {
        "law.txt": "This Agreement shall be governed by the laws of the State of Texas.",
        "virus.txt": "The SAIBK strain of infectious bronchitis virus was isolated in Sichuan.",
        "sales.txt": "Net sales for the quarter were 81.8 billion dollars.",
        "trial.txt": "Patients received 400 mg of the study drug twice daily for ten days.",
    }
    for name, text in topics.items():
        (corpus / name).write_text(text + "\n", encoding="utf-8")
    embedder = FakeEmbedder()
    index = tmp_path_factory.mktemp("lc-index") / "idx"
    Pipeline(embedder).run([corpus], index)
    with _open(index, embedder) as asst:
        request.cls.assistant = asst
        yield


@pytest.mark.usefixtures("_fake_index_assistant")
class TestStandardSuiteWithFakes(SlmRetrieverSuite):
    @property
    def retriever_query_example(self) -> str:
        return "Which state's laws govern the agreement?"


def test_per_call_arguments_are_checked(assistant):
    retriever = SlmRetriever(assistant=assistant)
    with pytest.raises(ValueError, match="mode must be one of"):
        retriever.invoke("Texas law", mode="bm25")
    with pytest.raises(ValueError, match="from 1 to 100"):
        retriever.invoke("Texas law", k=101)
    docs = retriever.invoke("Texas law", sources="law.txt")  # one pattern, not its characters
    assert docs and {d.metadata["source"] for d in docs} == {"law.txt"}

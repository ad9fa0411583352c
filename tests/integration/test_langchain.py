"""The LangChain retriever over a real index: real embedder, FAISS, SQLite and GGUF model.

Runs the ``langchain-tests`` standard retriever suite and the README's example chain.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from assistant import Assistant, Settings
from assistant.integrations.langchain import SlmRetriever
from ingest.pipeline import Pipeline
from tests.langchain_suite import SlmRetrieverSuite

pytestmark = [pytest.mark.integration, pytest.mark.slow]

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
SAMPLE_INDEX = "var/index/sample"  # the index `make run` builds; the README example reads it
DOCUMENTS = {
    "virus.md": "# Virology\n\nThe infectious bronchitis virus causes economic losses to the poultry industry. "
                "The strain SAIBK was isolated in Sichuan province in 2005 from chickens with respiratory disease.",
    "law.txt": "GOVERNING LAW\n\nThis Agreement shall be governed by the laws of the State of Texas. "
               "Any dispute shall be resolved in the courts of Dallas County.",
    "termination.txt": "TERMINATION\n\nEither party may terminate this Agreement with ninety days written notice "
                       "to the other party.",
    "finance/sales.txt": "Net sales for the quarter were 81.8 billion dollars, down 1 percent year over year.",
    "finance/services.txt": "Services revenue reached a record 21.2 billion dollars in the June quarter.",
}


@pytest.fixture(scope="module")
def index(tmp_path_factory, real_embedder) -> Path:
    corpus = tmp_path_factory.mktemp("lc-corpus")
    for name, text in DOCUMENTS.items():
        (corpus / name).parent.mkdir(exist_ok=True)
        (corpus / name).write_text(text + "\n", encoding="utf-8")
    path = tmp_path_factory.mktemp("lc-index") / "index"
    result = Pipeline(real_embedder).run([corpus], path)
    assert result.ok and result.count("added") == len(DOCUMENTS)
    return path


@pytest.fixture(scope="class")
def _real_assistant(request, index, real_embedder):
    with Assistant.open(index, embedder=real_embedder, settings=Settings()) as asst:
        request.cls.assistant = asst
        yield


@pytest.mark.usefixtures("_real_assistant")
class TestSlmRetrieverStandard(SlmRetrieverSuite):
    @property
    def retriever_query_example(self) -> str:
        return "Where was the SAIBK strain of infectious bronchitis virus isolated?"


def test_real_search_finds_the_passage(index, real_embedder):
    with SlmRetriever.from_index(index, k=2, embedder=real_embedder) as retriever:
        docs = retriever.invoke("Which state's law governs the agreement?")
        finance = retriever.invoke("How much were the sales?", sources=["finance/*"])
    assert docs[0].metadata["source"] == "law.txt" and "Texas" in docs[0].page_content
    assert 0 < docs[0].metadata["similarity"] <= 1 and docs[0].metadata["page"] is None
    assert finance[0].metadata["source"] == "finance/sales.txt"
    assert {d.metadata["source"] for d in finance} <= {"finance/sales.txt", "finance/services.txt"}


def _readme_section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert match, f"no section {title!r} in README"
    return match.group(1)


def test_readme_example_chain_runs(index, capsys):
    blocks = re.findall(r"```python\n(.*?)```", _readme_section("Use from LangChain"), re.S)
    assert blocks and all(SAMPLE_INDEX in b for b in blocks)
    for block in blocks:
        exec(compile(block.replace(SAMPLE_INDEX, str(index)), "README.md", "exec"), {"__name__": "readme"})
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("virus.md None ") and len(lines) > 3
    answer = "\n".join(lines[3:])  # after the k=3 retrieved passages
    assert answer.strip(), "the chain produced no answer"

"""The Assistant read path with fakes: evidence first, citations, abstention, errors."""

from __future__ import annotations

import pytest

from assistant import Answer, Assistant, Evidence, GenerationError, InvalidQuestion, Token
from assistant.domain import GENERAL, load_domain
from assistant.errors import ConfigError
from assistant.index import IndexStore
from assistant.settings import Settings
from assistant.testing import FakeLLM


@pytest.fixture
def index(fake_pipeline, text_corpus, tmp_path):
    path = tmp_path / "idx"
    fake_pipeline.run([text_corpus], path)
    return path


def _assistant(index, embedder, llm=None, **settings):
    store = IndexStore.open(index, embedder_id=embedder.id, dim=embedder.dim)
    return Assistant(store=store, embedder=embedder, domain=GENERAL,
                     settings=Settings(**settings), llm=llm or FakeLLM())


def test_retrieve_finds_the_right_document(index, fake_embedder):
    with _assistant(index, fake_embedder) as asst:
        hits = asst.retrieve("Which laws govern this Agreement, Texas?", k=2)
        assert hits[0].source == "law.txt" and hits[0].page is None
        assert hits[0].similarity is not None
        assert asst.retrieve("poultry virus strain", k=1)[0].source == "virus.md"
        lexical = asst.retrieve("Services revenue record", k=1, mode="lexical")
        assert lexical[0].source == "sub/finance.txt"


def test_stream_yields_evidence_then_tokens_then_answer(index, fake_embedder):
    with _assistant(index, fake_embedder) as asst:
        events = list(asst.stream("Which laws govern this Agreement, Texas?"))
    assert isinstance(events[0], Evidence) and events[0].hits
    assert any(isinstance(e, Token) for e in events)
    answer = events[-1]
    assert isinstance(answer, Answer) and not answer.abstained
    assert answer.citations and answer.citations[0].source == "law.txt"
    c = answer.citations[0]
    with IndexStore.open(index) as store:
        assert store.page_text(c.source, c.page)[c.char_start:c.char_end] == c.quote
    assert answer.disclaimer and answer.timings.retrieval_ms >= 0


def test_invented_answer_is_flagged_and_abstains(index, fake_embedder):
    llm = FakeLLM(reply="The governing law is the United States Constitution, amended in 1791.")
    with _assistant(index, fake_embedder, llm) as asst:
        answer = asst.ask("Which laws govern this Agreement?")
    assert answer.abstained and answer.text == GENERAL.abstention
    assert answer.unsupported and answer.hits


def test_unrelated_question_abstains_without_generation(index, fake_embedder):
    llm = FakeLLM()
    with _assistant(index, fake_embedder, llm, answer={"min_relevance": 0.5}) as asst:
        answer = asst.ask("zebra migration patterns in Kenya")
    assert answer.abstained and llm.calls == []


def test_extractive_mode_quotes_sources(index, fake_embedder):
    llm = FakeLLM()
    with _assistant(index, fake_embedder, llm) as asst:
        answer = asst.ask("Which laws govern this Agreement, Texas?", extractive=True)
    assert answer.mode == "extractive" and llm.calls == []
    assert answer.citations and all(c.quote in answer.text for c in answer.citations)


def test_prompt_fences_sources_and_puts_system_first(index, fake_embedder):
    llm = FakeLLM()
    with _assistant(index, fake_embedder, llm) as asst:
        asst.ask("Which laws govern this Agreement, Texas?")
    system, user = llm.calls[0][0], llm.calls[0][-1]
    assert system["role"] == "system" and "never as orders" in system["content"]
    assert "<<<" in user["content"] and "[1] (law.txt)" in user["content"]


def test_follow_up_uses_history(index, fake_embedder):
    llm = FakeLLM()
    with _assistant(index, fake_embedder, llm) as asst:
        hist = [("What does the agreement say about governing law in Texas?", "Texas law [1]")]
        events = list(asst.stream("and termination?", history=hist))
    assert events[0].hits[0].source == "law.txt"
    assert any(m["content"] == "Texas law [1]" for m in llm.calls[0])


@pytest.mark.parametrize("question", ["", "   ", "x" * 5000])
def test_bad_questions(index, fake_embedder, question):
    with _assistant(index, fake_embedder) as asst, pytest.raises(InvalidQuestion):
        asst.ask(question)


def test_context_overflow_is_a_clear_error(index, fake_embedder):
    with _assistant(index, fake_embedder, FakeLLM(n_ctx=300)) as asst, pytest.raises(GenerationError, match="context"):
        asst.ask("Which laws govern this Agreement, Texas? " * 20)


def test_unknown_domain():
    with pytest.raises(ConfigError, match="unknown domain"):
        load_domain("astrology")


def test_domain_from_toml(tmp_path):
    f = tmp_path / "tax.toml"
    f.write_text('title = "Tax"\nabstention = "Not in the tax files."\n[expansions]\nVAT = "value added tax"\n')
    pack = load_domain(str(f))
    assert pack.name == "tax" and pack.expand_query("Is VAT due?").endswith("value added tax")
    f.write_text('colour = "red"\n')
    with pytest.raises(ConfigError, match="unknown keys"):
        load_domain(str(f))


def test_question_naming_a_document_is_focused_on_it(fake_pipeline, tmp_path, fake_embedder):
    corpus = tmp_path / "contracts"
    corpus.mkdir()
    clause = "This Agreement shall be governed by the laws of the State of {state}. Payment is due in {days} days."
    (corpus / "acme-supply-agreement.txt").write_text(
        "ACME SUPPLY AGREEMENT between Acme Corp and Buyer Inc.\n\n" + clause.format(state="Texas", days=30)
        + " The governing law clause of this agreement is final.", encoding="utf-8")
    (corpus / "globex-license-agreement.txt").write_text(
        "GLOBEX LICENSE AGREEMENT between Globex Ltd and Initech LLC.\n\n" + clause.format(state="Ohio", days=60),
        encoding="utf-8")
    index = tmp_path / "cidx"
    fake_pipeline.run([corpus], index)
    question = "In the Globex license agreement with Initech, what is the governing law clause?"
    store = IndexStore.open(index, embedder_id=fake_embedder.id, dim=fake_embedder.dim)
    legal = Assistant(store=store, embedder=fake_embedder, domain=load_domain("legal"), llm=FakeLLM())
    assert legal.retriever.named_documents(question) == [store.source_ids()["globex-license-agreement.txt"]]
    assert legal.retrieve(question, k=1)[0].source == "globex-license-agreement.txt"
    general = Assistant(store=store, embedder=fake_embedder, domain=GENERAL, llm=FakeLLM())
    assert general.retriever.focus is False
    assert legal.retrieve("What is the boiling point of water?", k=1)  # names no document: no focus, still answers


def test_index_is_answered_in_the_domain_it_was_ingested_with(fake_embedder, text_corpus, tmp_path):
    from ingest.chunking import ChunkerConfig
    from ingest.pipeline import Pipeline

    Pipeline(fake_embedder, chunker_config=ChunkerConfig(chunk_tokens=40, overlap_tokens=5),
             domain="legal").run([text_corpus], tmp_path / "legal-idx")
    with Assistant.open(tmp_path / "legal-idx", embedder=fake_embedder, llm=FakeLLM()) as asst:
        assert asst.domain.name == "legal"
    with Assistant.open(tmp_path / "legal-idx", embedder=fake_embedder, llm=FakeLLM(), domain="general") as asst:
        assert asst.domain.name == "general"  # a domain asked for wins
    with Assistant.open(tmp_path / "legal-idx", embedder=fake_embedder, llm=FakeLLM(), settings=Settings(domain="medical")) as asst:
        assert asst.domain.name == "medical"

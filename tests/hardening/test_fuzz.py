"""Bounded fuzzing (issue #7): the loaders on mutated files, the question path on arbitrary text.

A loader may fail only with an IngestError whose reason is one line; a question
may only be answered or refused with InvalidQuestion. Hypothesis runs under the
``slm-fuzz`` profile: derandomized (the same examples on every run, so CI is
reproducible), no example database, no deadline; about a minute in all on two
cores. For a longer local hunt: ``FUZZ_EXAMPLES=5000 FUZZ_RANDOM=1 pytest tests/hardening/test_fuzz.py``.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant import Answer, Assistant, Hit
from assistant.domain import GENERAL
from assistant.errors import IngestError, InvalidQuestion
from assistant.index import IndexStore
from assistant.testing import FakeEmbedder, FakeLLM
from ingest.chunking import ChunkerConfig
from ingest.loaders import open_document
from ingest.pipeline import Pipeline
from tests.hardening.hostile import FONT, docx_members, pdf_bytes, stream, text_content, text_pdf, zip_bytes

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
settings.register_profile(
    "slm-fuzz", derandomize=not os.environ.get("FUZZ_RANDOM"), database=None, deadline=None,
    max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile("slm-fuzz")
HANG_GUARD_S = 300


@pytest.fixture(autouse=True)
def _hang_guard() -> Iterator[None]:
    """A mutated file must never hang a parser: abort with every thread's traceback if one does."""
    faulthandler.dump_traceback_later(HANG_GUARD_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


# --- seeds: small valid files of every kind ----------------------------------------------------


def _flate_pdf() -> bytes:
    content = zlib.compress(text_content("Compressed page text about the governing law of Texas."))
    objects = [b"<< /Type /Catalog /Pages 2 0 R /Outlines << /Count 0 >> >>",
               b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>", FONT,
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 5 0 R "
               b"/Resources << /Font << /F1 3 0 R >> >> >>",
               stream(content, b"/Filter /FlateDecode "),
               b"<< /Title (Fuzz seed) /Author (Hypothesis) /CreationDate (D:20240101120000Z) >>"]
    return pdf_bytes(objects, trailer=b"/Info 6 0 R ")


HTML = (b"<!doctype html><html><head><title>Seed page</title><style>p{}</style><script>var x = 1 < 2;</script>"
        b"</head><body><h1>Heading</h1><p>Paragraph with <b>bold</b> text.<br>Next line &amp; more.</p>"
        b"<table><tr><th>A</th><td>1</td></tr></table><ul><li>one</li></ul><!-- comment --></body></html>")
DOCX_PARTS = docx_members("Seed paragraph about the indemnification clause.", "Second paragraph.")
SEEDS: dict[str, tuple[str, bytes]] = {
    "pdf": (".pdf", text_pdf("Seed page one\nwith two lines.", "Seed page two.")),
    "pdf-flate": (".pdf", _flate_pdf()),
    "docx": (".docx", zip_bytes(DOCX_PARTS)),
    "html": (".html", HTML),
    "text": (".txt", "Plain text seed.\nSecond line with ümlauts and a tab\there.\n".encode()),
    "markdown": (".md", b"# Title\n\nSome *markdown* text.\n\n- item\n"),
}
TOKENS = [b"\x00", b"\xff", b"\xfe\xff", b"\xef\xbb\xbf", b"\r", b"\n", b"<<", b">>", b"[", b"]", b"(", b")", b"\\",
          b"obj", b"endobj", b"stream\n", b"endstream", b"xref", b"trailer", b"%%EOF", b"%PDF-1.7",
          b"/Filter /FlateDecode",
          b"/Length 999999999", b"/Type /Pages", b"0 0 R", b"<div>", b"</div>", b"<!--", b"<![CDATA[", b"<a", b"&#",
          b"<w:p>", b"</w:body>", b"PK\x03\x04", b"\x78\x9c", "é".encode(), b"\xc3"]


@st.composite
def mutations(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with 1-8 edits: bit flips, inserted tokens or bytes, deletions, repeats, a cut."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "token", "bytes", "delete", "repeat", "truncate"]))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and data:
            at = min(at, len(data) - 1)
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "token":
            data[at:at] = draw(st.sampled_from(TOKENS)) * draw(st.integers(1, 64))
        elif op == "bytes":
            data[at:at] = draw(st.binary(max_size=32))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        elif op == "repeat":
            piece = data[at:at + draw(st.integers(1, 64))]
            data[at:at] = piece * draw(st.integers(1, 200))
        elif op == "truncate":
            del data[at:]
    return bytes(data)


class _Printed(logging.Handler):
    """Log records that `slm ingest`, whose logging is unconfigured, would print on stderr."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def read_all_or_ingest_error(path: Path, source: str) -> None:
    """Read ``path`` to the end: an IngestError with a one-line reason is the only way to fail,
    and nothing else may reach the user's terminal (log warnings, Python warnings)."""
    printed = _Printed()
    logging.getLogger().addHandler(printed)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                with open_document(path, source) as reader:
                    for page in reader.pages():
                        assert isinstance(page.text, str)
            except IngestError as e:
                assert e.source == source
                assert e.reason and "\n" not in e.reason, repr(e.reason)
    finally:
        logging.getLogger().removeHandler(printed)
    assert not [r.getMessage() for r in printed.records]
    hidden = DeprecationWarning | PendingDeprecationWarning  # not shown outside __main__
    assert not [str(w.message) for w in caught if not issubclass(w.category, hidden)]  # others print on stderr


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.parametrize("kind", sorted(SEEDS))
def test_seeds_are_valid_documents(workdir: Path, kind: str) -> None:
    """The fuzzing starts from files that load: otherwise it would only test the first check."""
    suffix, data = SEEDS[kind]
    path = workdir / f"seed{suffix}"
    path.write_bytes(data)
    with open_document(path, "seed") as reader:
        assert "".join(p.text for p in reader.pages()).strip()


@pytest.mark.parametrize("kind", sorted(SEEDS))
def test_mutated_files_fail_only_with_ingest_error(workdir: Path, kind: str) -> None:
    suffix, seed = SEEDS[kind]
    path = workdir / f"mutant-{kind}{suffix}"

    @settings(FUZZ)
    @given(data=mutations(seed))
    def check(data: bytes) -> None:
        path.write_bytes(data)
        read_all_or_ingest_error(path, f"fuzz/{kind}{suffix}")

    check()


def test_mutated_docx_xml_fails_only_with_ingest_error(workdir: Path) -> None:
    """A valid zip around a mutated word/document.xml: reaches python-docx and lxml, not just zipfile."""
    path = workdir / "mutant-xml.docx"
    body = dict(DOCX_PARTS)["word/document.xml"]

    @settings(FUZZ)
    @given(xml=mutations(body))
    def check(xml: bytes) -> None:
        parts = [(name, xml if name == "word/document.xml" else data) for name, data in DOCX_PARTS]
        path.write_bytes(zip_bytes(parts))
        read_all_or_ingest_error(path, "fuzz/xml.docx")

    check()
    with zipfile.ZipFile(path) as archive:  # the last example really was a zip
        assert "word/document.xml" in archive.namelist()


# --- the question path -------------------------------------------------------------------------

FTS_SYNTAX = ['"', '""', "*", "NEAR(", "NEAR(law Texas, 2)", "AND", "OR", "NOT", "^", "text:", "section:",
              "chunks_fts:", "rank:", "(", ")", "{", "}", ":", "-", "+", "'", "\\", "%", "_", "\x00", "\x1b[2J",
              "\u2028", "\ufeff", "\u202e", "\ud800", "\udcff", "\U0001f642", "governing", "law", "Texas", "virus",
              "SELECT * FROM chunks;", "') OR 1=1 --", "\t", "\n"]
QUESTIONS = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(categories=["Cc", "Cs", "Cf", "Zs", "Zl", "Zp", "Co", "Cn"]), max_size=40),
    st.lists(st.sampled_from(FTS_SYNTAX), max_size=12).map(" ".join),
    st.lists(st.sampled_from(FTS_SYNTAX), max_size=12).map("".join),
    st.integers(3_990, 4_010).map(lambda n: ("law " * n)[:n]),  # around the length limit
    st.sampled_from(["", " ", "\n\t ", "\x00", "?", "..."]),
)


@pytest.fixture(scope="module")
def assistant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Assistant]:
    root = tmp_path_factory.mktemp("qdocs")
    (root / "law.txt").write_text("GOVERNING LAW\n\nThis Agreement is governed by the laws of the State of Texas.\n"
                                  "TERMINATION\n\nEither party may terminate with ninety days notice.\n",
                                  encoding="utf-8")
    (root / "virus.md").write_text("# Virology\n\nThe infectious bronchitis virus was isolated in 2005.\n",
                                   encoding="utf-8")
    embedder = FakeEmbedder()
    index = tmp_path_factory.mktemp("qindex") / "idx"
    Pipeline(embedder, chunker_config=ChunkerConfig(chunk_tokens=40, overlap_tokens=5)).run([root], index)
    store = IndexStore.open(index, embedder_id=embedder.id, dim=embedder.dim)
    with Assistant(store=store, embedder=embedder, domain=GENERAL, llm=FakeLLM()) as asst:
        yield asst


def test_questions_are_answered_or_refused_clearly(assistant: Assistant) -> None:
    @settings(FUZZ, max_examples=EXAMPLES * 3)
    @given(question=QUESTIONS)
    def check(question: str) -> None:
        try:
            hits = assistant.retrieve(question, k=3)
        except InvalidQuestion as e:
            assert str(e) and "\n" not in str(e)
            with pytest.raises(InvalidQuestion):
                assistant.ask(question)
            return
        assert isinstance(hits, list) and all(isinstance(h, Hit) for h in hits)
        answer = assistant.ask(question)
        assert isinstance(answer, Answer) and isinstance(answer.text, str)

    check()

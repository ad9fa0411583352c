"""Tests for ingest.loaders and the modules behind it (document, pdf, pdf_guard, html_text).

Every input file is generated here, in tmp_path.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.errors import IngestError
from assistant.types import Page
from ingest import html_text, loaders, pdf_guard
from ingest import pdf as pdf_loader
from ingest.document import clean, quiet
from ingest.loaders import SUPPORTED_SUFFIXES, DocumentInfo, open_document
from tests.hardening.hostile import pdf_bytes

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"
IMAGE = object()  # page spec: a page holding only an image, as a scan does


# --- a minimal PDF writer, so no binary fixture is committed -----------------


def _escape(s: str) -> bytes:
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("latin-1")


def make_pdf(pages: list[object], info: dict[str, str] | None = None) -> bytes:
    """A valid PDF with one page per spec: str (text lines), IMAGE, or None (blank)."""
    objs: list[bytes] = [b"", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"]
    pixels = zlib.compress(bytes(range(0, 256, 4)))  # an 8x8 grey gradient
    objs.append(b"<< /Type /XObject /Subtype /Image /Width 8 /Height 8 /ColorSpace /DeviceGray "
                b"/BitsPerComponent 8 /Filter /FlateDecode /Length %d >>\nstream\n%s\nendstream" % (len(pixels), pixels))
    kids = []
    for spec in pages:
        if spec is IMAGE:
            content = b"q 400 0 0 400 100 200 cm /Im1 Do Q"
        elif spec is None:
            content = b""
        else:
            lines = b" T* ".join(b"(%s) Tj" % _escape(line) for line in str(spec).split("\n"))
            content = b"BT /F1 11 Tf 14 TL 72 740 Td " + lines + b" ET"
        objs.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
        objs.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                    b"/Resources << /Font << /F1 3 0 R >> /XObject << /Im1 4 0 R >> >> >>" % len(objs))
        kids.append(b"%d 0 R" % len(objs))
    objs[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objs[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    trailer = b""
    if info:
        objs.append(b"<< " + b" ".join(b"/%s (%s)" % (k.encode(), _escape(v)) for k, v in info.items()) + b" >>")
        trailer = b"/Info %d 0 R " % len(objs)
    return pdf_bytes(objs, trailer)


def encrypt(pdf: bytes, user_password: str, algorithm: str = "RC4-128") -> bytes:
    import pypdf

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def read_all(path: Path, source: str = "doc") -> tuple[DocumentInfo, list[Page]]:
    with open_document(path, source) as reader:
        return reader.info, list(reader.pages())


def assert_ingest_error(path: Path, phrase: str, source: str = "the/source.pdf") -> IngestError:
    """Opening and reading ``path`` must fail with ``phrase`` in a one-line reason."""
    with pytest.raises(IngestError) as caught:
        read_all(path, source)
    err = caught.value
    assert err.source == source
    assert phrase in err.reason, err.reason
    assert "\n" not in err.reason
    return err


PAGE_TEXTS = [f"Page {n} of the agreement.\nThe governing law is Texas, clause {n}." for n in (1, 2, 3)]


# --- PDF happy paths -----------------------------------------------------------


def test_pdf_pages_stream_with_1_based_numbers_and_text(tmp_path: Path) -> None:
    info_dict = {"Title": "Supply Agreement", "Author": "ACME Legal", "CreationDate": "D:20230425161530-04'00'"}
    path = write(tmp_path, "contract.pdf", make_pdf(list(PAGE_TEXTS), info=info_dict))
    info, pages = read_all(path)
    assert info == DocumentInfo("pdf", 3, {"title": "Supply Agreement", "author": "ACME Legal",
                                           "created": "2023-04-25T16:15:30-04:00"})
    assert [p.number for p in pages] == [1, 2, 3]
    for page, expected in zip(pages, PAGE_TEXTS, strict=True):
        assert page.text == expected  # lines joined by "\n", no "\r"


def test_upper_case_suffix_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "REPORT.PDF", make_pdf(list(PAGE_TEXTS)))
    assert read_all(path)[0].page_count == 3
    assert read_all(write(tmp_path, "NOTES.TXT", "hello"))[1] == [Page(None, "hello")]


def test_pypdf_fallback_when_pdfium_cannot_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pypdfium2

    def refuse(*args: object, **kwargs: object) -> None:
        raise pypdfium2.PdfiumError("Failed to load document (PDFium: Data format error).")

    monkeypatch.setattr(pypdfium2, "PdfDocument", refuse)
    path = write(tmp_path, "a.pdf", make_pdf(list(PAGE_TEXTS), info={"Title": "T"}))
    info, pages = read_all(path)
    assert info.page_count == 3 and info.meta["title"] == "T"
    assert [p.number for p in pages] == [1, 2, 3]
    assert "governing law is Texas, clause 2" in pages[1].text


def test_encrypted_pdf_with_empty_user_password_opens(tmp_path: Path) -> None:
    path = write(tmp_path, "open.pdf", encrypt(make_pdf(list(PAGE_TEXTS)), user_password=""))
    assert [p.text for p in read_all(path)[1]] == PAGE_TEXTS


def test_aes_encrypted_pdf_with_empty_user_password_opens(tmp_path: Path) -> None:
    pytest.importorskip("cryptography", reason="pypdf needs cryptography to write AES")
    path = write(tmp_path, "open.pdf", encrypt(make_pdf(list(PAGE_TEXTS)), "", algorithm="AES-256"))
    assert [p.text for p in read_all(path)[1]] == PAGE_TEXTS


def test_encrypted_pdf_needing_a_password_fails_clearly(tmp_path: Path) -> None:
    path = write(tmp_path, "locked.pdf", encrypt(make_pdf(list(PAGE_TEXTS)), user_password="s3cret"))
    assert_ingest_error(path, "encrypted PDF: needs a password; remove the protection")


# --- PDF failures ----------------------------------------------------------------


def test_binary_junk_named_pdf(tmp_path: Path) -> None:
    err = assert_ingest_error(write(tmp_path, "junk.pdf", os.urandom(4096)), "not a valid PDF (")
    assert "re-export or re-download it" in err.reason


def test_truncated_pdf(tmp_path: Path) -> None:
    data = make_pdf(list(PAGE_TEXTS))
    assert_ingest_error(write(tmp_path, "cut.pdf", data[: len(data) // 2]), "not a valid PDF (truncated")


def test_corrupt_pdf_body(tmp_path: Path) -> None:
    data = b"%PDF-1.7\n" + os.urandom(3000) + b"\nstartxref\n12\n%%EOF\n"
    assert_ingest_error(write(tmp_path, "bad.pdf", data), "not a valid PDF (")


def test_pdf_without_pages(tmp_path: Path) -> None:
    assert_ingest_error(write(tmp_path, "none.pdf", make_pdf([])), "not a valid PDF (it has no pages)")


@pytest.mark.parametrize("spec", [[IMAGE, IMAGE], [None], [IMAGE, None, "7"]], ids=["images", "blank", "stamp"])
def test_scanned_pdf_has_no_text_layer(tmp_path: Path, spec: list[object]) -> None:
    err = assert_ingest_error(write(tmp_path, "scan.pdf", make_pdf(spec)), "scanned / no text layer")
    assert "run OCR (e.g. ocrmypdf) first" in err.reason


def test_no_text_layer_is_raised_only_after_every_page_was_yielded(tmp_path: Path) -> None:
    with open_document(write(tmp_path, "scan.pdf", make_pdf([IMAGE, IMAGE, IMAGE])), "s") as reader:
        pages = reader.pages()
        assert [next(pages).number for _ in range(3)] == [1, 2, 3]
        with pytest.raises(IngestError, match="no text layer"):
            next(pages)


def test_a_page_that_fails_to_extract_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pypdfium2

    original = pypdfium2.PdfPage.get_textpage
    calls = []

    def flaky(self: pypdfium2.PdfPage) -> pypdfium2.PdfTextPage:
        calls.append(1)
        if len(calls) == 2:
            raise pypdfium2.PdfiumError("Failed to load text page.")
        return original(self)

    monkeypatch.setattr(pypdfium2.PdfPage, "get_textpage", flaky)
    err = assert_ingest_error(write(tmp_path, "a.pdf", make_pdf(list(PAGE_TEXTS))), "page 2: text extraction failed")
    assert "Failed to load text page" in err.reason


def test_long_pdf_streams_in_bounded_memory(tmp_path: Path) -> None:
    body = "\n".join(f"Line {i} of a long filing with numbers 1,234.56 and words." for i in range(40))
    path = write(tmp_path, "long.pdf", make_pdf([body] * 2000))

    def rss_bytes() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    before, peak, count = rss_bytes(), 0, 0
    with open_document(path, "long.pdf") as reader:
        for page in reader.pages():
            count += 1
            assert page.number == count
            if count % 100 == 0:
                peak = max(peak, rss_bytes())
    assert count == 2000
    assert peak - before < 100 * 2**20  # measured: ~7 MB


@pytest.mark.skipif(not (SHARED / "finance" / "sec-10q").is_dir(), reason="shared corpora not present")
@pytest.mark.parametrize("name", ["2023 Q1 MSFT.pdf", "2023 Q2 MSFT.pdf"])
def test_real_msft_10q_filings_open(name: str) -> None:
    # pypdf raises LimitReachedError on these two filings; PDFium must read them.
    info, pages = read_all(SHARED / "finance" / "sec-10q" / name, name)
    assert info.page_count == len(pages) > 10
    assert any("Microsoft" in p.text for p in pages)
    assert all("\r" not in p.text and "\x00" not in p.text for p in pages)


# --- text and markdown ---------------------------------------------------------------


def test_text_is_exactly_what_open_read_returns(tmp_path: Path) -> None:
    path = write(tmp_path, "a.txt", "Title\r\nline two\rline three\n\tindented\u2028 é\r\n")
    _, pages = read_all(path)
    assert pages == [Page(None, open(path, encoding="utf-8").read())]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1).filter(str.strip))
def test_text_offsets_match_open_read_for_any_text(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "h.txt", text)
    assert read_all(path)[1][0].text == open(path, encoding="utf-8").read()


def test_utf8_bom_is_accepted_and_stripped(tmp_path: Path) -> None:
    path = write(tmp_path, "bom.txt", b"\xef\xbb\xbfhello\r\nworld")
    assert read_all(path)[1] == [Page(None, "hello\nworld")]


@pytest.mark.parametrize(("data", "byte"), [(b"caf\xe9 au lait", 3), (b"\xef\xbb\xbfok \xff", 6)])
def test_non_utf8_text_names_the_byte(tmp_path: Path, data: bytes, byte: int) -> None:
    assert_ingest_error(write(tmp_path, "latin1.txt", data), f"not valid UTF-8 at byte {byte}; re-save it as UTF-8")


def test_utf16_and_nul_bytes_are_rejected(tmp_path: Path) -> None:
    assert_ingest_error(write(tmp_path, "u16.txt", "hi there".encode("utf-16")), "UTF-16")
    assert_ingest_error(write(tmp_path, "u16le.txt", "hi there".encode("utf-16-le")), "NUL byte")


def test_markdown_keeps_raw_markdown(tmp_path: Path) -> None:
    text = "# Dosage\n\nTake **two** tablets.\n\n## Warnings\n- Not for children\n"
    info, pages = read_all(write(tmp_path, "notes.markdown", text))
    assert info == DocumentInfo("markdown", None, {})
    assert pages == [Page(None, text)]
    assert read_all(write(tmp_path, "n.md", text))[0].kind == "markdown"


# --- HTML and DOCX -------------------------------------------------------------------


def test_html_visible_text_blocks_and_title(tmp_path: Path) -> None:
    html = """<!doctype html><html><head><title> Trial
      Protocol </title><style>p {color: red}</style><script>var x = "hidden";</script></head>
      <body><h1>Study  design</h1><p>Patients receive <b>10 mg</b> daily.<br>Twice a week.</p>
      <noscript>enable JS</noscript><table><tr><th>Arm</th><th>Dose</th></tr><tr><td>A</td><td>5&nbsp;mg</td></tr></table>
      <ul><li>one</li><li>two</li></ul></body></html>"""
    info, pages = read_all(write(tmp_path, "p.htm", html))
    assert info == DocumentInfo("html", None, {"title": "Trial Protocol"})
    assert pages[0].text.split("\n") == [
        "Study design", "Patients receive 10 mg daily.", "Twice a week.", "Arm Dose", "A 5 mg", "one", "two",
    ]


def test_html_without_visible_text_and_binary_html(tmp_path: Path) -> None:
    assert_ingest_error(write(tmp_path, "spa.html", "<html><script>app()</script></html>"), "no text")
    assert_ingest_error(write(tmp_path, "bin.html", b"\x00\x01\x02" * 100), "binary data, not HTML")


def test_docx_paragraphs_headings_tables_and_core_properties(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Indemnification", level=1)
    document.add_paragraph("The Supplier shall indemnify the Buyer.")
    table = document.add_table(rows=2, cols=3)
    table.cell(0, 0).merge(table.cell(0, 1)).text = "Party"
    table.cell(0, 2).text = "Cap"
    for col, value in enumerate(["Supplier", "Buyer", "$1M"]):
        table.cell(1, col).text = value
    document.add_paragraph("Signed.")
    document.core_properties.title = "MSA"
    document.core_properties.author = "Counsel"
    document.core_properties.subject = ""
    path = tmp_path / "msa.DOCX"
    document.save(str(path))
    info, pages = read_all(path)
    assert info.kind == "docx" and info.page_count is None
    assert info.meta["title"] == "MSA" and info.meta["author"] == "Counsel" and "subject" not in info.meta
    assert pages == [Page(None, "Indemnification\nThe Supplier shall indemnify the Buyer.\nParty\tCap\n"
                                "Supplier\tBuyer\t$1M\nSigned.")]


def test_bad_docx(tmp_path: Path) -> None:
    assert_ingest_error(write(tmp_path, "x.docx", os.urandom(2000)), "not a valid DOCX (")
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(1000)
    assert_ingest_error(write(tmp_path, "locked.docx", ole), "encrypted DOCX or legacy .doc")


# --- file-level failures -----------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    assert_ingest_error(tmp_path / "nope.pdf", "file not found")


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "folder.pdf").mkdir()
    assert_ingest_error(tmp_path / "folder.pdf", "is a directory")


def test_fifo_is_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.txt")
    assert_ingest_error(tmp_path / "pipe.txt", "not a regular file")


def test_pdfium_hyphen_marker_becomes_a_hyphen() -> None:
    assert clean("forward\ufffelooking\r\nnext") == "forward-looking\nnext"


@pytest.mark.parametrize("name", ["empty.pdf", "empty.txt", "empty.docx", "empty.html"])
def test_zero_byte_file(tmp_path: Path, name: str) -> None:
    assert_ingest_error(write(tmp_path, name, b""), "empty file (0 bytes)")


@pytest.mark.parametrize("name", ["sheet.xlsx", "Makefile", "archive.pdf.gz"])
def test_unsupported_extension_lists_supported_ones(tmp_path: Path, name: str) -> None:
    err = assert_ingest_error(write(tmp_path, name, b"data"), "unsupported file type")
    assert all(suffix in err.reason for suffix in SUPPORTED_SUFFIXES)


@contextmanager
def unprivileged() -> Iterator[None]:
    """Drop the effective uid when running as root, where chmod 000 stops nothing."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)  # nobody; the real uid stays 0, so it can be restored
    try:
        yield
    finally:
        os.seteuid(0)


def test_unreadable_file() -> None:
    # pytest's tmp_path lives under a 0700 folder "nobody" cannot enter; to fail on
    # the file itself (not on a folder) it must sit in a folder anyone can search.
    folder = Path(tempfile.mkdtemp())
    folder.chmod(0o755)
    path = write(folder, "secret.txt", "classified")
    path.chmod(0)
    try:
        with unprivileged():
            assert_ingest_error(path, "cannot open the file (Permission denied)")
    finally:
        shutil.rmtree(folder)


def test_unreadable_folder(tmp_path: Path) -> None:
    path = write(tmp_path, "secret.txt", "classified")
    tmp_path.chmod(0)
    try:
        with unprivileged():
            assert_ingest_error(path, "permission denied")
    finally:
        tmp_path.chmod(0o755)


def test_pdf_date_parsing() -> None:
    assert pdf_loader._pdf_date("D:2023") == "2023-01-01"
    assert pdf_loader._pdf_date("D:20230425161530Z") == "2023-04-25T16:15:30Z"
    assert pdf_loader._pdf_date("D:20230425161530+05'30") == "2023-04-25T16:15:30+05:30"
    assert pdf_loader._pdf_date("April 2023") == "April 2023"


def test_clean_drops_control_characters_but_keeps_tabs_and_newlines() -> None:
    assert clean("a\x00b\x0cc\td\r\ne\rf\x1b") == "abc\td\ne\nf"


# --- hostile inputs: limits and clear messages (the full corpus: tests/hardening) -------------------


def test_text_over_the_size_limit_is_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loaders, "MAX_TEXT_MB", 1)
    path = write(tmp_path, "big.md", "word " * 300_000)  # 1.4 MB
    err = assert_ingest_error(path, "file is 1 MB, over the 1 MB limit for markdown files")
    assert "split it into smaller files" in err.reason
    assert read_all(write(tmp_path, "small.md", "word " * 200_000))[1][0].text.startswith("word")


@pytest.mark.parametrize(("text", "line"), [("a" * 11, 1), ("ok\n" + "b" * 11, 2), ("x\n" * 3 + "c" * 25 + "\nend", 4),
                                            ("d" * 9 + "\n" + "e" * 11, 2)])
def test_a_line_over_the_limit_is_refused_and_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     text: str, line: int) -> None:
    monkeypatch.setattr(loaders, "MAX_LINE_CHARS", 10)
    err = assert_ingest_error(write(tmp_path, "dump.txt", text), f"line {line} is over 10 characters long")
    assert "add line breaks" in err.reason


@pytest.mark.parametrize("text", ["a" * 10, ("b" * 10 + "\n") * 5, "c" * 9 + "\n" + "d" * 10 + "\r\n" + "e" * 3])
def test_lines_up_to_the_limit_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(loaders, "MAX_LINE_CHARS", 10)  # blocks of 10: lines cross block boundaries
    assert read_all(write(tmp_path, "ok.txt", text))[1] == [Page(None, text.replace("\r\n", "\n"))]


@pytest.mark.parametrize(("name", "data", "found"), [
    ("scan.pdf", b"\x89PNG\r\n\x1a\n" + bytes(100), "this is a PNG image, not a PDF file"),
    ("x.pdf", b"PK\x03\x04" + bytes(100), "this is a ZIP archive"),
    ("notes.txt", b"%PDF-1.4\n%%EOF\n", "this is a PDF document, not a text file"),
    ("page.html", b"GIF89a" + bytes(10), "this is a GIF image, not a HTML file"),
    ("memo.docx", b"%PDF-1.7\n", "this is a PDF document, not a DOCX file"),
    ("letter.txt", b"{\\rtf1\\ansi hello}", "this is an RTF document"),
])
def test_a_wrong_extension_names_the_real_type(tmp_path: Path, name: str, data: bytes, found: str) -> None:
    err = assert_ingest_error(write(tmp_path, name, data), found)
    assert err.reason.endswith("rename it to its real type or convert it")


def test_html_with_too_many_tags_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(html_text, "MAX_HTML_TAGS", 10)
    assert_ingest_error(write(tmp_path, "a.html", "<p>x" * 11), "11 tags, over the 10 limit for one page")


def test_deeply_nested_html_keeps_its_text_in_order(tmp_path: Path) -> None:
    depth = 20_000  # html.parser with insert_after took 11 s at 16,000; the stack walk is linear
    html = "<p>before</p>" + "<div><span>x</span>" * depth + "inner" + "</div>" * depth + "<p>after</p>"
    text = read_all(write(tmp_path, "deep.html", html))[1][0].text
    lines = text.split("\n")
    assert lines[0] == "before" and lines[-1] == "after" and lines[-2] == "xinner" and len(lines) == depth + 2


def test_unclosed_tags_do_not_stall_the_html_parser(tmp_path: Path) -> None:
    # Python 3.11's html.parser rescans to the end for each unclosed "<a": quadratic.
    assert read_all(write(tmp_path, "a.html", "<p>hello</p>" + "<a" * 200_000))[1][0].text == "hello"


@pytest.mark.parametrize("junk", [b"\x00\xff", b"\x00", b"\xff\xfe\x81", b"\x00" * 100])
def test_html_nul_and_stray_bytes_after_the_start_do_not_lose_the_page(tmp_path: Path, junk: bytes) -> None:
    # A stray \xff made the encoding guess cp932, with which lxml, fed bytes, kept nothing.
    data = b"<p>" + b"x" * 5000 + b"</p><p>first</p>" + junk + b"<p>second</p>"
    text = read_all(write(tmp_path, "a.html", data))[1][0].text
    assert text.startswith("x" * 5000 + "\nfirst\n") and text.endswith("second") and "\x00" not in text


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_docx_zip_bomb_is_refused_from_its_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loaders, "MAX_DOCX_UNPACKED_MB", 1)
    path = write(tmp_path, "bomb.docx", _zip({"word/document.xml": b"<x/>", "word/media/pad.bin": bytes(3 << 20)}))
    assert path.stat().st_size < 10_000
    err = assert_ingest_error(path, "unpacks to 3 MB, over the 1 MB limit (a zip bomb")
    assert "remove large embedded files or split it" in err.reason


def test_docx_parser_errors_become_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "x.docx", _zip({"[Content_Types].xml": b"<\x00?xml", "word/document.xml": b"<x/>"}))
    assert_ingest_error(path, "not a valid DOCX (")


def _flate_content_pdf(content: bytes, extra: bytes = b"") -> bytes:
    """make_pdf with page 1's content (object 5) replaced by a Flate stream of ``content``."""
    packed = zlib.compress(content, 9)
    data = make_pdf(["Second page with enough text to count as text."] * 2)
    first = data.index(b"<<", data.index(b"\n5 0 obj\n"))
    end = data.index(b"endstream", first) + len(b"endstream")
    body = b"<< /Length %d /Filter /FlateDecode %s>>\nstream\n%s\nendstream" % (len(packed), extra, packed)
    return data[:first] + body + data[end:]  # xref offsets now point wrong: PDFium repairs


def test_flate_bomb_in_page_content_is_refused_before_pdfium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf_guard, "MAX_PDF_CONTENT_MB", 1)
    path = write(tmp_path, "bomb.pdf", _flate_content_pdf(b"BT (A) Tj ET " * 200_000))  # 2.6 MB inflated
    err = assert_ingest_error(path, "page content holds over 1 MB of drawing and text commands")
    assert "decompression bomb" in err.reason
    small = write(tmp_path, "ok.pdf", _flate_content_pdf(b"BT /F1 11 Tf 72 740 Td (Compressed page one) Tj ET"))
    assert read_all(small)[1][0].text == "Compressed page one"


def test_streams_are_limited_by_how_pdfium_uses_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf_guard, "MAX_PDF_CONTENT_MB", 1)
    monkeypatch.setattr(pdf_guard, "MAX_PDF_STREAM_MB", 2)
    big = bytes(3 << 20)
    image = write(tmp_path, "scan.pdf", _flate_content_pdf(big, extra=b"/Type /XObject /Subtype /Image "))
    pdf_guard.check_pdf_streams(image, "scan.pdf")  # never decoded for text: a 3 MB decoded scan is normal
    font = write(tmp_path, "font.pdf", _flate_content_pdf(big, extra=b"/Subtype /Type1C "))
    with pytest.raises(IngestError, match="decompression bomb: a compressed part inflates to over 2 MB"):
        pdf_guard.check_pdf_streams(font, "font.pdf")  # decoded whole, but not parsed into page objects
    double = zlib.compress(zlib.compress(big))  # 3 MB through two Flate layers: ~100 bytes on disk
    stream = b"<< /Filter [/FlateDecode /FlateDecode] /Length %d >>\nstream\n%s\nendstream" % (len(double), double)
    nested = make_pdf(["x"]).replace(b"\nendobj\nxref", b"\nendobj\n99 0 obj\n%s\nendobj\nxref" % stream)
    with pytest.raises(IngestError, match="page content holds over 1 MB"):
        pdf_guard.check_pdf_streams(write(tmp_path, "nested.pdf", nested), "nested.pdf")


def test_uncompressed_content_is_measured_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf_guard, "MAX_PDF_CONTENT_MB", 1)
    path = write(tmp_path, "dense.pdf", make_pdf(["word " * 300_000]))  # 1.5 MB of text commands
    assert_ingest_error(path, "page content holds over 1 MB")


def test_encrypted_bomb_is_checked_through_decryption(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("cryptography", reason="pypdf needs cryptography to write AES")
    monkeypatch.setattr(pdf_guard, "MAX_PDF_CONTENT_MB", 1)
    bomb = encrypt(make_pdf(["word " * 300_000]), "", algorithm="AES-128")  # compressed by pypdf, then encrypted
    assert_ingest_error(write(tmp_path, "bomb.pdf", bomb), "page content holds over 1 MB")


@pytest.mark.parametrize(("keys", "role"), [
    ({"Length": ""}, "content"), ({"Subtype": "Form", "Type": "XObject"}, "content"), ({"Subtype": "Image"}, None),
    ({"Type": "EmbeddedFile"}, None), ({"Length1": ""}, "data"), ({"Type": "ObjStm", "N": ""}, "data"),
    ({"Subtype": "Type1C"}, "data"), ({"N": ""}, "data"),
])
def test_stream_roles(keys: dict[str, str], role: str | None) -> None:
    assert pdf_guard._stream_role(keys) == role


def test_too_many_pages_and_too_much_text_on_a_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf_loader, "MAX_PDF_PAGES", 2)
    assert_ingest_error(write(tmp_path, "long.pdf", make_pdf(list(PAGE_TEXTS))), "3 pages, over the 2-page limit")
    monkeypatch.setattr(pdf_loader, "MAX_PAGE_CHARS", 40)
    err = assert_ingest_error(write(tmp_path, "dense.pdf", make_pdf(["short", "x" * 50])), "page 2 holds 50 characters")
    assert "more than a real page can (over 40)" in err.reason


def test_symbolic_link_loops_and_broken_links_are_named(tmp_path: Path) -> None:
    os.symlink("b.txt", tmp_path / "a.txt")
    os.symlink("a.txt", tmp_path / "b.txt")
    os.symlink("gone.txt", tmp_path / "c.txt")
    assert_ingest_error(tmp_path / "a.txt", "symbolic link loop")
    assert_ingest_error(tmp_path / "c.txt", "broken symbolic link (its target 'gone.txt' does not exist)")


def test_unexpected_parser_errors_become_ingest_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(path: Path, source: str) -> tuple[str, dict[str, str]]:
        raise RecursionError("maximum recursion depth exceeded\nwhile parsing")

    monkeypatch.setattr(loaders, "read_html", explode)
    err = assert_ingest_error(write(tmp_path, "a.html", "<p>x</p>"), "cannot read this HTML file (RecursionError: ")
    assert "maximum recursion depth exceeded while parsing" in err.reason


def test_parsers_do_not_print_their_warnings(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    with caplog.at_level(logging.WARNING), quiet("pypdf"):
        logging.getLogger("pypdf._reader").warning("Multiple definitions in dictionary")
    logging.getLogger("pypdf._reader").warning("after")
    assert [r.getMessage() for r in caplog.records] == ["after"]


def test_undecodable_html_logs_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # bs4 logs "Some characters could not be decoded": `slm ingest` would print it on stderr.
    data = (b"<html><head><title>T</title><script>var x \xbd\xfa\x0f\xf0t\x06f\x16\x9d\xc9= 1;</script></head>"
            b"<body\x94\x0b\xd53_\x97=\xaa><h1\xd4X\xbb\xbf,\xe07>Heading</h1><p>Paragraph text.</p>"
            b"<ul><li>onea\x9b\x91\xcf\xb0\xb4\xeb\xff\xc9\x11\xf5</li></ul></body></html>")  # found by the fuzzer
    with caplog.at_level(logging.DEBUG):
        assert "Paragraph text." in read_all(write(tmp_path, "a.html", data))[1][0].text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("indirect", [False, True])
def test_a_fake_endstream_inside_the_content_does_not_hide_its_length(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      indirect: bool) -> None:
    monkeypatch.setattr(pdf_guard, "MAX_PDF_CONTENT_MB", 1)
    data = make_pdf(["endstream " + "word " * 300_000])  # PDFium reads /Length bytes, not up to the first "endstream"
    length = re.search(rb"<< /Length (\d+) >>\nstream\nBT", data)
    assert length is not None
    if indirect:
        data = data.replace(length.group(0), b"<< /Length 99 0 R >>\nstream\nBT")
        data = data.replace(b"\nendobj\nxref", b"\nendobj\n99 0 obj\n%s\nendobj\nxref" % length.group(1))
    assert_ingest_error(write(tmp_path, "hidden.pdf", data), "page content holds over 1 MB")


def test_all_streams_of_a_pdf_share_one_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf_guard, "MAX_PDF_DECODED_MB", 1)
    path = write(tmp_path, "two.pdf", make_pdf(["word " * 120_000, "word " * 120_000]))  # 0.6 MB each
    assert_ingest_error(path, "its contents come to over 1 MB once decompressed")


def test_the_line_limit_holds_for_html_and_docx_text_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import docx

    monkeypatch.setattr(loaders, "MAX_LINE_CHARS", 10)
    assert_ingest_error(write(tmp_path, "min.html", "<p>" + "a" * 11 + "</p>"), "line 1 is over 10 characters")
    document = docx.Document()
    document.add_paragraph("short")
    document.add_paragraph("b" * 11)
    document.save(str(tmp_path / "long.docx"))
    assert_ingest_error(tmp_path / "long.docx", "line 2 is over 10 characters")

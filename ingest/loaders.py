"""Open a document file and stream its text, page by page.

:func:`open_document` turns a path into a :class:`DocumentReader`. Every way a
file can be unusable becomes an :class:`~assistant.errors.IngestError` whose
``reason`` is one line saying what is wrong and how to fix it, so a batch ingest
reports the file and goes on.

PDFs are read with pypdfium2 (PDFium), which was 8-13x faster than pypdf 7.1 on
the shared corpora and opens two SEC filings on which pypdf raises
``LimitReachedError`` (``benchmarks/pdf_parsers.py``); pypdf is only a fallback
for files PDFium refuses. Text stays verbatim, because citations quote it and
evaluation offsets index into it: text and markdown files read exactly as
``open(path, encoding="utf-8").read()`` (minus a BOM); PDF, HTML and DOCX text
only loses control characters, which break SQLite FTS and display.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import IngestError
from assistant.types import Page

__all__ = ["SUPPORTED_SUFFIXES", "DocumentInfo", "DocumentReader", "open_document"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

_KINDS = {".pdf": "pdf", ".txt": "text", ".md": "markdown", ".markdown": "markdown",
          ".html": "html", ".htm": "html", ".docx": "docx"}
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_KINDS)

# Below this many non-blank characters per page on average, a PDF is treated as
# scanned: a scan often carries a stamped Bates number or page header, so a
# test for "exactly no text" would let image-only documents through.
MIN_CHARS_PER_PAGE = 10

# Control characters except \t and \n (\r is normalised to \n before this runs),
# and the noncharacter U+FFFF.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\uffff]")
_PDF_FIX = "re-export or re-download it"
_NEEDS_PASSWORD = "encrypted PDF: needs a password; remove the protection and ingest again"


@dataclass(frozen=True)
class DocumentInfo:
    """What is known about a document before its pages are read.

    Attributes:
        kind: ``"pdf"``, ``"text"``, ``"markdown"``, ``"html"`` or ``"docx"``.
        page_count: number of PDF pages; ``None`` for unpaginated kinds.
        meta: non-empty metadata strings, e.g. ``title``, ``author``,
            ``subject``, ``created`` (ISO 8601 when it could be parsed).
    """

    kind: str
    page_count: int | None
    meta: dict[str, str] = field(default_factory=dict)


class DocumentReader(ABC):
    """An open document. Use it as a context manager, or call :meth:`close`.

    Not thread-safe: PDFium must not be used from two threads at once.
    """

    info: DocumentInfo

    def __init__(self, source: str, info: DocumentInfo) -> None:
        self.source = source
        self.info = info

    @abstractmethod
    def pages(self) -> Iterator[Page]:
        """Yield the pages in order, one at a time.

        PDF pages are numbered from 1; an unpaginated document yields exactly one
        ``Page(number=None, text=...)``.

        Raises:
            IngestError: a page could not be extracted, or (raised only after the
                last page of a PDF was yielded) the PDF has no text layer. A
                caller must consume the iterator to the end before it commits the
                document, and drop everything it derived from it on this error.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the file and parser resources. Safe to call twice."""

    def __enter__(self) -> DocumentReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_document(path: Path, source: str) -> DocumentReader:
    """Open ``path`` for reading, checking everything that can be checked early.

    Unpaginated kinds (text, markdown, HTML, DOCX) are parsed here, so their
    errors surface at once; PDFs are opened here and their pages are extracted
    lazily by :meth:`DocumentReader.pages`.

    Args:
        path: the file to open.
        source: the name to report in errors (e.g. the path relative to the
            ingested folder).

    Returns:
        A reader for the document; close it when done.

    Raises:
        IngestError: the file is missing, a directory, unreadable, empty, of an
            unsupported type, corrupt, encrypted, or not valid UTF-8.
    """
    path = Path(path)
    kind = _check_file(path, source)
    if kind == "pdf":
        return _open_pdf(path, source)
    if kind in ("text", "markdown"):
        text = _read_utf8(path, source)
        meta: dict[str, str] = {}
    elif kind == "html":
        text, meta = _read_html(path, source)
    else:
        text, meta = _read_docx(path, source)
    if not text.strip():
        raise IngestError(source, f"no text: the {kind} file holds only whitespace or markup; check its content")
    return _SinglePageReader(source, DocumentInfo(kind, None, meta), text)


def _check_file(path: Path, source: str) -> str:
    """Return the document kind, or raise for a file that cannot be read at all."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise IngestError(source, "file not found; check the path (it may have been moved or deleted)") from None
    except PermissionError:
        raise IngestError(source, "permission denied; make the file and its folders readable (chmod) or run as its owner") from None
    except OSError as e:
        raise IngestError(source, f"cannot read the file ({e.strerror}); check the path") from None
    if path.is_dir():
        raise IngestError(source, "is a directory, not a file; pass the files or ingest the folder itself")
    if not path.is_file():  # a FIFO or device would block or never end when read
        raise IngestError(source, "not a regular file (a pipe, socket or device); copy its content into a file")
    kind = _KINDS.get(path.suffix.lower())
    if kind is None:
        supported = " ".join(sorted(SUPPORTED_SUFFIXES))
        raise IngestError(source, f"unsupported file type {path.suffix or '(no extension)'!r}; supported: {supported}")
    try:
        with path.open("rb") as f:  # stat() succeeds on an unreadable file: open it
            f.read(1)
    except OSError as e:
        raise IngestError(source, f"cannot open the file ({e.strerror}); make it readable (chmod) or copy it") from None
    if st.st_size == 0:
        raise IngestError(source, "empty file (0 bytes); re-copy or re-export it")
    return kind


def _clean(text: str) -> str:
    """Normalise line ends and drop control characters that break FTS or display."""
    # PDFium returns some hyphens as the noncharacter U+FFFE (261 times in the SEC
    # filings: "anti\ufffedilutive", "forward\ufffelooking"); the page shows "-".
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufffe", "-")
    return _CONTROL.sub("", text)


class _SinglePageReader(DocumentReader):
    def __init__(self, source: str, info: DocumentInfo, text: str) -> None:
        super().__init__(source, info)
        self._text = text

    def pages(self) -> Iterator[Page]:
        yield Page(number=None, text=self._text)

    def close(self) -> None:
        pass  # the file was read and closed by open_document


# --- text and markdown -----------------------------------------------------


def _read_utf8(path: Path, source: str) -> str:
    data = path.read_bytes()
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise IngestError(source, "UTF-16 text, not UTF-8; re-save it as UTF-8")
    try:
        text = data[bom:].decode("utf-8")
    except UnicodeDecodeError as e:
        raise IngestError(source, f"not valid UTF-8 at byte {e.start + bom}; re-save it as UTF-8") from None
    if "\x00" in text:
        # Valid UTF-8 but with NULs: a binary file or BOM-less UTF-16 renamed .txt.
        raise IngestError(source, f"binary data (NUL byte at byte {data.index(0)}), not text; convert it to UTF-8 text")
    # Universal newlines, as open(..., encoding="utf-8").read() does: gold offsets
    # index into that string. Other control characters are kept for the same reason.
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --- HTML --------------------------------------------------------------------

_BLOCK_TAGS = ("address article aside blockquote body caption dd div dl dt fieldset figcaption figure footer form "
               "h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section table tbody thead tfoot tr ul").split()


def _read_html(path: Path, source: str) -> tuple[str, dict[str, str]]:
    from bs4 import BeautifulSoup

    data = path.read_bytes()
    if b"\x00" in data[:4096]:
        raise IngestError(source, "binary data, not HTML; check that the file really is a web page")
    # Bytes, not str: BeautifulSoup honours a BOM or <meta charset> itself.
    soup = BeautifulSoup(data, "html.parser")
    meta: dict[str, str] = {}
    if soup.title is not None and soup.title.string:
        meta["title"] = " ".join(soup.title.string.split())
    for tag in soup(["script", "style", "noscript", "template", "head", "svg"]):
        tag.decompose()
    # Block elements become line breaks; inline ones (<b>, <a>) stay within a line.
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for cell in soup.find_all(["td", "th"]):
        cell.insert_after(" ")  # keep "<td>A</td><td>B</td>" from reading as "AB"
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    # Inside a line HTML whitespace is insignificant: collapse it as a browser does.
    lines = (" ".join(line.split()) for line in _clean(soup.get_text()).split("\n"))
    return "\n".join(line for line in lines if line), _clean_meta(meta)


# --- DOCX --------------------------------------------------------------------


def _read_docx(path: Path, source: str) -> tuple[str, dict[str, str]]:
    import docx
    from docx.table import Table

    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        # An OLE container: a password-protected .docx or an old .doc renamed.
        raise IngestError(source, "encrypted DOCX or legacy .doc file; remove the password and save as .docx")
    try:
        document = docx.Document(str(path))
    except Exception as e:  # python-docx raises zipfile, KeyError, lxml and own errors
        raise IngestError(source, f"not a valid DOCX ({type(e).__name__}: {e}); re-save it from Word or LibreOffice") from None
    lines: list[str] = []
    for block in document.iter_inner_content():  # paragraphs and tables in body order
        if not isinstance(block, Table):
            lines.append(block.text)
            continue
        for row in block.rows:
            cells = row.cells  # a merged cell comes once per grid column it spans: keep it once
            lines.append("\t".join(c.text for i, c in enumerate(cells) if i == 0 or c._tc is not cells[i - 1]._tc))
    props = document.core_properties
    meta = {key: getattr(props, key) for key in ("title", "author", "subject", "keywords", "category")}
    meta.update({key: value.isoformat() for key in ("created", "modified") if (value := getattr(props, key))})
    return _clean("\n".join(lines)), _clean_meta(meta)


def _clean_meta(meta: dict[str, Any]) -> dict[str, str]:
    return {k: _clean(v).strip() for k, v in meta.items() if isinstance(v, str) and _clean(v).strip()}


# --- PDF ---------------------------------------------------------------------

_PDF_DATE = re.compile(r"D:(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(Z|[+-]\d{2}'?\d{2}'?)?")


def _pdf_date(value: str) -> str:
    """``D:20230425161530-04'00'`` -> ``2023-04-25T16:15:30-04:00``; anything else unchanged."""
    m = _PDF_DATE.match(value.strip())
    if not m:
        return value
    y, mo, d, h, mi, s, tz = m.groups()
    time = f"T{h}:{mi or '00'}:{s or '00'}" if h else ""
    zone = "" if not (h and tz) else "Z" if tz == "Z" else f"{tz[:3]}:{tz.replace(chr(39), '')[3:5]}"
    return f"{y}-{mo or '01'}-{d or '01'}{time}{zone}"


def _pdf_meta(raw: Mapping[str, Any]) -> dict[str, str]:
    names = {"Title": "title", "Author": "author", "Subject": "subject", "Keywords": "keywords",
             "Creator": "creator", "Producer": "producer", "CreationDate": "created", "ModDate": "modified"}
    meta = {names[key.lstrip("/")]: v for key, v in raw.items() if key.lstrip("/") in names}  # pypdf keys: "/Title"
    for key in ("created", "modified"):
        if isinstance(meta.get(key), str):
            meta[key] = _pdf_date(meta[key])
    return _clean_meta(meta)


def _check_pdf_bytes(path: Path, source: str) -> None:
    """Reject junk and truncated files, which PDFium may otherwise half-repair."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(1024)
        f.seek(max(0, size - 2048))
        tail = f.read()
    if b"%PDF-" not in head:
        raise IngestError(source, f"not a valid PDF (no %PDF header; starts with {head[:8]!r}); {_PDF_FIX}")
    if b"%%EOF" not in tail:
        raise IngestError(source, f"not a valid PDF (truncated: no %%EOF end marker); {_PDF_FIX}")


def _open_pdf(path: Path, source: str) -> DocumentReader:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    _check_pdf_bytes(path, source)
    try:
        pdf = pdfium.PdfDocument(str(path))  # no password given: PDFium tries the empty one
    except pdfium.PdfiumError as e:
        if getattr(e, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
            raise IngestError(source, _NEEDS_PASSWORD) from None
        # "Failed to load document (PDFium: Data format error)." -> "data format error"
        found = re.search(r"PDFium: ([^)]+)", str(e))
        reason = found.group(1).lower() if found else str(e)
        logger.info("PDFium cannot open %s (%s); trying pypdf", source, reason)
        return _open_pypdf(path, source, pdfium_error=reason)

    def page_text(index: int) -> str:
        # Close the text page and the page at once: PDFium keeps a loaded page and
        # its parsed content alive until closed, so a long PDF would keep growing.
        page = pdf[index]
        try:
            textpage = page.get_textpage()
            try:
                return str(textpage.get_text_range())
            finally:
                textpage.close()
        finally:
            page.close()

    try:
        info = DocumentInfo("pdf", len(pdf), _pdf_meta(pdf.get_metadata_dict(skip_empty=True)))
        return _PdfReader(source, info, page_text, pdf.close)
    except BaseException:
        pdf.close()
        raise


def _open_pypdf(path: Path, source: str, pdfium_error: str) -> DocumentReader:
    import pypdf

    reader = None
    try:
        reader = pypdf.PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError(source, _NEEDS_PASSWORD)
        raw: Mapping[str, Any] = reader.metadata or {}
        info = DocumentInfo("pdf", len(reader.pages), _pdf_meta({k: raw[k] for k in raw}))  # [] resolves refs
    except Exception as e:  # pypdf reads lazily: errors come from any of these lines
        if reader is not None:
            reader.close()
        if isinstance(e, IngestError):
            raise
        raise IngestError(source, f"not a valid PDF (PDFium: {pdfium_error}; pypdf: {e}); {_PDF_FIX}") from None
    pages = reader.pages
    return _PdfReader(source, info, lambda i: str(pages[i].extract_text()), reader.close)


class _PdfReader(DocumentReader):
    """Streams pages through ``page_text(index)``, whichever parser provides it."""

    def __init__(
        self, source: str, info: DocumentInfo, page_text: Callable[[int], str], close: Callable[[], None]
    ) -> None:
        super().__init__(source, info)
        if not info.page_count:
            close()
            raise IngestError(source, f"not a valid PDF (it has no pages); {_PDF_FIX}")
        self._page_text = page_text
        self._close = close

    def pages(self) -> Iterator[Page]:
        count = self.info.page_count or 0
        chars = 0  # only a running count: the page texts themselves are not kept
        for number in range(1, count + 1):
            try:
                text = _clean(self._page_text(number - 1))
            except Exception as e:  # parsers raise many types; name the page either way
                reason = f"page {number}: text extraction failed ({type(e).__name__}: {e}); {_PDF_FIX}"
                raise IngestError(self.source, reason) from None
            chars += sum(map(len, text.split()))  # non-blank characters, counted in C
            yield Page(number=number, text=text)
        # Decided after the last page, so a streaming caller needs no second pass;
        # the pipeline rolls the document back on this error like on any other.
        if chars < MIN_CHARS_PER_PAGE * count:
            reason = f"scanned / no text layer: {chars} characters in {count} pages; run OCR (e.g. ocrmypdf) first"
            raise IngestError(self.source, reason)

    def close(self) -> None:
        self._close()

"""PDF loading: open with PDFium, fall back to pypdf, stream the pages' text.

:func:`open_pdf` is what :func:`ingest.loaders.open_document` calls for ``.pdf``
files. Before any parser sees the file it must have a ``%PDF`` header and a
``%%EOF`` marker, and pass :func:`ingest.pdf_guard.check_pdf_streams` (the
decompression-bomb caps). Pages are extracted lazily, one at a time, and each
is bounded by ``MAX_PAGE_CHARS``; a document over ``MAX_PDF_PAGES`` is refused,
and one under ``MIN_CHARS_PER_PAGE`` non-blank characters per page is reported
as scanned after its last page.

PDFs are read with pypdfium2 (PDFium), which was 8-13x faster than pypdf 7.1 on
the shared corpora and opens two SEC filings on which pypdf raises
``LimitReachedError`` (``benchmarks/pdf_parsers.py``); pypdf is only a fallback
for files PDFium refuses. Page text only loses control characters, which break
SQLite FTS and display.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from assistant.errors import IngestError
from assistant.types import Page
from ingest.document import DocumentInfo, DocumentReader, brief, clean, clean_meta, quiet
from ingest.pdf_guard import check_pdf_streams

__all__ = ["MAX_PAGE_CHARS", "MAX_PDF_PAGES", "MIN_CHARS_PER_PAGE", "open_pdf"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

# Below this many non-blank characters per page on average, a PDF is treated as
# scanned: a scan often carries a stamped Bates number or page header, so a
# test for "exactly no text" would let image-only documents through.
MIN_CHARS_PER_PAGE = 10

# What one PDF may cost (how the limits were chosen: ingest.loaders); the
# decompression-bomb limits are in ingest.pdf_guard.
MAX_PDF_PAGES = 10_000
MAX_PAGE_CHARS = 200_000  # a dense real page holds < 20,000; the chunker slows down on huge pages

_PDF_FIX = "re-export or re-download it"
_NEEDS_PASSWORD = "encrypted PDF: needs a password; remove the protection and ingest again"

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
    return clean_meta(meta)


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


def open_pdf(path: Path, source: str) -> DocumentReader:
    """Check ``path`` and open it with PDFium, or with pypdf if PDFium refuses it."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    _check_pdf_bytes(path, source)
    check_pdf_streams(path, source)
    try:
        pdf = pdfium.PdfDocument(str(path))  # no password given: PDFium tries the empty one
    except pdfium.PdfiumError as e:
        if getattr(e, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
            raise IngestError(source, _NEEDS_PASSWORD) from None
        # "Failed to load document (PDFium: Data format error)." -> "data format error"
        found = re.search(r"PDFium: ([^)]+)", str(e))
        reason = found.group(1).lower() if found else " ".join(str(e).split())
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
        with quiet("pypdf"):
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
        raise IngestError(source, f"not a valid PDF (PDFium: {pdfium_error}; pypdf: {brief(e)}); "
                                  f"{_PDF_FIX}") from None
    pages = reader.pages

    def page_text(index: int) -> str:
        with quiet("pypdf"):
            return str(pages[index].extract_text())

    return _PdfReader(source, info, page_text, reader.close)


class _PdfReader(DocumentReader):
    """Streams pages through ``page_text(index)``, whichever parser provides it."""

    def __init__(
        self, source: str, info: DocumentInfo, page_text: Callable[[int], str], close: Callable[[], None]
    ) -> None:
        super().__init__(source, info)
        count = info.page_count or 0
        if not count or count > MAX_PDF_PAGES:
            close()
            if count:
                raise IngestError(source, f"{count:,} pages, over the {MAX_PDF_PAGES:,}-page limit; split it "
                                          "(e.g. qpdf --split-pages=1000 in.pdf part.pdf)")
            raise IngestError(source, f"not a valid PDF (it has no pages); {_PDF_FIX}")
        self._page_text = page_text
        self._close = close

    def pages(self) -> Iterator[Page]:
        count = self.info.page_count or 0
        chars = 0  # only a running count: the page texts themselves are not kept
        for number in range(1, count + 1):
            try:
                text = clean(self._page_text(number - 1))
            except Exception as e:  # parsers raise many types; name the page either way
                reason = f"page {number}: text extraction failed ({brief(e)}); {_PDF_FIX}"
                raise IngestError(self.source, reason) from None
            if len(text) > MAX_PAGE_CHARS:
                raise IngestError(self.source, f"page {number} holds {len(text):,} characters, more than a real page "
                                               f"can (over {MAX_PAGE_CHARS:,}); it is generated or damaged: {_PDF_FIX}")
            chars += sum(map(len, text.split()))  # non-blank characters, counted in C
            yield Page(number=number, text=text)
        # Decided after the last page, so a streaming caller needs no second pass;
        # the pipeline rolls the document back on this error like on any other.
        if chars < MIN_CHARS_PER_PAGE * count:
            reason = f"scanned / no text layer: {chars} characters in {count} pages; run OCR (e.g. ocrmypdf) first"
            raise IngestError(self.source, reason)

    def close(self) -> None:
        self._close()

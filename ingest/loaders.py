"""Open a document file and stream its text, page by page.

:func:`open_document` turns a path into a :class:`DocumentReader`. Every way a
file can be unusable becomes an :class:`~assistant.errors.IngestError` whose
``reason`` is one line saying what is wrong and how to fix it, so a batch ingest
reports the file and goes on. That includes hostile files: each kind has a limit
on what one file may cost in memory and time (the ``MAX_*`` constants), checked
before the expensive parse where that is possible.

This module holds the entry point and what every kind shares (the file checks:
missing, unreadable, wrong extension for its signature, over the size limit; the
error mapping of parser exceptions), plus the text, markdown and DOCX readers.
The other kinds live beside it: :mod:`ingest.pdf` (PDFium / pypdf, with the
decompression-bomb checks of :mod:`ingest.pdf_guard`) and :mod:`ingest.html_text`
(lxml); the reader types and text helpers are in :mod:`ingest.document`. Each
``MAX_*`` limit is defined in the module that enforces it.

Text stays verbatim, because citations quote it and evaluation offsets index
into it: text and markdown files read exactly as
``open(path, encoding="utf-8").read()`` (minus a BOM); PDF, HTML and DOCX text
only loses control characters, which break SQLite FTS and display.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

from assistant.errors import IngestError
from assistant.types import Page
from ingest.document import MB, DocumentInfo, DocumentReader, brief, clean, clean_meta
from ingest.html_text import read_html
from ingest.pdf import open_pdf

__all__ = ["SUPPORTED_SUFFIXES", "DocumentInfo", "DocumentReader", "open_document"]

_KINDS = {".pdf": "pdf", ".txt": "text", ".md": "markdown", ".markdown": "markdown",
          ".html": "html", ".htm": "html", ".docx": "docx"}
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_KINDS)
_NAMES = {"pdf": "PDF", "text": "text", "markdown": "markdown", "html": "HTML", "docx": "DOCX"}

# What one file may cost. Measured on this machine (tests/hardening): the ingest
# process itself sits at ~600 MB RSS with the embedder loaded, so each limit keeps
# the worst case of its kind within a few hundred MB more.
MAX_TEXT_MB = 50  # text, markdown and HTML are read whole (a 50 MB text is ~1 hour of embedding)
MAX_LINE_CHARS = 1_000_000  # ~500 pages on one line: longer is data (minified, base64, a dump), not prose
MAX_DOCX_UNPACKED_MB = 256  # python-docx holds every part of the zip in memory
# PDF limits are in ingest.pdf and ingest.pdf_guard, the HTML tag limit in ingest.html_text.

# File signatures of formats that are often given a wrong extension.
_MAGIC = ((b"%PDF-", "a PDF document"), (b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
          (b"GIF87a", "a GIF image"), (b"GIF89a", "a GIF image"),
          (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"),
          (b"PK\x03\x04", "a ZIP archive (a .zip, .xlsx, .pptx or .docx)"),
          (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Office file (.doc, .xls or .msg)"),
          (b"{\\rtf", "an RTF document"), (b"\x7fELF", "a program (ELF executable)"),
          (b"\x1f\x8b\x08", "a gzip archive"),
          (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"), (b"Rar!\x1a\x07", "a RAR archive"))


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
            unsupported type, corrupt, encrypted, not valid UTF-8, or over one
            of the ``MAX_*`` limits. No other exception escapes a parser.
    """
    path = Path(path)
    kind, size = _check_file(path, source)
    if kind != "docx" and kind != "pdf" and size > MAX_TEXT_MB * MB:
        raise IngestError(source, f"file is {size / MB:,.0f} MB, over the {MAX_TEXT_MB} MB limit for "
                                  f"{_NAMES[kind]} files; split it into smaller files")
    try:
        if kind == "pdf":
            return open_pdf(path, source)
        if kind in ("text", "markdown"):
            text = _read_utf8(path, source)
            meta: dict[str, str] = {}
        elif kind == "html":
            text, meta = read_html(path, source)
        else:
            text, meta = _read_docx(path, source)
    except IngestError:
        raise
    except Exception as e:  # noqa: BLE001 - a parser bug on a hostile file must stay one file's error
        reason = f"cannot read this {_NAMES[kind]} file ({brief(e)}); re-save or convert it"
        raise IngestError(source, reason) from None
    if not text.strip():
        raise IngestError(source, f"no text: the {kind} file holds only whitespace or markup; check its content")
    _check_lines(text, source)  # a PDF page is bounded by MAX_PAGE_CHARS instead
    return _SinglePageReader(source, DocumentInfo(kind, None, meta), text)


def _check_file(path: Path, source: str) -> tuple[str, int]:
    """Return the document kind and size, or raise for a file that cannot be read at all."""
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise IngestError(source, f"broken symbolic link (its target {os.readlink(path)!r} does not exist); "
                                      "fix or remove the link") from None
        raise IngestError(source, "file not found; check the path (it may have been moved or deleted)") from None
    except PermissionError:
        raise IngestError(source, "permission denied; make the file and its folders readable (chmod) or run as its owner") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            reason = "symbolic link loop (the link leads back to itself); fix or remove the link"
            raise IngestError(source, reason) from None
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
            head = f.read(16)
    except OSError as e:
        raise IngestError(source, f"cannot open the file ({e.strerror}); make it readable (chmod) or copy it") from None
    if st.st_size == 0:
        raise IngestError(source, "empty file (0 bytes); re-copy or re-export it")
    wrong = _wrong_type(head, kind)
    if wrong:
        raise IngestError(source, wrong)
    return kind, st.st_size


def _wrong_type(head: bytes, kind: str) -> str | None:
    """A message if the file's signature shows another format than its extension says."""
    found = next((name for magic, name in _MAGIC if head.startswith(magic)), None)
    if found is None or (kind == "pdf" and found == "a PDF document") or (kind == "docx" and found.startswith("a ZIP")):
        return None
    if kind == "docx" and found.startswith("a legacy Office"):
        return None  # reported by the DOCX reader: it may be an encrypted .docx
    return (f"this is {found}, not a {_NAMES[kind]} file: the extension is wrong; "
            "rename it to its real type or convert it")


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


def _check_lines(text: str, source: str) -> None:
    """Refuse a line over MAX_LINE_CHARS, without splitting the text into lines.

    Blocks are MAX_LINE_CHARS long, so only a line that crosses a block boundary
    can be too long: a running count since the last line break finds it.
    """
    run, line = 0, 1  # characters since the last line break; number of the line they belong to
    for start in range(0, len(text), MAX_LINE_CHARS):
        block = text[start:start + MAX_LINE_CHARS]
        first = block.find("\n")
        if run + (len(block) if first < 0 else first) > MAX_LINE_CHARS:
            raise IngestError(source, f"line {line:,} is over {MAX_LINE_CHARS:,} characters long: this is data "
                                      "(minified, base64 or a dump), not prose; add line breaks or convert it to text")
        if first >= 0:
            line += block.count("\n")
            run = len(block) - block.rfind("\n") - 1
        else:
            run += len(block)


# --- DOCX --------------------------------------------------------------------


def _read_docx(path: Path, source: str) -> tuple[str, dict[str, str]]:
    import docx
    from docx.table import Table

    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        # An OLE container: a password-protected .docx or an old .doc renamed.
        raise IngestError(source, "encrypted DOCX or legacy .doc file; remove the password and save as .docx")
    _check_zip(path, source)
    try:
        document = docx.Document(str(path))
    except Exception as e:  # python-docx raises zipfile, KeyError, lxml and own errors
        raise IngestError(source, f"not a valid DOCX ({brief(e)}); re-save it from Word or LibreOffice") from None
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
    return clean("\n".join(lines)), clean_meta(meta)


def _check_zip(path: Path, source: str) -> None:
    """Refuse a zip bomb from the sizes its directory declares, before anything is unpacked.

    zipfile never unpacks more than the declared size of a member (it fails the
    CRC check instead), so the declared sizes bound what python-docx can load.
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as e:
        raise IngestError(source, f"not a valid DOCX (not a readable zip archive: {brief(e, name=False)}); "
                                  "re-save it from Word or LibreOffice") from None
    if unpacked > MAX_DOCX_UNPACKED_MB * MB:
        raise IngestError(source, f"unpacks to {unpacked / MB:,.0f} MB, over the {MAX_DOCX_UNPACKED_MB} MB limit "
                                  "(a zip bomb, or very large embedded files); remove large embedded files or split it")

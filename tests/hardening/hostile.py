"""The hostile-input corpus of issue #7, generated: no binary fixture is committed.

:func:`build_corpus` writes 40+ files into a folder and returns what ingesting
each one must give: committed (with a question its passages answer), failed
(with the phrases of its one-line reason: the problem and the fix), or skipped.
Everything is made from raw bytes, zlib, pypdf (with cryptography for AES) and
python-docx, deterministically, in about a second: the "1 GB" bombs are built
from one compressed megabyte repeated (a Z_FULL_FLUSH resets the compressor, so
each flushed segment compresses to the same bytes), never by compressing a
gigabyte.
"""

from __future__ import annotations

import io
import os
import random
import secrets
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

GIB = 1 << 30
MIB = 1 << 20


@dataclass(frozen=True)
class Expect:
    """What ingesting one corpus entry must give.

    Attributes:
        source: the source name the pipeline reports (control characters and
            undecodable bytes of the file name escaped, as ``discover`` does).
        status: ``"added"``, ``"failed"`` or ``"skipped"``.
        says: phrases the one-line reason must contain: what is wrong, then what to do.
        question: for an added file, a question whose top passages come from it.
        unprivileged: the outcome holds only when the ingest cannot bypass file
            permissions (root can read a chmod 000 file).
    """

    source: str
    status: str
    says: tuple[str, ...] = ()
    question: str | None = None
    unprivileged: bool = False


# --- PDF from raw bytes ---------------------------------------------------------------

FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"


def _escape(text: str) -> bytes:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("latin-1")


def text_content(text: str) -> bytes:
    lines = b" T* ".join(b"(%s) Tj" % _escape(line) for line in text.split("\n"))
    return b"BT /F1 11 Tf 14 TL 72 740 Td " + lines + b" ET"


def stream(content: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d %s>>\nstream\n%s\nendstream" % (len(content), extra, content)


def pdf_bytes(objects: Sequence[bytes], trailer: bytes = b"") -> bytes:
    """A PDF of ``objects`` (object 1 is the catalog) with a correct xref table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
    out.write(b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, trailer, xref))
    return out.getvalue()


def pages_pdf(contents: Sequence[bytes], kids: Sequence[int] | None = None, extra: Sequence[bytes] = ()) -> bytes:
    """One page per content stream; ``kids`` lists page indexes (repeats allowed) for page-tree tricks.

    Objects: 1 catalog, 2 page tree, 3 font, then a page and its content per
    stream, then ``extra`` objects (the catalog points at the first as /Extra).
    """
    objects = [b"", b"", FONT]
    pages = []
    for content in contents:
        objects.append(stream(content))
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                       b"/Resources << /Font << /F1 3 0 R >> >> >>" % len(objects))
        pages.append(len(objects))
    order = [pages[i] for i in kids] if kids is not None else pages
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % p for p in order), len(order))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R %s>>" % (b"/Extra %d 0 R " % (len(objects) + 1) if extra else b"")
    return pdf_bytes(objects + list(extra))


def text_pdf(*pages: str) -> bytes:
    return pages_pdf([text_content(page) for page in pages])


def encrypt(pdf: bytes, user_password: str) -> bytes:
    """AES-256 via pypdf and cryptography; an empty user password opens without asking.

    pypdf draws its salts, keys, IVs and file ID from ``secrets.token_bytes``:
    seeded here for the duration, so the corpus is the same bytes on every run.
    """
    import pypdf

    real = secrets.token_bytes
    secrets.token_bytes = random.Random(f"hostile-corpus-{user_password}").randbytes  # type: ignore[assignment]
    try:
        writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(pdf)))
        writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="AES-256")
        out = io.BytesIO()
        writer.write(out)
    finally:
        secrets.token_bytes = real
    return out.getvalue()


# --- bombs --------------------------------------------------------------------------------


def repeated_deflate(unit: bytes, total: int) -> bytes:
    """A raw deflate stream of ``unit`` repeated to ``total`` bytes, in milliseconds.

    After Z_FULL_FLUSH the compressor forgets its history, so every flushed 1 MiB
    segment compresses to the same bytes: compress it once and repeat it.
    """
    segment = unit * (MIB // len(unit))
    count, rest = divmod(total, len(segment))
    first = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = first.compress(segment) + first.flush(zlib.Z_FULL_FLUSH)
    last = zlib.compressobj(9, zlib.DEFLATED, -15)
    return block * count + last.compress(segment[:rest]) + last.flush()


def _checksum(fn: Callable[[bytes, int], int], start: int, unit: bytes, total: int) -> int:
    segment = unit * (MIB // len(unit))
    count, rest = divmod(total, len(segment))
    value = start
    for _ in range(count):
        value = fn(segment, value)
    return fn(segment[:rest], value)


def repeated_zlib(unit: bytes, total: int) -> bytes:
    """The zlib (FlateDecode) form: header, raw deflate, Adler-32 of the whole output."""
    adler = _checksum(zlib.adler32, 1, unit, total)
    return b"\x78\xda" + repeated_deflate(unit, total) + struct.pack(">I", adler)


def bomb_pdf(content: bytes, filters: bytes) -> bytes:
    """Page 1 holds the bomb as its content; page 2 is ordinary text."""
    bomb = b"<< /Length %d /Filter %s >>\nstream\n%s\nendstream" % (len(content), filters, content)
    normal = text_content("This page is fine; the page before it is a decompression bomb.")
    page = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 3 0 R >> >> >>")
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [5 0 R 6 0 R] /Count 2 >>", FONT,
               bomb, page % 4, page % 7, stream(normal)]
    return pdf_bytes(objects)


def zip_bytes(members: Sequence[tuple[str, bytes]], bomb: tuple[str, bytes, int, int] | None = None) -> bytes:
    """A zip archive written by hand, so a member can carry ready-made deflate data.

    ``members`` are (name, content), deflated here; ``bomb`` is (name, raw
    deflate data, CRC-32, uncompressed size), stored as given.
    """
    entries = [(name, zlib.compressobj(9, zlib.DEFLATED, -15), data) for name, data in members]
    items = [(name, c.compress(data) + c.flush(), zlib.crc32(data), len(data)) for name, c, data in entries]
    if bomb:
        items.append(bomb)
    out = io.BytesIO()
    central = []
    for name, packed, crc, size in items:
        offset = out.tell()
        fields = struct.pack("<HHHHHIII", 20, 0, 8, 0, 0x21, crc, len(packed), size)  # 1980-01-01: deterministic
        out.write(b"PK\x03\x04" + fields + struct.pack("<HH", len(name), 0) + name.encode() + packed)
        central.append(b"PK\x01\x02" + struct.pack("<H", 20) + fields
                       + struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, 0, offset) + name.encode())
    start = out.tell()
    out.write(b"".join(central))
    out.write(b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, len(items), len(items), out.tell() - start, start, 0))
    return out.getvalue()


def docx_members(*paragraphs: str) -> list[tuple[str, bytes]]:
    """The parts of a DOCX made by python-docx, with fixed dates (re-zipped by :func:`zip_bytes`)."""
    import datetime
    import zipfile

    import docx

    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    document.core_properties.created = document.core_properties.modified = datetime.datetime(2024, 1, 1)
    out = io.BytesIO()
    document.save(out)
    with zipfile.ZipFile(out) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def docx_bytes(*paragraphs: str) -> bytes:
    return zip_bytes(docx_members(*paragraphs))


def docx_zip_bomb() -> bytes:
    """A real DOCX plus a 1 GiB member of zeros (1 MB compressed), as in a zip bomb."""
    crc = _checksum(zlib.crc32, 0, b"\0", GIB)
    bomb = ("word/media/padding.bin", repeated_deflate(b"\0", GIB), crc, GIB)
    return zip_bytes(docx_members("A memo with a bomb inside."), bomb=bomb)


def png_bytes() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixels = zlib.compress(b"".join(b"\0" + bytes(range(16)) for _ in range(16)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


# --- the corpus ----------------------------------------------------------------------------

PDF_FIX = "re-export or re-download it"


def build_corpus(root: Path) -> list[Expect]:
    """Write the corpus under ``root`` (which must exist and be empty); return the expectations."""
    expects: list[Expect] = []

    def put(name: str | bytes, data: bytes | str, expect: Expect) -> Path:
        path = Path(os.fsdecode(os.path.join(os.fsencode(root), os.fsencode(name))))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        expects.append(expect)
        return path

    _good(put)
    _pdfs(put)
    _bombs(put)
    _wrong_types(put)
    _texts(put)
    _file_system(put, root, expects)
    return expects


Put = Callable[[str | bytes, bytes | str, Expect], Path]


def added(source: str, question: str) -> Expect:
    return Expect(source, "added", question=question)


def failed(source: str, *says: str, unprivileged: bool = False) -> Expect:
    return Expect(source, "failed", says, unprivileged=unprivileged)


def _good(put: Put) -> None:
    put("good/notes.txt", "Tapir census\n\nThe quarterly tapir census in the Yungas forest counted forty-two "
                          "lowland tapirs near the river crossing.\n",
        added("good/notes.txt", "How many lowland tapirs did the census count?"))
    put("good/guide.md", "# Sourdough guide\n\nFeed the sourdough starter with rye flour every twelve hours "
                         "and keep it at twenty-four degrees.\n",
        added("good/guide.md", "How often should the sourdough starter be fed?"))
    put("good/report.pdf", text_pdf("Lighthouse log\nThe keeper logged a violent storm on the ninth of March\n"
                                    "and repaired the Fresnel lens of the lighthouse afterwards."),
        added("good/report.pdf", "What did the lighthouse keeper repair after the storm?"))
    put("good/page.html", "<html><head><title>Volcanoes</title></head><body><h1>Volcanology</h1><p>Basaltic "
                          "lava flows from the shield volcano cooled slowly into hexagonal columnar joints.</p></body>"
                          "</html>",
        added("good/page.html", "How did the basaltic lava from the shield volcano cool?"))
    put("good/memo.docx", docx_bytes("Chess opening memo", "The Najdorf variation of the Sicilian Defence begins "
                                                           "with the quiet pawn move a6 on move five."),
        added("good/memo.docx", "Which pawn move begins the Najdorf variation of the Sicilian?"))
    put(b"names/new\nline.txt", "The kite festival was held on the windy beach at Lisbon every August.\n",
        added("names/new\\nline.txt", "Where was the kite festival held?"))
    long_name = "long_" + "cartography_" * 19 + "end.txt"  # 240 bytes: near the 255-byte limit of ext4
    put(f"names/{long_name}", "The atlas maps the medieval salt trade routes between Lüneburg and Lübeck.\n",
        added(f"names/{long_name}", "Which medieval trade routes does the atlas map?"))
    put(b"names/caf\xe9_latin1_name.txt", "Espresso extraction takes about twenty-five seconds at nine bar.\n",
        added("names/caf\\xe9_latin1_name.txt", "How long does espresso extraction take?"))


def _pdfs(put: Put) -> None:
    contract = text_pdf("Beekeeping record\nThe hive produced thirty kilograms of clover honey this summer.")
    put("pdf/encrypted_empty_password.pdf", encrypt(contract, ""),
        added("pdf/encrypted_empty_password.pdf", "How much clover honey did the hive produce?"))
    put("pdf/encrypted_with_password.pdf", encrypt(contract, "s3cret"),
        failed("pdf/encrypted_with_password.pdf", "encrypted PDF: needs a password", "remove the protection"))
    glacier = text_pdf("Glacier survey\nThe glacier retreated eighty metres since the last survey.")
    table_at = glacier.rindex(b"\nxref\n") + 1
    put("pdf/garbage_xref.pdf", glacier[:table_at] + b"xref\n0 9\n" + b"9999999999 77777 q \n" * 9
        + glacier[glacier.index(b"trailer", table_at):],
        added("pdf/garbage_xref.pdf", "How far did the glacier retreat?"))  # PDFium rebuilds the table
    put("pdf/truncated.pdf", contract[: len(contract) // 2],
        failed("pdf/truncated.pdf", "truncated", PDF_FIX))
    depth = 100_000
    nested = [b"[" * depth + b"1" + b"]" * depth, b"<< /A " * depth + b"1" + b" >>" * depth]
    content = text_content("Deep nesting survives\nThe origami crane was folded from one square sheet of washi.")
    put("pdf/deep_nesting.pdf", pages_pdf([content + b" " + b"[" * depth + b"]" * depth], extra=nested),
        added("pdf/deep_nesting.pdf", "What was the origami crane folded from?"))
    # 5,000 pages in 0.6 MB: pages share three content streams through the page tree. Every
    # 100th page is a full ledger page, the rest are blank (as between chapters), so
    # all 5,000 pages are extracted but only ~150 chunks need embedding.
    ledger = text_content("\n".join(f"Ledger line {n}: paid the archive binder for shelf {n} and box {n + 7}."
                                     for n in range(30)))
    last = text_content("The final archive page records the saxophone repair invoice.")
    kids = [2 if n == 4999 else 1 if n % 100 == 0 else 0 for n in range(5000)]
    put("pdf/pages_5000.pdf", pages_pdf([b"", ledger, last], kids=kids),
        added("pdf/pages_5000.pdf", "What does the final archive page record about the saxophone?"))
    put("pdf/page_tree_bomb.pdf", pages_pdf([ledger], kids=[0] * 20_000),
        failed("pdf/page_tree_bomb.pdf", "20,000 pages, over the 10,000-page limit", "split it"))
    dense = b"BT /F1 1 Tf " + b"(BOOM BOOM BOOM BOOM) Tj " * (3 * MIB // 25) + b"ET"  # 3 MB, stored as is
    put("pdf/dense_text_content.pdf", pages_pdf([dense]),
        failed("pdf/dense_text_content.pdf", "page content holds over 2 MB", "export its text"))
    long_strings = b"BT /F1 1 Tf " + (b"(" + b"W" * 32_000 + b") Tj ") * 8 + b"ET"  # PDFium caps a string at 32,767
    put("pdf/huge_page_text.pdf", pages_pdf([long_strings]),
        failed("pdf/huge_page_text.pdf", "page 1 holds 256,0", "characters, more than a real page", PDF_FIX))


def _bombs(put: Put) -> None:
    zeros = bomb_pdf(repeated_zlib(b"\0", GIB), b"/FlateDecode")
    put("bombs/flate_zeros_1gb.pdf", zeros,
        failed("bombs/flate_zeros_1gb.pdf", "decompression bomb", "get it again from a trusted source"))
    text = repeated_zlib(b"(BOOM) Tj ", GIB - GIB % 10)
    put("bombs/double_flate_text_1gb.pdf", bomb_pdf(zlib.compress(text, 9), b"[/FlateDecode /FlateDecode]"),
        failed("bombs/double_flate_text_1gb.pdf", "decompression bomb", "get it again from a trusted source"))
    put("bombs/encrypted_zeros_1gb.pdf", encrypt(zeros, ""),
        failed("bombs/encrypted_zeros_1gb.pdf", "decompression bomb", "get it again from a trusted source"))
    put("bombs/zip_bomb.docx", docx_zip_bomb(),
        failed("bombs/zip_bomb.docx", "unpacks to 1,02", "MB, over the 256 MB limit", "remove large embedded files"))
    put("bombs/html_many_tags.html", "<p>" * 1_000_001,
        failed("bombs/html_many_tags.html", "1,000,001 tags, over the 1,000,000 limit", "save it as text"))
    put("bombs/deep_nesting.html", "<html><body>" + "<div>" * 100_000 + "<p>The scarf pattern uses a seed stitch "
                                   "in merino wool.</p>" + "</div>" * 100_000 + "</body></html>",
        added("bombs/deep_nesting.html", "Which stitch does the scarf knitting pattern use?"))


def _wrong_types(put: Put) -> None:
    fix = "rename it to its real type or convert it"
    put("wrong/image.pdf", png_bytes(), failed("wrong/image.pdf", "this is a PNG image, not a PDF file", fix))
    put("wrong/archive.pdf", zip_bytes([("readme.txt", b"not a pdf")]),
        failed("wrong/archive.pdf", "this is a ZIP archive", fix))
    put("wrong/report.txt", text_pdf("A PDF named .txt"),
        failed("wrong/report.txt", "this is a PDF document, not a text file", fix))
    put("wrong/program.txt", b"\x7fELF\x02\x01\x01" + bytes(57) + bytes(range(256)) * 4,
        failed("wrong/program.txt", "this is a program (ELF executable)", fix))
    put("wrong/memo.docx", text_pdf("A PDF named .docx"),
        failed("wrong/memo.docx", "this is a PDF document, not a DOCX file", fix))
    put("wrong/corrupt.docx", docx_bytes("Half a memo.")[:700],
        failed("wrong/corrupt.docx", "not a valid DOCX (not a readable zip archive", "re-save it from Word"))


def _texts(put: Put) -> None:
    put("text/empty.txt", b"", failed("text/empty.txt", "empty file (0 bytes)", "re-copy or re-export it"))
    put("text/empty.pdf", b"", failed("text/empty.pdf", "empty file (0 bytes)", "re-copy or re-export it"))
    put("text/latin1.txt", "Vertrag über die Lieferung von Käse".encode("latin-1"),
        failed("text/latin1.txt", "not valid UTF-8 at byte 8", "re-save it as UTF-8"))
    put("text/nul_bytes.txt", b"Text with a NUL\x00 inside it, as a binary dump has.",
        failed("text/nul_bytes.txt", "binary data (NUL byte at byte 15)", "convert it to UTF-8 text"))
    put("text/single_line_50mb.txt", b"lorem ipsum dolor sit amet " * (50 * MIB // 27) + b"x" * (50 * MIB % 27),
        failed("text/single_line_50mb.txt", "line 1 is over 1,000,000 characters long", "add line breaks"))
    huge = put("text/huge_300mb.txt", "The start of a huge log file.\n",
               failed("text/huge_300mb.txt", "file is 300 MB, over the 50 MB limit for text files", "split it"))
    with huge.open("r+b") as fh:
        fh.truncate(300 * MIB)  # sparse: costs no disk, reads as zeros
    put("text/html_with_nul_and_bad_bytes.html",
        b"<html><body><p>The peregrine falcon was trained to return to the falconer's glove.</p>"
        + b"<!-- padding -->" * 300 + b"\x00\xff\xfe damaged \x00 bytes <p>More text after the damage.</p>"
        + b"</body></html>",
        added("text/html_with_nul_and_bad_bytes.html", "What was the peregrine falcon trained to do?"))


def _file_system(put: Put, root: Path, expects: list[Expect]) -> None:
    links = root / "links"
    links.mkdir()
    os.symlink("loop_b.txt", links / "loop_a.txt")
    os.symlink("loop_a.txt", links / "loop_b.txt")
    os.symlink("missing.txt", links / "dangling.txt")
    (links / "folder").mkdir()
    os.symlink("..", links / "folder" / "loop")
    expects += [failed("links/loop_a.txt", "symbolic link loop", "fix or remove the link"),
                failed("links/loop_b.txt", "symbolic link loop", "fix or remove the link"),
                failed("links/dangling.txt", "broken symbolic link", "fix or remove the link"),
                Expect("links/folder/loop", "skipped", ("symbolic link to a folder is not followed",
                                                        "ingest the folder it points to"))]
    os.mkfifo(root / "links" / "pipe.txt")
    expects.append(failed("links/pipe.txt", "not a regular file", "copy its content into a file"))
    secret = put("links/unreadable.txt", "Classified.", failed("links/unreadable.txt", "Permission denied",
                                                                "check its permissions", unprivileged=True))
    secret.chmod(0)

"""Decompression-bomb checks on a raw PDF, run before PDFium opens it.

PDFium decodes a stream whole before it parses it, so a small file can cost
gigabytes. :func:`check_pdf_streams` scans the raw bytes for ``stream`` keywords
(no parser needed), inflates each Flate stream PDFium may decode for text in
1 MB slices without keeping them, and refuses the file once a stream or the
whole document passes its cap: ``MAX_PDF_CONTENT_MB`` for streams parsed into
page objects, ``MAX_PDF_STREAM_MB`` for streams decoded whole (fonts, object
streams), ``MAX_PDF_DECODED_MB`` for all streams together. An encrypted file's
streams are read through pypdf, which decrypts them.
"""

from __future__ import annotations

import mmap
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from assistant.errors import IngestError
from ingest.document import MB, quiet

__all__ = ["MAX_PDF_CONTENT_MB", "MAX_PDF_DECODED_MB", "MAX_PDF_STREAM_MB", "check_pdf_streams"]

MAX_PDF_STREAM_MB = 64  # any stream PDFium may decode (fonts, object streams): more is a decompression bomb
# PDFium parses a page's content stream into objects and needs ~200 bytes per
# shown character for its text page: 2 MB of dense text commands took 340 MB,
# 8 MB took 1.5 GB. Real pages in the shared corpora stay under 0.3 MB; a drawing or
# map page over the limit is refused (its text is better exported separately).
MAX_PDF_CONTENT_MB = 2
MAX_PDF_DECODED_MB = 1024  # all streams of one PDF together: bounds the check's own time (~2 s)

_STREAM = re.compile(rb"(?<!end)stream\r?\n")
_OBJ = re.compile(rb"\d+\s+\d+\s+obj\b")
_KEY = re.compile(rb"/([A-Za-z0-9]+)\s*(?:/([A-Za-z0-9]+))?")
_FILTER = re.compile(rb"/Filter\s*(\[[^\]]*\]|/[A-Za-z0-9]+)")
_ENCRYPT = re.compile(rb"/Encrypt\b")
_FLATE_NAMES = ("FlateDecode", "Fl")


def check_pdf_streams(path: Path, source: str) -> None:
    """Refuse a decompression bomb before PDFium inflates it whole into memory.

    PDFium decodes a stream whole before it parses it: a 1 MB file holding one
    1 GB content stream of zeros took 2 GB and 8 s to open a page. Here every Flate
    stream PDFium may decode for text is inflated in 1 MB slices, never kept, and
    only up to its limit. The raw file is scanned for ``stream`` keywords, so no
    parser is needed; an encrypted file's streams are read through pypdf, which
    decrypts them. Other filters (LZW, RunLength) are not checked.
    """
    budget = _StreamBudget(source)
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if _ENCRYPT.search(data) and _check_encrypted_streams(path, budget):
            return
        lengths: dict[bytes, int] = {}
        for m in _STREAM.finditer(data):
            head = data[max(0, m.start() - 4096):m.start()]
            starts = list(_OBJ.finditer(head))
            stream_dict = head[starts[-1].end():] if starts else head
            keys = {k.decode(): v.decode() for k, v in _KEY.findall(stream_dict)}
            found = _FILTER.search(stream_dict)
            layers = _flate_layers(found.group(1)) if found else 0
            if layers:  # inflated to the end of its zlib data, wherever an "endstream" may appear
                budget.add(keys, _inflated_sizes(data, m.end(), len(data), layers))
            elif not found:  # stored as is: its length is its size
                budget.add(keys, [_raw_length(data, m.end(), stream_dict, lengths)])


def _flate_layers(filters: bytes) -> int:
    """How many Flate filters come first in the stream's filter chain."""
    layers = 0
    for name in re.findall(rb"/([A-Za-z0-9]+)", filters):
        if name.decode() not in _FLATE_NAMES:
            break
        layers += 1
    return layers


def _raw_length(data: Any, start: int, stream_dict: bytes, lengths: dict[bytes, int]) -> int:
    """The larger of the declared /Length (direct or indirect) and the distance to ``endstream``."""
    end = data.find(b"endstream", start)
    size = (len(data) if end < 0 else end) - start
    declared = re.search(rb"/Length\s+(\d+)(\s+\d+\s+R)?", stream_dict)
    if declared and declared.group(2):
        if not lengths:  # one pass over the file finds every "N G obj 1234 endobj"
            lengths.update((num, int(n)) for num, n in re.findall(rb"(?<!\d)(\d+)\s+\d+\s+obj\s*(\d+)\s*endobj", data))
            lengths.setdefault(b"", 0)  # marks the pass as done
        size = max(size, lengths.get(declared.group(1), 0))
    elif declared:
        size = max(size, int(declared.group(1)))
    return min(size, len(data) - start)  # PDFium cannot read more than the file holds


def _inflated_sizes(data: Any, start: int, end: int, layers: int) -> Iterator[int]:
    """Sizes of the decoded slices of ``data[start:end]`` through ``layers`` Flate filters."""
    step = 1 << 16  # most streams are small: do not copy a megabyte of the file for each
    pieces: Iterator[bytes] = (data[pos:min(pos + step, end)] for pos in range(start, end, step))
    for _ in range(layers):
        pieces = _inflate(zlib.decompressobj(), pieces)
    return map(len, pieces)


def _inflate(decoder: Any, pieces: Iterable[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        while piece and not decoder.eof:
            yield decoder.decompress(piece, MB)  # at most 1 MB at a time: a bomb never sits in memory
            piece = decoder.unconsumed_tail
        if decoder.eof:
            return


def _check_encrypted_streams(path: Path, budget: _StreamBudget) -> bool:
    """Check the decrypted streams; False if pypdf cannot decrypt them with the empty password."""
    import pypdf
    from pypdf.generic import ArrayObject, IndirectObject, NameObject, StreamObject

    with quiet("pypdf"):
        try:
            reader = pypdf.PdfReader(str(path))
            if not reader.is_encrypted or not reader.decrypt(""):
                return False  # a user password: PDFium will say so
            refs = [(num, gen) for gen, nums in reader.xref.items() for num in nums]
        except Exception:  # noqa: BLE001 - pypdf cannot read it: the raw scan and PDFium decide
            return False
        for num, gen in refs:
            try:
                obj = reader.get_object(IndirectObject(num, gen, reader))
                filters = obj.get("/Filter") if isinstance(obj, StreamObject) else None
            except Exception:  # noqa: BLE001 - a damaged object: PDFium will report or repair it
                continue
            names = [filters] if isinstance(filters, NameObject) else []
            names = list(filters) if isinstance(filters, ArrayObject) else names
            if not isinstance(obj, StreamObject) or any(str(n).lstrip("/") not in _FLATE_NAMES for n in names):
                continue  # not a stream, or other filters: not checked
            keys = {str(k).lstrip("/"): str(v).lstrip("/") if isinstance(v, NameObject) else "" for k, v in obj.items()}
            raw = obj._data  # decrypted, still compressed: get_data() would inflate it whole, and keep it
            if isinstance(raw, bytes):
                budget.add(keys, _inflated_sizes(raw, 0, len(raw), len(names)) if names else [len(raw)])
    return True


class _StreamBudget:
    """Adds up what a PDF's streams inflate to; raises at the first limit passed."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.total = 0

    def add(self, keys: Mapping[str, str], sizes: Iterable[int]) -> None:
        role = _stream_role(keys)
        if role is None:
            return
        limit = (MAX_PDF_CONTENT_MB if role == "content" else MAX_PDF_STREAM_MB) * MB
        size = 0
        try:
            for n in sizes:
                size += n
                if size > limit or self.total + size > MAX_PDF_DECODED_MB * MB:
                    break
        except zlib.error:
            pass  # damaged data: PDFium reports or skips it
        self.total += size
        if size > limit and role == "content":
            raise IngestError(self.source, f"page content holds over {MAX_PDF_CONTENT_MB} MB of drawing and text "
                                           "commands (a decompression bomb, or a huge drawing), too much to extract "
                                           "text from safely; get it again from a trusted source, or export its text")
        if size > limit:
            raise IngestError(self.source, "decompression bomb: a compressed part inflates to over "
                                           f"{MAX_PDF_STREAM_MB} MB; get it again from a trusted source")
        if self.total > MAX_PDF_DECODED_MB * MB:
            raise IngestError(self.source, f"its contents come to over {MAX_PDF_DECODED_MB:,} MB once decompressed; "
                                           "split it or re-export it")


def _stream_role(keys: Mapping[str, str]) -> str | None:
    """How PDFium uses a stream to extract text.

    ``"content"``: parsed into page objects (page contents, forms, Type 3 glyphs);
    ``"data"``: decoded whole (fonts, object streams, colour profiles); None:
    never decoded for text (images, attachments, XMP metadata).
    """
    subtype, kind = keys.get("Subtype"), keys.get("Type")
    if subtype == "Image" or kind in ("EmbeddedFile", "Metadata"):
        return None
    if subtype == "Form" or not keys.keys() & {"Type", "Subtype", "Length1", "Length2", "Length3", "N"}:
        return "content"
    return "data"

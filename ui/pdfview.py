"""Show a cited passage where it is: a rendered PDF page with the quote highlighted.

PDFs are drawn with pypdfium2 (the parser ingest uses, so the text layer is the
same) and the quote's character boxes are painted over with PIL. Documents
without a kept PDF fall back to the stored page text with the quote marked.
"""

from __future__ import annotations

import html
import io
import re
from dataclasses import dataclass
from pathlib import Path

HIGHLIGHT = (255, 214, 0, 110)  # translucent yellow
OUTLINE = (230, 120, 0, 255)
DEFAULT_SCALE = 1.5
_PROBE = 48  # characters matched at each end when the whole quote is not found verbatim


@dataclass(frozen=True)
class PageImage:
    """A rendered page: PNG bytes and whether the quote was located on it."""

    png: bytes
    found: bool
    width: int
    height: int


def _fold(ch: str) -> str:
    low = ch.lower()
    if ch in "\ufffe\u2010\u2011\u2012\u2013\u2014":
        return "-"
    if ch in "\u2018\u2019":
        return "'"
    if ch in "\u201c\u201d":
        return '"'
    return low if len(low) == 1 else ch


def normalize(text: str) -> tuple[str, list[int]]:
    """Whitespace-collapsed, case-folded text and, per output char, its index in ``text``."""
    out: list[str] = []
    where: list[int] = []
    space = False
    for i, ch in enumerate(text):
        if ch.isspace():
            space = bool(out)
            continue
        if space:
            out.append(" ")
            where.append(i - 1)
            space = False
        out.append(_fold(ch))
        where.append(i)
    return "".join(out), where


def locate(haystack: str, quote: str) -> tuple[int, int] | None:
    """Where ``quote`` is in ``haystack`` (start, end-exclusive), ignoring spacing and case.

    Falls back to matching the quote's first and last few dozen characters, which
    survives a changed character in the middle (ligatures, OCR noise).
    """
    norm_h, where = normalize(haystack)
    norm_q, _ = normalize(quote)
    if not norm_q or not norm_h:
        return None
    at = norm_h.find(norm_q)
    if at >= 0:
        return where[at], where[at + len(norm_q) - 1] + 1
    if len(norm_q) < 2 * _PROBE:
        return None
    head = norm_h.find(norm_q[:_PROBE])
    if head < 0:
        return None
    tail = norm_h.find(norm_q[-_PROBE:], head)
    if tail < 0 or tail - head > 2 * len(norm_q):
        return None
    return where[head], where[tail + _PROBE - 1] + 1


def _quote_boxes(page, quote: str, scale: float, height: float) -> list[tuple[float, float, float, float]]:
    """Pixel boxes (left, top, right, bottom) of the quote's text lines on a page."""
    textpage = page.get_textpage()
    try:
        text = textpage.get_text_range()
        span = locate(text, quote)
        if span is None:
            return []
        start, end = span
        boxes = []
        for i in range(textpage.count_rects(start, end - start)):
            left, bottom, right, top = textpage.get_rect(i)
            boxes.append((left * scale, (height - top) * scale, right * scale, (height - bottom) * scale))
        return boxes
    finally:
        textpage.close()


def render_page(path: Path, page_number: int, quote: str | None = None, *, scale: float = DEFAULT_SCALE) -> PageImage:
    """Render page ``page_number`` (1-based) of a PDF, the quote highlighted if found.

    Raises:
        ValueError: the page does not exist. pypdfium2.PdfiumError: unreadable PDF.
    """
    import pypdfium2 as pdfium  # type: ignore[import-untyped]
    from PIL import Image, ImageDraw

    pdf = pdfium.PdfDocument(str(path))
    try:
        if not 1 <= page_number <= len(pdf):
            raise ValueError(f"{path.name} has {len(pdf)} pages, not page {page_number}")
        page = pdf[page_number - 1]
        try:
            _, height = page.get_size()
            image = page.render(scale=scale).to_pil().convert("RGBA")
            boxes = _quote_boxes(page, quote, scale, height) if quote and page.get_rotation() == 0 else []
        finally:
            page.close()
    finally:
        pdf.close()
    if boxes:
        overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        for left, top, right, bottom in boxes:
            draw.rectangle((left - 2, top - 2, right + 2, bottom + 2), fill=HIGHLIGHT, outline=OUTLINE, width=1)
        image = Image.alpha_composite(image, overlay)
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG", optimize=True)
    return PageImage(buf.getvalue(), bool(boxes), image.width, image.height)


def highlight_html(text: str, start: int, end: int, quote: str = "") -> str:
    """The page text as escaped HTML, the quote wrapped in ``<mark>``.

    Uses ``start``/``end`` when they hold the quote, else searches for it.
    """
    span: tuple[int, int] | None = None
    if 0 <= start < end <= len(text) and (not quote or normalize(text[start:end])[0] == normalize(quote)[0]):
        span = (start, end)
    elif quote:
        span = locate(text, quote)
    if span is None:
        body = html.escape(text)
    else:
        s, e = span
        body = (html.escape(text[:s]) + '<mark style="background:#ffe066;padding:0 2px">'
                + html.escape(text[s:e]) + "</mark>" + html.escape(text[e:]))
    body = re.sub(r"\n{3,}", "\n\n", body)
    return ('<div class="slm-page-text" style="white-space:pre-wrap;font-family:serif;font-size:0.9rem;'
            'max-height:28rem;overflow:auto;border:1px solid #ddd;padding:0.75rem;border-radius:0.4rem">'
            f"{body}</div>")

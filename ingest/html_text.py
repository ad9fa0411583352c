"""HTML pages to text: decode the bytes, parse with lxml, walk the tree linearly.

:func:`read_html` is what :func:`ingest.loaders.open_document` calls for
``.html`` and ``.htm`` files. It refuses a page over ``MAX_HTML_TAGS`` before
parsing, decodes the bytes itself (BeautifulSoup's detection, but never a lossy
guess handed to lxml), parses with the lxml tree builder (linear, unlike
Python 3.11's ``html.parser``) and extracts the visible text with an explicit
stack, so neither deep nesting nor a long page turns quadratic.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from assistant.errors import IngestError
from ingest.document import clean, clean_meta, quiet

__all__ = ["MAX_HTML_TAGS", "read_html"]

MAX_HTML_TAGS = 1_000_000  # BeautifulSoup holds ~450 bytes per element: 1M tags ~ 450 MB

_BLOCK_TAGS = frozenset(
    "address article aside blockquote body caption dd div dl dt fieldset figcaption figure footer form "
    "h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section table tbody thead tfoot tr ul".split())
_HIDDEN_TAGS = frozenset({"script", "style", "noscript", "template", "head", "svg"})


def read_html(path: Path, source: str) -> tuple[str, dict[str, str]]:
    """The page's visible text, one line per block element, and its ``title`` as metadata."""
    from bs4 import BeautifulSoup
    from bs4.dammit import UnicodeDammit

    data = path.read_bytes()
    if b"\x00" in data[:4096]:
        raise IngestError(source, "binary data, not HTML; check that the file really is a web page")
    tags = data.count(b"<")  # an upper bound on the elements BeautifulSoup would build
    if tags > MAX_HTML_TAGS:
        raise IngestError(source, f"{tags:,} tags, over the {MAX_HTML_TAGS:,} limit for one page; "
                                  "split the page or save it as text")
    # BeautifulSoup's own detection (BOM, <meta charset>, a guess, UTF-8, cp1252), but
    # decoded here: handed bytes and a wrong guess (cp932 for a stray \xff), lxml
    # drops the whole page. lxml, not html.parser: Python 3.11's html.parser is
    # quadratic on unclosed tags ("<a<a<a...": 40 KB took 2 s); lxml is linear and
    # keeps 100,000-deep nesting.
    with quiet("bs4"):
        markup = UnicodeDammit(data, is_html=True).unicode_markup
    if markup is None:
        raise IngestError(source, "cannot decode the page's text; re-save it as UTF-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "looks like XML / a URL" warnings would print on the CLI's stderr
        soup = BeautifulSoup(markup, "lxml")
    meta: dict[str, str] = {}
    if soup.title is not None and soup.title.string:
        meta["title"] = " ".join(soup.title.string.split())
    # Inside a line HTML whitespace is insignificant: collapse it as a browser does.
    lines = (" ".join(line.split()) for line in clean(_html_text(soup)).split("\n"))
    return "\n".join(line for line in lines if line), clean_meta(meta)


def _html_text(root: Any) -> str:
    """The visible text: block elements become line breaks, inline ones stay within a line.

    An explicit stack instead of recursion or tree edits (``insert_after`` walks
    the whole subtree each time): linear in the size of the page at any depth.
    """
    from bs4 import CData, NavigableString, Tag

    parts: list[str] = []
    todo: list[Any] = [root]
    while todo:
        node = todo.pop()
        if type(node) is str:  # a separator queued to follow an element
            parts.append(node)
        elif isinstance(node, Tag):
            if node.name in _HIDDEN_TAGS:
                continue
            if node.name == "br":
                parts.append("\n")
                continue
            if node.name in _BLOCK_TAGS:
                parts.append("\n")
                todo.append("\n")
            elif node.name in ("td", "th"):
                todo.append(" ")  # keep "<td>A</td><td>B</td>" from reading as "AB"
            todo.extend(reversed(node.contents))
        elif type(node) in (NavigableString, CData):  # not comments, doctypes, processing instructions
            parts.append(node)
    return "".join(parts)

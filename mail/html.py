"""HTML mail → readable text for the ticket, and sanitized HTML (nh3) for the console."""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

import nh3

MAX_HTML_CHARS = 1_000_000
MAX_HTML_DEPTH = 400
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]{0,15})[^>]{0,2000}?(/?)>")
_VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    ]
)
_BLOCK = frozenset(
    [
        "p",
        "div",
        "br",
        "tr",
        "table",
        "ul",
        "ol",
        "li",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "pre",
        "hr",
        "section",
        "article",
        "header",
        "footer",
        "address",
        "dd",
        "dt",
        "dl",
    ]
)
_SKIP = frozenset({"script", "style", "head", "title", "template", "noscript"})
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height"}}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0
        self.quote_depth = 0
        self.href: str | None = None
        self.link_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip_depth += 1
        elif tag in _BLOCK:
            self.parts.append("\n")
            if tag == "li":
                self.parts.append("- ")
            if tag == "blockquote":
                self.quote_depth += 1
        elif tag in ("td", "th"):
            self.parts.append("\t")
        elif tag == "a":
            self.href = dict(attrs).get("href")
            self.link_text = []
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.parts.append(f"[{alt}]")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag in _BLOCK:
            self.parts.append("\n")
            if tag == "blockquote":
                self.quote_depth = max(0, self.quote_depth - 1)
        elif tag == "a" and self.href:
            shown = "".join(self.link_text).strip()
            if self.href.startswith(("http://", "https://")) and self.href != shown:
                self.parts.append(f" ({self.href})")
            self.href = None

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        text = re.sub(r"\s+", " ", data)
        if self.quote_depth:
            text = text.replace("\n", "\n" + "> " * self.quote_depth)
            if self.parts and self.parts[-1].endswith("\n"):
                text = "> " * self.quote_depth + text.lstrip()
        if self.href is not None:
            self.link_text.append(text)
        self.parts.append(text)


def nesting_depth(html: str) -> int:
    """The deepest element nesting, estimated in one linear pass over the tags."""
    depth = deepest = 0
    for match in _TAG.finditer(html):
        closing, name, self_closing = match.groups()
        if name.lower() in _VOID or self_closing:
            continue
        depth = max(0, depth - 1) if closing else depth + 1
        deepest = max(deepest, depth)
    return deepest


def _strip_tags(html: str) -> str:
    text = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", " ", html)
    text = re.sub(r"(?i)<br\s*/?>|</(?:p|div|li|tr|h\d)\s*>", "\n", text)
    text = unescape(re.sub(r"<[^>]{0,2000}>", "", text))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(line.strip() for line in text.splitlines())).strip()


def render(html: str) -> tuple[str, str | None]:
    """(readable text, sanitized HTML) for an HTML body, within the budget: at most
    MAX_HTML_CHARS characters; markup nested deeper than MAX_HTML_DEPTH (where html5ever turns
    quadratic, ~5 s at 40,000 levels) is only stripped to text and not kept as HTML."""
    html = html[:MAX_HTML_CHARS]
    if nesting_depth(html) > MAX_HTML_DEPTH:
        return _strip_tags(html), None
    clean = sanitize_html(html)
    return _extract_text(clean), clean


def _extract_text(html: str) -> str:
    """Blocks become lines, links keep their address, quotes get ``>``. `html` must come from
    nh3: the stdlib HTMLParser alone is quadratic on hostile input (a megabyte of ``<``)."""
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # HTMLParser can trip on hostile markup; keep what we have
        pass
    lines = [line.strip(" \t\u00a0") for line in "".join(parser.parts).splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def sanitize_html(html: str) -> str:
    """HTML safe to show in the console: no scripts, styles, handlers or remote tricks."""
    return nh3.clean(
        html[:MAX_HTML_CHARS],
        tags=nh3.ALLOWED_TAGS | {"font", "center", "span", "div"},
        attributes={
            **{k: set(v) for k, v in nh3.ALLOWED_ATTRIBUTES.items()},
            **_ALLOWED_ATTRIBUTES,
        },
        url_schemes={"http", "https", "mailto", "cid"},
        link_rel="noopener noreferrer nofollow",
    )

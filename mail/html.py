"""HTML mail → readable text for the ticket, and sanitized HTML (nh3) for the console."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import nh3

MAX_HTML_CHARS = 2_000_000
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


def html_to_text(html: str) -> str:
    """Readable plain text: blocks become lines, links keep their address, quotes get ``>``."""
    parser = _TextExtractor()
    try:
        parser.feed(html[:MAX_HTML_CHARS])
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

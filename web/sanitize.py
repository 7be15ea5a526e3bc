"""Untrusted email HTML made safe to show an operator.

- nh3 (ammonia) keeps a small set of formatting tags; no script, no event handler, no style
  attribute or <style> element (so no CSS can escape the message's box), no class or id (so no
  page styles can be borrowed), links only to http(s)/mailto and opened without a referrer.
- Remote images are not loaded: their address moves to `data-remote-src` and a local placeholder
  is shown until the operator clicks "load images". `cid:` images point at the stored attachment.
- The quoted part (a reply's history) is folded inside <details>.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import nh3

PLACEHOLDER = "/static/remote-image.svg"
ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "details", "div",
    "dl", "dt", "em", "font", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins",
    "kbd", "li", "ol", "p", "pre", "q", "s", "small", "span", "strong", "sub", "summary", "sup",
    "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height", "data-remote-src"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align"},
    "font": {"color"},
    "details": {"class"},
}
_IMG_SRC = re.compile(r'<img([^>]*?) src="([^"]*)"')
_REMOTE = re.compile(r"^(?:https?:)?//", re.IGNORECASE)
_QUOTE_START = re.compile(
    r"<blockquote|<div>\s*(?:On .{5,200} wrote:|於.{2,100}寫道[:：]|在.{2,100}写道[:：]|-----\s*Original Message)",
    re.IGNORECASE | re.DOTALL,
)
_TEXT_QUOTE_START = re.compile(
    r"^(?:>|On .{5,200} wrote:\s*$|.{0,100}(?:寫道|写道)[:：]\s*$|-{2,}\s*(?:Original Message|原始郵件|原始邮件))",
    re.MULTILINE,
)


def _clean(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "cid"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def sanitize_email_html(
    html: str, resolve_cid: Callable[[str], str | None] | None = None, quoted_label: str = "…"
) -> str:
    """Safe HTML for the timeline: sanitized, remote images parked, quoted history folded."""
    cleaned = _clean(html)

    def _image(match: re.Match[str]) -> str:
        attrs, src = match.group(1), match.group(2)
        if _REMOTE.match(src):
            return f'<img{attrs} src="{PLACEHOLDER}" data-remote-src="{src}"'
        target = resolve_cid(src[4:]) if src.startswith("cid:") and resolve_cid else None
        return f'<img{attrs} src="{target or PLACEHOLDER}"'

    cleaned = _IMG_SRC.sub(_image, cleaned)
    match = _QUOTE_START.search(cleaned)
    if match and match.start() > 0:
        summary = nh3.clean_text(quoted_label)
        cleaned = (
            cleaned[: match.start()]
            + f'<details class="quoted"><summary>{summary}</summary>'
            + cleaned[match.start() :]
            + "</details>"
        )
        cleaned = _clean(cleaned)
    return cleaned


def split_quoted_text(text: str) -> tuple[str, str]:
    """A plain-text message's own words and the history it quotes."""
    match = _TEXT_QUOTE_START.search(text)
    if match is None or match.start() == 0:
        return text, ""
    return text[: match.start()].rstrip(), text[match.start() :]

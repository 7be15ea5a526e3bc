"""Where the quoted part of a reply starts. The full body is always kept; this is only an index
the console uses to fold the quote (talon / FreeScout separators, plus Chinese clients)."""

from __future__ import annotations

import re

MAX_SCAN_CHARS = 200_000

_SEPARATORS = re.compile(
    r"^\s*(?:"
    r"-{2,}\s*(?:original message|原始邮件|原始郵件|邮件原件|郵件原件|original|forwarded message"
    r"|转发的邮件|轉寄的郵件)\s*-{2,}"
    r"|_{5,}"
    r"|begin forwarded message:"
    r")\s*$",
    re.IGNORECASE,
)
_ATTRIBUTION_END = re.compile(
    r"(?:wrote|writes|schrieb|a écrit|escribió|написал|написала|写道|寫道)\s*[:：]?\s*$",
    re.IGNORECASE,
)
_ATTRIBUTION_START = re.compile(
    r"^\s*(?:on\s|在\s*\d|於\s*\d|于\s*\d|\d{4}[-/年]|\d{1,2}[./]\d{1,2}[./]\d{2,4}|am\s|le\s|el\s)",
    re.IGNORECASE,
)
_FROM_LABEL = r"from|von|de|от|发件人|發件人|寄件者|寄件人"
_OTHER_LABEL = (
    r"sent|date|to|subject|cc|gesendet|datum|an|betreff|envoyé|objet|à|发送时间|發送時間|时间|時間"
    r"|日期|寄件日期|收件人|收件者|主题|主題|主旨|抄送|副本"
)
_HEADER_FROM = re.compile(rf"^\s*\*?(?:{_FROM_LABEL})\s*\*?\s*[:：]", re.IGNORECASE)
_HEADER_ANY = re.compile(rf"^\s*\*?(?:{_FROM_LABEL}|{_OTHER_LABEL})\s*\*?\s*[:：]", re.IGNORECASE)


def _line_offsets(text: str) -> list[tuple[int, str]]:
    offsets, position = [], 0
    for line in text.splitlines(keepends=True):
        offsets.append((position, line.rstrip("\r\n")))
        position += len(line)
    return offsets


def _is_attribution(lines: list[tuple[int, str]], index: int) -> int | None:
    """An ``On … wrote:`` / ``在 … 写道：`` line, possibly wrapped over two lines."""
    line = lines[index][1]
    if _ATTRIBUTION_END.search(line) and (_ATTRIBUTION_START.search(line) or len(line) < 200):
        return lines[index][0]
    if index + 1 < len(lines) and _ATTRIBUTION_START.search(line):
        joined = line + " " + lines[index + 1][1]
        if _ATTRIBUTION_END.search(joined) and len(joined) < 300:
            return lines[index][0]
    return None


def _is_header_block(lines: list[tuple[int, str]], index: int) -> bool:
    """Outlook/GMX/QQ ``From: … Sent: … To: … Subject:`` blocks, any order, several languages."""
    if not _HEADER_ANY.match(lines[index][1]):
        return False
    window = [line for _, line in lines[index : index + 6] if line.strip()][:5]
    labelled = [line for line in window if _HEADER_ANY.match(line)]
    return len(labelled) >= 3 and any(_HEADER_FROM.match(line) for line in labelled[:3])


def _is_quote_run(lines: list[tuple[int, str]], index: int) -> bool:
    """A ``>`` line starting a run of quoted lines (or the last lines of the message)."""
    if not lines[index][1].lstrip().startswith(">"):
        return False
    if index > 0 and lines[index - 1][1].lstrip().startswith(">"):
        return False
    rest = [line for _, line in lines[index:] if line.strip()]
    quoted = sum(1 for line in rest if line.lstrip().startswith(">"))
    return quoted * 2 >= len(rest)


def _find_quote(lines: list[tuple[int, str]]) -> int | None:
    for index, (offset, line) in enumerate(lines):
        if not line.strip():
            continue
        if _SEPARATORS.match(line) or _is_header_block(lines, index) or _is_quote_run(lines, index):
            return offset
        attribution = _is_attribution(lines, index)
        if attribution is not None:
            return attribution
    return None


def quoted_text_start(text: str) -> int | None:
    """Character index where the quoted earlier message starts below new text, or None (no
    quote, or nothing new above it: a bottom-posted reply or a bare forward is all shown)."""
    start = _find_quote(_line_offsets(text[:MAX_SCAN_CHARS]))
    if start is None or not text[:start].strip():
        return None
    return start

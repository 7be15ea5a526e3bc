"""Raw RFC 5322 bytes → a `ParsedMessage`: decoded headers, readable body, attachment parts.

Budget (PRACTICES.md #8, pathological mail must not stall a worker). Limits, all per message:
  * MAX_RAW_BYTES (60 MB): larger input is `UnparseableMessage` (quarantined, replayable).
  * header section: at most MAX_HEADERS (500) fields, MAX_HEADER_BYTES (256 KB) in total and
    MAX_HEADER_VALUE (16 KB) per field; anything beyond is dropped before the stdlib parser sees it
    (the raw bytes stay stored by the transport, so nothing is lost).
  * MIME: the raw message is cut before its 1000th ``--`` line (MAX_DELIMITER_LINES) and at most
    MAX_PARTS (300) leaf parts are read; nesting deeper than the stack reads the body as text.
  * text: MAX_TEXT_CHARS (1 M characters) of body text; HTML: 1 M characters, and markup nested
    deeper than 400 levels is stripped to text instead of sanitized (mail/html.py).
  * time: after TIME_BUDGET_SECONDS (10 s) no further MIME parts are read (noted in meta).
With these caps the 210 KB-header corpus message parses in milliseconds; see tests/mail.
Header values are decoded by our own code (RFC 2047 via `email.header`, our charset table), not by
the policy's header classes, whose parsers are the slow and fragile part of `email`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from email import errors, policy
from email.header import decode_header
from email.headerregistry import Address, AddressHeader, BaseHeader, HeaderRegistry
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import EmailPolicy
from email.utils import getaddresses
from functools import lru_cache

from intake.phones import normalize_email
from mail.attachments import Candidate
from mail.charsets import decode_bytes, family, recover_header, repair_double_encoding
from mail.html import render

MAX_RAW_BYTES = 60 * 1024 * 1024
MAX_HEADERS = 500
MAX_HEADER_BYTES = 256 * 1024
MAX_HEADER_VALUE = 16 * 1024
MAX_PARTS = 300
MAX_DELIMITER_LINES = 1000
MAX_TEXT_CHARS = 1_000_000
TIME_BUDGET_SECONDS = 10.0
_HEADER_LINE = re.compile(rb"^[!-9;-~]{1,200}:")
_BODY_TYPES = ("text/plain", "text/html")
_SKIPPED_TYPES = (
    "message/delivery-status",
    "message/global-delivery-status",
    "text/rfc822-headers",
)


class _ReusedHeaders(HeaderRegistry):
    """The stdlib builds a header class and parses the value again at every access (the parser
    and the classifiers ask for Content-Type a dozen times per part). A (name, value) always
    parses alike and the parsed header is immutable, so each message parses each field once."""

    def __init__(self) -> None:
        super().__init__()
        self._parsed: dict[tuple[str, str], BaseHeader] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        return _header_class(name.lower())

    def __call__(self, name: str, value: str) -> BaseHeader:
        found = self._parsed.get((name, value))
        if found is None:
            found = self._parsed[(name, value)] = super().__call__(name, value)
        return found


_CLASSES = HeaderRegistry()


@lru_cache(maxsize=256)
def _header_class(name: str) -> type[BaseHeader]:
    """The class for a field name, made once (the stdlib makes a new class at every access)."""
    return _CLASSES[name]


def _message_policy() -> EmailPolicy[EmailMessage]:
    """A policy of its own for each message, so parsed headers live as long as the message."""
    return policy.default.clone(header_factory=_ReusedHeaders())


_RENDER_POLICIES = (policy.default.clone(linesep="\n"), policy.compat32)


class UnparseableMessage(Exception):
    """Bytes that are not an email at all; the transport quarantines them with `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class ParsedMessage:
    msg: EmailMessage
    message_id_raw: str | None
    subject: str
    from_name: str | None
    from_email: str | None
    reply_to: str | None
    to: list[str]
    in_reply_to: str | None
    references: str | None
    content_language: str | None
    text: str
    html: str | None
    html_only: bool
    body_charset: str | None
    attachments: list[Candidate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def charset_family(self) -> str | None:
        return family(self.body_charset)


def _split_head(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """(header section, separator, body) on the first empty line, any line-ending style."""
    match = re.search(rb"\r?\n\r?\n", raw)
    if match is None:
        return raw, b"", b""
    return raw[: match.start()], match.group(0), raw[match.end() :]


def _is_continuation(line: bytes) -> bool:
    return line[:1] in (b" ", b"\t")


def _folded_field(lines: list[bytes], index: int) -> bool:
    """A line with a colon whose next line is a continuation: a header, however odd its name."""
    following = lines[index + 1] if index + 1 < len(lines) else b""
    return b":" in lines[index] and _is_continuation(following)


def _group_fields(lines: list[bytes], notes: list[str]) -> tuple[list[list[bytes]], list[bytes]]:
    """Header lines grouped into fields, repairing what real mail gets wrong, and the lines that
    turned out to be body (a missing empty line after the headers).

    Inside the header block a line without a colon is an unfolded continuation and a line with an
    impossible field name is dropped (the stdlib would end the headers there and decode the rest
    of the headers as the body). After the last valid header such a line starts the body.
    """
    valid = [i for i, line in enumerate(lines) if _HEADER_LINE.match(line)]
    last_header = valid[-1] if valid else -1
    fields: list[list[bytes]] = []
    dropping = False
    for index, line in enumerate(lines):
        if index == 0 and line.startswith(b"From "):
            fields.append([line])
        elif _is_continuation(line):
            if dropping:
                continue
            if fields:
                fields[-1].append(line)
            else:
                fields.append([line.lstrip()])
        elif _HEADER_LINE.match(line):
            dropping = False
            fields.append([line])
        elif index > last_header and not _folded_field(lines, index):
            notes.append("no empty line after the headers")
            return fields, lines[index:]
        elif b":" not in line and fields and not dropping:
            notes.append("repaired a badly folded header")
            fields[-1].append(b" " + line)
        else:
            notes.append("dropped a malformed header line")
            dropping = True
    return fields, []


def _cap_field(field_lines: list[bytes]) -> list[bytes]:
    kept: list[bytes] = []
    size = 0
    for line in field_lines:
        if size + len(line) > MAX_HEADER_VALUE:
            if not kept:
                kept.append(line[:MAX_HEADER_VALUE].rstrip(b"\r\n") + b"\n")
            break
        kept.append(line)
        size += len(line)
    return kept


def sanitize_headers(raw: bytes, notes: list[str]) -> bytes:
    """Repair the header block and hold it to the budget: MAX_HEADERS fields, MAX_HEADER_BYTES
    in total, MAX_HEADER_VALUE per field. The body is untouched."""
    head, sep, body = _split_head(raw)
    lines = head.splitlines(keepends=True)
    if lines and not lines[-1].endswith(b"\n"):
        lines[-1] += b"\n"
    fields, spilled = _group_fields(lines, notes)
    if len(fields) > MAX_HEADERS:
        notes.append(f"kept the first {MAX_HEADERS} header fields")
        fields = fields[:MAX_HEADERS]
    out: list[bytes] = []
    total = 0
    for field_lines in fields:
        capped = _cap_field(field_lines)
        if capped != field_lines:
            notes.append("cut an over-long header")
        total += sum(len(line) for line in capped)
        if total > MAX_HEADER_BYTES:
            notes.append(f"header section cut at {MAX_HEADER_BYTES} bytes")
            break
        out.extend(capped)
    if not notes:
        return raw
    newline = b"\r\n" if b"\r\n" in head[:4000] else b"\n"
    rest = b"".join(spilled) + (sep[len(newline) :] if sep else b"") + body
    return b"".join(out) + newline + rest


def normalize_newlines(raw: bytes) -> bytes:
    """Classic-Mac CR-only mail → LF, so the header/body split and the parser agree."""
    if b"\n" not in raw[:65536] and b"\r" in raw:
        return raw.replace(b"\r", b"\n")
    return raw


def looks_like_mail(raw: bytes) -> bool:
    """At least one header-shaped line among the first few: else there is nothing to parse."""
    for line in raw[:8192].splitlines()[:20]:
        if _HEADER_LINE.match(line) or line.startswith(b"From "):
            return True
    return False


def raw_header(msg: Message, name: str) -> str | None:
    """The undecoded value of the first `name` header (surrogate-escaped bytes kept)."""
    wanted = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == wanted:
            return str(value)
    return None


def raw_headers(msg: Message, name: str) -> list[str]:
    wanted = name.lower()
    return [str(value) for key, value in msg.raw_items() if key.lower() == wanted]


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n[ \t]*", " ", value).strip()


def decode_header_value(value: str | None, hint: str | None = None) -> str:
    """RFC 2047 words with our charset table; raw 8-bit bytes with `hint`/UTF-8/detection."""
    if not value:
        return ""
    text = recover_header(_unfold(value), hint)
    if "=?" not in text:
        return repair_double_encoding(text)
    try:
        chunks = decode_header(text)
    except Exception:  # a broken encoded word stays as written
        return text
    out = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            out.append(chunk)
        elif charset in (None, "unknown-8bit"):
            out.append(chunk.decode("raw-unicode-escape", errors="replace"))
        else:
            out.append(decode_bytes(chunk, charset)[0])
    return repair_double_encoding("".join(out)).strip()


def _strict_addresses(value: str) -> list[Address] | None:
    """The mailboxes of an address-list header parsed by `email.headerregistry`, or None when the
    parser reported a defect in it (a quoted string posing as an address, a missing domain, …).
    Obsolete syntax (a period in a display name) is tolerated."""
    try:
        header = _CLASSES("From", value)
    except Exception:  # the stdlib parser gave up: no trustworthy address in there
        return None
    if any(isinstance(d, errors.InvalidHeaderDefect) for d in header.defects):
        return None
    if not isinstance(header, AddressHeader):  # always one for From; says so to the type checker
        return None
    return list(header.addresses)


def _mailbox(value: str | None, hint: str | None) -> tuple[str | None, str] | None:
    """(display name, address) when `value` is exactly one syntactically valid mailbox, else None.

    A From that is a list, a group, a quoted string or anything with a parse defect names no
    sender: a sender is one mailbox or none (issue 12: a quoted "a@x, b@y" was once taken for
    the address and answered twice)."""
    if not value:
        return None
    unfolded = recover_header(_unfold(value), hint)
    found = _strict_addresses(unfolded)
    if not found or len(found) != 1:
        return None
    address = normalize_email(found[0].addr_spec)
    if address is None:
        return None
    name = found[0].display_name
    try:  # the display name through our charset table (GB labels lie), when it is the same one
        [(raw_name, raw_address)] = getaddresses([unfolded])
        if raw_address.strip().lower() == address:
            name = decode_header_value(raw_name, hint) or name
    except Exception:  # keep the stdlib's decoding of the name
        pass
    return (name.strip("\"' ") or None), address


def _addresses(value: str | None) -> list[str]:
    """The valid mailboxes of an address-list header (To, Reply-To), lower-cased."""
    if not value:
        return []
    found = _strict_addresses(_unfold(value)) or []
    return [a for a in (normalize_email(m.addr_spec) for m in found) if a]


def _part_bytes(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # malformed transfer encoding: keep the raw payload
        data = None
    if isinstance(data, bytes):
        return data
    payload = part.get_payload()
    return payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""


def _filename(part: Message, hint: str | None) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if not name:
        return None
    return decode_header_value(str(name), hint) or None


def _is_attachment(part: Message, filename: str | None) -> bool:
    disposition = (part.get_content_disposition() or "").lower()
    ctype = part.get_content_type()
    if disposition == "attachment":
        return True
    if ctype in _BODY_TYPES:
        return bool(filename) and disposition != "inline"
    return True


def _leaves(msg: Message) -> list[Message]:
    """Leaf parts in order, not descending into attached messages, at most MAX_PARTS."""
    leaves: list[Message] = []
    stack: list[Message] = [msg]
    while stack and len(leaves) < MAX_PARTS:
        part = stack.pop()
        payload = part.get_payload() if part.is_multipart() else None
        if part.get_content_maintype() == "multipart" and isinstance(payload, list):
            stack.extend(p for p in reversed(payload) if isinstance(p, Message))
        else:
            leaves.append(part)
    return leaves


def _attached_message_bytes(part: Message) -> bytes:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        for render_policy in _RENDER_POLICIES:
            try:
                return payload[0].as_bytes(policy=render_policy)
            except Exception:  # a broken inner message: try the lenient policy, else drop it
                continue
        return b""
    return _part_bytes(part)


def _body_and_attachments(msg: Message, parsed: ParsedMessage, deadline: float) -> None:
    texts: list[str] = []
    htmls: list[str] = []
    charsets: list[str] = []
    for part in _leaves(msg):
        if time.monotonic() > deadline:
            parsed.notes.append(f"time budget of {TIME_BUDGET_SECONDS} s spent: later parts unread")
            break
        ctype = part.get_content_type()
        if ctype in _SKIPPED_TYPES:
            continue
        if ctype in ("message/rfc822", "message/global"):
            inner = _attached_message_bytes(part)
            parsed.attachments.append(
                Candidate("message.eml", "message/rfc822", inner, False, None)
            )
            continue
        filename = _filename(part, parsed.body_charset)
        if not _is_attachment(part, filename):
            data = _part_bytes(part)
            text, codec = decode_bytes(data, part.get_content_charset())
            charsets.append(codec)
            (texts if ctype == "text/plain" else htmls).append(text)
            continue
        content_id = str(part.get("Content-ID") or "").strip().strip("<>") or None
        inline = (part.get_content_disposition() or "") == "inline" or bool(
            content_id and part.get_content_maintype() == "image"
        )
        parsed.attachments.append(Candidate(filename, ctype, _part_bytes(part), inline, content_id))
    parsed.body_charset = next(
        (c for c in charsets if family(c)), charsets[0] if charsets else None
    )
    html_text, parsed.html = render("\n".join(htmls)) if htmls else ("", None)
    if htmls and parsed.html is None:
        parsed.notes.append("HTML nested beyond the budget: kept as text only")
    parsed.html_only = bool(htmls) and not texts
    text = "\n\n".join(t.strip("\r\n") for t in texts) if texts else html_text
    parsed.text = repair_double_encoding(text.replace("\r\n", "\n"))[:MAX_TEXT_CHARS]


def cap_parts(raw: bytes, notes: list[str]) -> bytes:
    """Cut the message before its MAX_DELIMITER_LINES-th ``--`` line: the stdlib parser spends
    ~0.3 ms per part (6 s for 20,000 tiny parts) and cannot be interrupted."""
    for count, match in enumerate(re.finditer(rb"\n--", raw), start=1):
        if count > MAX_DELIMITER_LINES:
            notes.append(f"MIME parts after the {MAX_DELIMITER_LINES}th delimiter line not read")
            return raw[: match.start() + 1]
    return raw


def _parse_bytes(data: bytes, notes: list[str]) -> EmailMessage:
    """The stdlib parser recurses once per MIME level; a message nested deeper than the stack
    allows is read with its headers and its whole body as one text part instead."""
    message_policy = _message_policy()
    try:
        msg = BytesParser(policy=message_policy).parsebytes(data)
    except RecursionError:
        notes.append("MIME nested too deeply: the body is read as one text part")
        msg = BytesParser(policy=message_policy).parsebytes(data, headersonly=True)
        for name in ("Content-Type", "Content-Transfer-Encoding", "Content-Disposition"):
            del msg[name]
        msg["Content-Type"] = "text/plain; charset=utf-8"
    assert isinstance(msg, EmailMessage)
    return msg


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse within the budget. Raises only `UnparseableMessage`."""
    if not raw or not raw.strip():
        raise UnparseableMessage("empty message")
    if len(raw) > MAX_RAW_BYTES:
        raise UnparseableMessage(f"message larger than {MAX_RAW_BYTES} bytes")
    raw = normalize_newlines(raw)
    if not looks_like_mail(raw):
        raise UnparseableMessage("no header lines: not an RFC 5322 message")
    notes: list[str] = []
    msg = _parse_bytes(cap_parts(sanitize_headers(raw, notes), notes), notes)
    parsed = ParsedMessage(
        msg=msg,
        message_id_raw=raw_header(msg, "Message-ID"),
        subject="",
        from_name=None,
        from_email=None,
        reply_to=None,
        to=[],
        in_reply_to=" ".join(raw_headers(msg, "In-Reply-To")) or None,
        references=" ".join(raw_headers(msg, "References")) or None,
        content_language=(raw_header(msg, "Content-Language") or "").split(",")[0].strip() or None,
        text="",
        html=None,
        html_only=False,
        body_charset=msg.get_content_charset(),
        notes=notes,
    )
    _body_and_attachments(msg, parsed, time.monotonic() + TIME_BUDGET_SECONDS)
    hint = parsed.body_charset
    parsed.subject = decode_header_value(raw_header(msg, "Subject"), hint)
    from_value = raw_header(msg, "From")
    sender = _mailbox(from_value, hint)
    if sender is None and from_value and "=?" in from_value:
        # some clients encode the whole From value, address included, as one word
        sender = _mailbox(decode_header_value(from_value, hint), hint)
    if sender is None and not from_value:
        sender = _mailbox(raw_header(msg, "Sender"), hint)
    if sender is not None:
        parsed.from_name, parsed.from_email = sender
    reply_to = _addresses(raw_header(msg, "Reply-To"))
    parsed.reply_to = reply_to[0] if len(reply_to) == 1 else None
    parsed.to = _addresses(", ".join(raw_headers(msg, "To")))
    return parsed

"""Who sent this: a human, an auto-responder, a bounce, a list, ourselves, or a no-reply robot.

Only humans are answered (RFC 3834). Order matters: our own mail first (a loop), then bounces
(they often also carry Auto-Submitted), auto-replies, list/bulk mail, no-reply senders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.utils import parseaddr
from typing import Any

from mail.threads import normalize_message_id, parse_signed_id

MAX_REPORT_PARTS = 50
_NOREPLY_LOCAL = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|mailer[-_.]daemon|postmaster|bounces?"
    r"|mail[-_.]?daemon|auto[-_.]?reply|autoresponder)(?:[-+_.].*)?$",
    re.IGNORECASE,
)
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:automatic reply|auto(?:matic)?[- ]?(?:reply|response)|out of (?:the )?office"
    r"|自動回覆|自动回复|自動回复|自动答复|自動答覆|自動應答|自动应答|休假|不在辦公室|不在办公室"
    r"|réponse automatique|automatische antwort|abwesenheitsnotiz)\s*[:：]?",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"(?:undeliver(?:able|ed)|delivery (?:status notification|failure|has failed)|returned mail"
    r"|mail delivery failed|failure notice|delivery notification|non[- ]?delivery"
    r"|could not be delivered|邮件传输失败|郵件傳輸失敗|退信|系统退信|無法傳遞|无法投递|投递失败"
    r"|unzustellbar|non remis)",
    re.IGNORECASE,
)
_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")


@dataclass(frozen=True)
class Bounce:
    failed: bool
    action: str | None = None
    status: str | None = None
    recipient: str | None = None
    diagnostic: str | None = None
    original_message_id: str | None = None

    def as_meta(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Verdict:
    sender_kind: str
    mail_class: str
    reasons: tuple[str, ...] = ()
    bounce: Bounce | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except Exception:  # a malformed header is just absent for classification
        return ""
    return str(value or "").strip()


def _lower(msg: Message, name: str) -> str:
    return _header(msg, name).lower()


def auto_reply_reasons(msg: Message, subject: str) -> tuple[str, ...]:
    """RFC 3834 and the non-standard Outlook/Apple/vendor auto-responder signs."""
    reasons = []
    auto_submitted = _lower(msg, "Auto-Submitted")
    if auto_submitted and not auto_submitted.startswith("no"):
        reasons.append(f"auto-submitted:{auto_submitted.split(';')[0]}")
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Reply"):
        if msg.get(name) is not None:
            reasons.append(name.lower())
    if _lower(msg, "Precedence") == "auto_reply":
        reasons.append("precedence:auto_reply")
    if _lower(msg, "X-Apple-Action") == "vacation" or msg.get("X-Apple-Vacation") is not None:
        reasons.append("apple-vacation")
    if _AUTO_SUBJECT.match(subject or ""):
        reasons.append("auto-reply-subject")
    if _lower(msg, "X-Auto-Response-Suppress") and msg.get("Return-Path", "").strip() == "<>":
        reasons.append("outlook-suppress-null-sender")
    return tuple(reasons)


def list_reasons(msg: Message) -> tuple[str, ...]:
    """List/bulk signs. `X-Auto-Response-Suppress` alone is not one: Exchange sets it on mail
    people send too, and `X-MS-Exchange-Inbox-Rules-Loop` marks rule-forwarded human mail."""
    reasons = []
    for name in ("List-Id", "List-Unsubscribe", "List-Post", "X-Mailing-List", "Mailing-List"):
        if msg.get(name) is not None:
            reasons.append(name.lower())
    precedence = _lower(msg, "Precedence")
    if precedence in ("bulk", "list", "junk"):
        reasons.append(f"precedence:{precedence}")
    return tuple(reasons)


def is_noreply_address(address: str | None) -> bool:
    local = (address or "").rpartition("@")[0]
    return bool(local) and bool(_NOREPLY_LOCAL.match(local))


def _report_type(msg: Message) -> str:
    if msg.get_content_type() != "multipart/report":
        return ""
    return str(msg.get_param("report-type", "") or "").lower()


def _parts(msg: Message) -> list[Message]:
    parts: list[Message] = []
    for part in msg.walk():
        parts.append(part)
        if len(parts) >= MAX_REPORT_PARTS:
            break
    return parts


def _status_fields(part: Message) -> list[dict[str, str]]:
    """The per-message and per-recipient field groups of a message/delivery-status part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = [block for block in payload if isinstance(block, Message)]
        groups = [{k.lower(): str(v) for k, v in block.items()} for block in blocks]
        return [g for g in groups if g]
    text = payload if isinstance(payload, str) else ""
    current: dict[str, str] = {}
    groups = []
    for line in text.splitlines():
        if not line.strip():
            if current:
                groups.append(current)
            current = {}
        elif ":" in line and not line[0].isspace():
            key, _, value = line.partition(":")
            current[key.strip().lower()] = value.strip()
    if current:
        groups.append(current)
    return groups


def _original_message_id(parts: list[Message], body_text: str) -> str | None:
    for part in parts:
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global") and part.is_multipart():
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                found = normalize_message_id(_header(inner[0], "Message-ID"))
                if found:
                    return found
        if ctype in ("text/rfc822-headers", "message/rfc822-headers", "message/rfc822"):
            payload = part.get_payload(decode=True)
            found_in_part = re.search(
                rb"(?im)^message-id:\s*(<[^>\s]+>)",
                payload[:100_000] if isinstance(payload, bytes) else b"",
            )
            if found_in_part:
                return normalize_message_id(found_in_part.group(1).decode("ascii", "replace"))
    match = re.search(r"(?im)^\s*message-id:\s*(<[^>\s]+>)", body_text[:200_000])
    return normalize_message_id(match.group(1)) if match else None


def dsn_bounce(msg: Message, body_text: str) -> Bounce | None:
    """A RFC 3464 delivery-status report: failed unless every recipient is delayed/relayed/…"""
    parts = _parts(msg)
    status_parts = [
        p
        for p in parts
        if p.get_content_type() in ("message/delivery-status", "message/global-delivery-status")
    ]
    if _report_type(msg) != "delivery-status" and not status_parts:
        return None
    recipients = [g for p in status_parts for g in _status_fields(p) if "action" in g]
    failed = [g for g in recipients if g.get("action", "").lower().startswith("failed")]
    chosen = failed[0] if failed else (recipients[0] if recipients else {})
    recipient = chosen.get("final-recipient") or chosen.get("original-recipient") or ""
    return Bounce(
        failed=bool(failed) or not recipients,
        action=(chosen.get("action") or "").lower() or None,
        status=chosen.get("status") or None,
        recipient=recipient.rpartition(";")[2].strip().strip("<>").lower() or None,
        diagnostic=(chosen.get("diagnostic-code") or "")[:500] or None,
        original_message_id=_original_message_id(parts, body_text),
    )


def heuristic_bounce(msg: Message, sender: str, subject: str, body_text: str) -> Bounce | None:
    """Non-DSN bounces (Exim, qmail, old Exchange, Sina…): a daemon sender or a null return path
    with a delivery-failure subject."""
    daemon = re.match(r"^(?:mailer[-_.]?daemon|postmaster|mail[-_.]?delivery)", sender, re.I)
    null_path = _header(msg, "Return-Path") == "<>"
    if not _BOUNCE_SUBJECT.search(subject or "") or not (
        daemon or null_path or msg.get("X-Failed-Recipients")
    ):
        return None
    failed_to = _header(msg, "X-Failed-Recipients")
    match = _ADDRESS.search(failed_to) or _ADDRESS.search(body_text[:5000])
    return Bounce(
        failed=True,
        action="failed",
        recipient=match.group(0).lower() if match else None,
        original_message_id=_original_message_id(_parts(msg), body_text),
    )


def is_own(
    settings_mail_from: str,
    own_domain: str,
    sender: str,
    message_id: str | None,
    x_loop: tuple[str, ...] = (),
) -> bool:
    """Our own mail come back: our signed id shape on our domain as its own id, From = us, or
    our `X-Loop` header (outgoing mail sets it to MAIL_FROM)."""
    ours = parseaddr(settings_mail_from)[1].lower()
    if ours and (sender == ours or any(ours in value.lower() for value in x_loop)):
        return True
    signed = parse_signed_id(message_id)
    return signed is not None and (message_id or "").endswith(f"@{own_domain}>")


def classify(
    msg: EmailMessage,
    *,
    sender: str,
    subject: str,
    body_text: str,
    message_id: str | None,
    mail_from: str,
    own_domain: str,
) -> Verdict:
    """The sender kind the core needs, the finer mail class and the reasons, for the timeline."""
    sender = (sender or "").lower()
    x_loop = tuple(str(v) for v in (msg.get_all("X-Loop") or []))
    if is_own(mail_from, own_domain, sender, message_id, x_loop):
        return Verdict("own", "own", ("own-message-id-or-from",))
    report = _report_type(msg)
    bounce = dsn_bounce(msg, body_text) or heuristic_bounce(msg, sender, subject, body_text)
    if bounce is not None:
        mail_class = "bounce" if bounce.failed else f"dsn_{bounce.action or 'other'}"
        return Verdict("bounce", mail_class, (f"report:{report}" if report else "bounce",), bounce)
    if report in ("disposition-notification", "feedback-report"):
        return Verdict("auto_reply", report.replace("-", "_"), (f"report:{report}",))
    if any(p.get_content_type() == "message/disposition-notification" for p in _parts(msg)):
        return Verdict("auto_reply", "disposition_notification", ("mdn",))
    auto = auto_reply_reasons(msg, subject)
    if auto:
        return Verdict("auto_reply", "auto_reply", auto)
    listed = list_reasons(msg)
    if listed:
        return Verdict("list", "list", listed)
    if is_noreply_address(sender) or _header(msg, "Return-Path") == "<>":
        return Verdict("noreply", "noreply", ("noreply-sender",))
    return Verdict("human", "human")

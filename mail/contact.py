"""The interface the mail transports call: raw bytes in, the core's `InboundContact` out.

`message_to_contact` never raises except `UnparseableMessage(reason)` for bytes that are not mail
(or that our code failed on, so the transport quarantines them for replay instead of losing them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any

import hanzidentifier

from intake.config import Settings
from intake.contact import InboundAttachment, InboundContact
from intake.phones import normalize_email, plausible_name
from mail.attachments import Limits, store_attachments
from mail.auth import trusted_for
from mail.auth import verdict as auth_verdict
from mail.charsets import CJK
from mail.loops import Verdict, classify
from mail.parse import ParsedMessage, UnparseableMessage, parse_message, raw_headers
from mail.quoting import quoted_text_start
from mail.threads import (
    find_body_marker,
    find_subject_token,
    mail_domain,
    normalize_message_id,
    parse_id_list,
    signed_ref_in,
    verify_message_id,
    verp_outgoing_id,
)

__all__ = ["UnparseableMessage", "external_id_for", "message_to_contact", "parse_message"]

_TRACE_FIELDS = re.compile(
    rb"^(?:received|x-received|return-path|delivered-to|x-original-to|envelope-to|x-envelope-\S*"
    rb"|authentication-results|arc-\S*|x-spam-\S*|x-virus-\S*|x-gm-\S*|x-google-smtp-source"
    rb"|x-ms-exchange-organization-\S*|x-forefront-\S*)\s*:",
    re.IGNORECASE,
)


def stable_bytes(raw: bytes) -> bytes:
    """The message without the trace fields each hop adds and with LF line ends, so the same
    message fetched by IMAP and received by SMTP hashes alike."""
    text = raw.replace(b"\r\n", b"\n")
    head, sep, body = text.partition(b"\n\n")
    kept: list[bytes] = []
    dropping = False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = bool(_TRACE_FIELDS.match(line))
        if not dropping:
            kept.append(line)
    return b"\n".join(kept) + sep + body


def external_id_for(raw: bytes, message_id: str | None) -> str:
    """Normalized Message-ID, or a deterministic synthetic one: the first 32 hex of the SHA-256
    of the message without its trace headers (`stable_bytes`)."""
    normalized = normalize_message_id(message_id)
    if normalized and len(normalized) >= 8:
        return normalized
    return f"<{hashlib.sha256(stable_bytes(raw)).hexdigest()[:32]}@synthetic.hotline>"


def scrub(value: Any) -> Any:
    """Text the database accepts: no NUL (PostgreSQL refuses it) and no lone surrogates (left by
    undecodable 8-bit header bytes), in strings, lists and dicts alike."""
    if isinstance(value, str):
        if value.isascii() and "\x00" not in value:
            return value
        text = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return text.replace("\x00", "")
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub(v) for v in value)
    return value


def fit(value: str | None, length: int) -> str | None:
    """`value` scrubbed and cut to a column's length (the Interaction columns are VARCHAR)."""
    return scrub(value)[:length] or None if value else None


def language_hint(parsed: ParsedMessage) -> str | None:
    """Content-Language when present; else the charset family, but only for Chinese text."""
    if parsed.content_language:
        return parsed.content_language[:35]
    sample = "".join(CJK.findall(parsed.subject + parsed.text[:2000]))
    if not sample:
        return None
    hint = {"gb": "zh-Hans", "big5": "zh-Hant"}.get(parsed.charset_family or "")
    script = hanzidentifier.identify(sample)
    if (hint, script) in (
        ("zh-Hans", hanzidentifier.TRADITIONAL),
        ("zh-Hant", hanzidentifier.SIMPLIFIED),
    ):
        return None  # the text contradicts its charset (GB18030 encodes 繁體 too): let text decide
    return hint


def _limits(settings: Settings) -> Limits:
    mail = settings.config.mail
    return Limits(
        per_file=mail.max_attachment_bytes,
        total=mail.max_total_attachment_bytes,
        count=mail.max_attachments,
    )


def thread_claim(
    settings: Settings, parsed: ParsedMessage, references: tuple[str, ...], own_id: str | None
) -> tuple[str | None, bool, str | None]:
    """(ticket_ref, trusted, how) in the issue's order: signed ids, subject token, body marker."""
    signed = signed_ref_in(settings, references)
    if signed:
        return signed, True, "signed-reference"
    marker = find_body_marker(settings, parsed.text) or find_body_marker(settings, parsed.html)
    token = find_subject_token(parsed.subject, settings.config.ticket_prefix)
    if token:
        return token, token == marker, "subject-token"
    if marker:
        return marker, True, "body-marker"
    own = verify_message_id(settings, own_id)
    if own:
        return own, True, "own-message-id"
    return None, False, None


def _build(
    raw: bytes,
    parsed: ParsedMessage,
    *,
    settings: Settings,
    source: str,
    transport_key: str | None,
    envelope_to: list[str] | None,
) -> InboundContact:
    external_id = external_id_for(raw, parsed.message_id_raw)
    own_id = normalize_message_id(parsed.message_id_raw)
    verdict: Verdict = classify(
        parsed.msg,
        sender=parsed.from_email or "",
        subject=parsed.subject,
        body_text=parsed.text,
        message_id=own_id,
        mail_from=settings.mail_from,
        own_domain=mail_domain(settings),
    )
    references = parse_id_list(parsed.references, parsed.in_reply_to)
    if verdict.bounce and verdict.bounce.original_message_id:
        references = tuple(dict.fromkeys((*references, verdict.bounce.original_message_id)))
    ticket_ref, trusted, how = thread_claim(settings, parsed, references, own_id)
    stored, skipped = store_attachments(settings.data_dir, parsed.attachments, _limits(settings))
    meta: dict[str, Any] = {
        "mail_class": verdict.mail_class,
        "loop_reasons": list(verdict.reasons),
        "source": source,
        "raw_sha256": hashlib.sha256(raw).hexdigest(),
        "raw_size": len(raw),
        "html_only": parsed.html_only,
        "charset": parsed.body_charset,
    }
    optional = {
        "transport_key": transport_key,
        "envelope_to": list(envelope_to) if envelope_to else None,
        "reply_to": parsed.reply_to if parsed.reply_to != parsed.from_email else None,
        "quoted_text_start": quoted_text_start(parsed.text),
        "bounce": _bounce_meta(settings, parsed, verdict, envelope_to),
        "thread_by": how,
        "attachments_skipped": skipped or None,
        "parse_notes": parsed.notes or None,
        "message_id_synthetic": True if not own_id else None,
        "display_name": parsed.from_name
        if parsed.from_name and plausible_name(parsed.from_name) is None
        else None,
    }
    meta.update({k: v for k, v in optional.items() if v is not None})
    auth = auth_verdict(
        raw_headers(parsed.msg, "Authentication-Results"),
        parsed.from_email,
        trusted_for(settings.config.mail, source),
    )
    if auth.authserv_id is not None:
        meta["authentication"] = auth.as_meta()
    recipients = list(envelope_to or []) or parsed.to
    sender_email = normalize_email(fit(parsed.from_email, 254))
    return InboundContact(
        channel="email",
        external_id=scrub(external_id),
        kind="email",
        sender_email=sender_email if sender_email and "\ufffd" not in sender_email else None,
        sender_name=fit(plausible_name(parsed.from_name), 200),
        recipient=fit(recipients[0].lower() if recipients else None, 300),
        subject=fit(parsed.subject, 500),
        text=scrub(parsed.text),
        html=scrub(parsed.html),
        language_hint=fit(language_hint(parsed), 35),
        attachments=tuple(_fit_attachment(a) for a in stored),
        references=scrub(references),
        ticket_ref=ticket_ref,
        ticket_ref_trusted=trusted,
        sender_kind=verdict.sender_kind,
        sender_authenticated=auth.verified,
        meta=scrub(meta),
    )


def _bounce_meta(
    settings: Settings, parsed: ParsedMessage, verdict: Verdict, envelope_to: list[str] | None
) -> dict[str, Any] | None:
    """The bounce for `record_bounce`, with the outgoing message its VERP address names (the SMTP
    envelope, else the headers a mailbox keeps of it)."""
    if verdict.bounce is None:
        return None
    meta = verdict.bounce.as_meta()
    candidates = [
        *(envelope_to or []),
        *raw_headers(parsed.msg, "Delivered-To"),
        *raw_headers(parsed.msg, "X-Original-To"),
        *parsed.to,
    ]
    for address in candidates:
        outgoing_id = verp_outgoing_id(settings, str(address))
        if outgoing_id is not None:
            meta["verp_outgoing_id"] = outgoing_id
            break
    return meta


def _fit_attachment(attachment: InboundAttachment) -> InboundAttachment:
    return dataclasses.replace(
        attachment,
        filename=fit(attachment.filename, 255) or "attachment",
        content_type=fit(attachment.content_type, 120) or "application/octet-stream",
        content_id=fit(attachment.content_id, 300),
    )


def message_to_contact(
    raw: bytes,
    *,
    settings: Settings,
    source: str,
    transport_key: str | None = None,
    envelope_to: list[str] | None = None,
) -> InboundContact:
    """Parse `raw` into an InboundContact for `intake.service.receive`.

    The sender is the From address (not Reply-To, which is kept in meta: answering Reply-To is
    the outgoing side's choice). Raises only `UnparseableMessage`, and `OSError` when attachments
    cannot be written (a full disk is worth a retry, not a quarantine).
    """
    try:
        parsed = parse_message(raw)
        return _build(
            raw,
            parsed,
            settings=settings,
            source=source,
            transport_key=transport_key,
            envelope_to=envelope_to,
        )
    except (UnparseableMessage, OSError):
        raise
    except Exception as exc:  # quarantine with the reason instead of losing it
        raise UnparseableMessage(f"internal error while reading the message: {exc!r}") from exc

"""Synthetic test mail built in code with the stdlib, and settings that need no database."""

from __future__ import annotations

import base64
import dataclasses
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, parseaddr
from pathlib import Path

from intake.config import Settings, get_settings

SECRET = "test-secret-key"
MAIL_FROM = "物業客服 <service@hotline.example.com>"


def offline_settings(monkeypatch, tmp_path: Path, **changes: object) -> Settings:  # type: ignore[no-untyped-def]
    """Real Settings from the environment, pointed at a temporary folder; no services needed."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'unused.db'}")
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SECRET_KEY", SECRET)
    monkeypatch.setenv("MAIL_FROM", MAIL_FROM)
    get_settings.cache_clear()
    try:
        return dataclasses.replace(get_settings(), **changes)  # type: ignore[arg-type]
    finally:
        get_settings.cache_clear()


def encoded_word(text: str, charset: str, codec: str) -> str:
    """An RFC 2047 B-word labelled `charset` whatever `codec` really produced (labels lie)."""
    return f"=?{charset}?B?{base64.b64encode(text.encode(codec)).decode('ascii')}?="


def legacy_mail(
    body: str,
    *,
    charset: str,
    codec: str,
    subject: str,
    sender: str = "resident@example.com",
    sender_name: str | None = None,
    message_id: str | None = "<synthetic-1@resident.example.com>",
    headers: dict[str, str] | None = None,
    raw_subject: bool = False,
) -> bytes:
    """A text/plain message encoded with `codec` but labelled `charset`, as old clients send it.

    `raw_subject` writes the subject as raw 8-bit bytes (no RFC 2047), as some webmails do.
    """
    lines = [
        f"From: {encoded_word(sender_name, charset, codec) + ' ' if sender_name else ''}<{sender}>",
        "To: complaints@hotline.example.com",
        "Subject: __SUBJECT__"
        if raw_subject
        else f"Subject: {encoded_word(subject, charset, codec)}",
        "Date: Tue, 02 Jan 2024 10:00:00 +0800",
        "MIME-Version: 1.0",
        f'Content-Type: text/plain; charset="{charset}"',
        "Content-Transfer-Encoding: base64",
    ]
    if message_id:
        lines.append(f"Message-ID: {message_id}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    encoded = base64.encodebytes(body.encode(codec)).decode("ascii")
    data = ("\r\n".join(lines) + "\r\n\r\n" + encoded.replace("\n", "\r\n")).encode("ascii")
    if raw_subject:
        data = data.replace(b"__SUBJECT__", subject.encode(codec))
    return data


def alternative_mail(text: str | None, html: str, *, subject: str = "test") -> bytes:
    """multipart/alternative (or HTML-only when `text` is None), UTF-8."""
    if text is None:
        message = MIMEText(html, "html", "utf-8")
    else:
        message = MIMEMultipart("alternative")
        message.attach(MIMEText(text, "plain", "utf-8"))
        message.attach(MIMEText(html, "html", "utf-8"))
    message["From"] = "Resident <resident@example.com>"
    message["To"] = "complaints@hotline.example.com"
    message["Subject"] = subject
    message["Message-ID"] = "<alt-1@resident.example.com>"
    return message.as_bytes()


def utf8_mail(
    body: str,
    *,
    subject: str,
    sender: str = "resident@example.com",
    message_id: str | None = "<utf8-1@resident.example.com>",
    headers: dict[str, str] | None = None,
) -> bytes:
    """A plain UTF-8 message as modern clients send it (RFC 2047 subject, base64 body)."""
    message = MIMEText(body, "plain", "utf-8")
    message["From"] = formataddr(parseaddr(sender), charset="utf-8")
    message["To"] = "complaints@hotline.example.com"
    message["Subject"] = subject
    if message_id:
        message["Message-ID"] = message_id
    for name, value in (headers or {}).items():
        message[name] = value
    return message.as_bytes()


def delivery_report(
    original: bytes,
    *,
    action: str = "failed",
    status: str = "5.1.1",
    recipient: str = "gone@example.net",
) -> bytes:
    """An RFC 3464 multipart/report a receiving MTA sends back about `original`."""
    from email import message_from_bytes, message_from_string
    from email.mime.message import MIMEMessage

    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = "Mail Delivery System <MAILER-DAEMON@mx.example.net>"
    report["To"] = "service@hotline.example.com"
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Message-ID"] = f"<dsn-{action}-{recipient.replace('@', '.')}@mx.example.net>"
    report["Auto-Submitted"] = "auto-replied"
    report.attach(MIMEText(f"Your message to <{recipient}> could not be delivered.", "plain"))
    status_part = message_from_string(
        "Content-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.example.net\n\n"
        f"Final-Recipient: rfc822; {recipient}\nAction: {action}\nStatus: {status}\n"
        f"Diagnostic-Code: smtp; 550 {status} user unknown\n"
    )
    report.attach(status_part)
    report.attach(MIMEMessage(message_from_bytes(original)))
    return report.as_bytes()

"""Resident mail built in code for the transport tests (real bytes, as a mail client sends them)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

_seq = itertools.count(1)


def resident_mail(
    *,
    sender: str = "陳大文 <chan.taiman@example.com>",
    to: str = "complaints@hotline.localhost",
    subject: str = "廚房漏水",
    body: str = "我家廚房漏水，請派人維修。",
    message_id: str | None = None,
    charset: str = "utf-8",
    extra: dict[str, str] | None = None,
) -> bytes:
    n = next(_seq)
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = message_id or f"<resident-{n}-{id(msg)}@example.com>"
    for name, value in (extra or {}).items():
        msg[name] = value
    msg.set_content(body, charset=charset)
    return msg.as_bytes()

"""Thin factories for the test world, with fields a test can override."""

from __future__ import annotations

import itertools
from typing import Any

from intake.contact import InboundContact

_seq = itertools.count(1)


def email_contact(**overrides: Any) -> InboundContact:
    n = next(_seq)
    fields: dict[str, Any] = {
        "channel": "email",
        "external_id": f"<msg-{n}@resident.example.com>",
        "kind": "email",
        "sender_email": "chan.taiman@example.com",
        "sender_name": "陳大文",
        "recipient": "complaints@hotline.localhost",
        "subject": "廚房漏水",
        "text": "我家廚房漏水，請派人維修。",
    }
    fields.update(overrides)
    return InboundContact(**fields)


def call_contact(**overrides: Any) -> InboundContact:
    n = next(_seq)
    fields: dict[str, Any] = {
        "channel": "voice",
        "external_id": f"CA{n:032d}",
        "kind": "call",
        "sender_phone": "+886912000001",
        "text": "電梯壞了",
        "ivr_selections": ("1",),
    }
    fields.update(overrides)
    return InboundContact(**fields)

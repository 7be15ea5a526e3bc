"""The one record every channel produces. Plain data: no Flask, Twilio or MIME types in here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from intake.constants import CHANNELS

SENDER_KINDS = ("human", "auto_reply", "bounce", "list", "own", "noreply")


@dataclass(frozen=True)
class InboundAttachment:
    filename: str
    content_type: str
    size: int
    sha256: str | None = None
    external_url: str | None = None
    external_id: str | None = None
    inline: bool = False
    content_id: str | None = None


@dataclass(frozen=True)
class InboundContact:
    """Something a resident sent or said, normalized by its channel.

    `external_id` with `channel` is the idempotency key (Message-ID, CallSid, RecordingSid...).
    `references` are external ids of earlier messages this one answers (In-Reply-To/References).
    `ticket_ref` is a ticket the channel names; `ticket_ref_trusted` says the channel verified it
    (a signed token, or a reference it issued itself, such as the call's own ticket).
    `sender_kind` is what the channel recognised: human, auto_reply, bounce, list, own, noreply;
    only humans are acknowledged. `attach_to_open_ticket` appends to the resident's latest open
    ticket instead of opening another one. `resident_id` is a resident the channel identified
    itself (an operator chose them in the console); otherwise the sender's phone or address finds
    them.
    `sender_authenticated` is the channel's verdict on the sender's identity: True (verified, e.g.
    DMARC passed at a trusted mail server), False (verification failed: the sender may be forged,
    so it is never treated as a participant — no append, no reopen) or None (not checked).
    """

    channel: str
    external_id: str
    kind: str = "message"
    sender_phone: str | None = None
    sender_email: str | None = None
    sender_name: str | None = None
    recipient: str | None = None
    subject: str | None = None
    text: str = ""
    html: str | None = None
    language_hint: str | None = None
    ivr_selections: tuple[str, ...] = ()
    category_hint: str | None = None
    priority_hint: str | None = None
    attachments: tuple[InboundAttachment, ...] = ()
    references: tuple[str, ...] = ()
    ticket_ref: str | None = None
    ticket_ref_trusted: bool = False
    sender_kind: str = "human"
    attach_to_open_ticket: bool = False
    sender_authenticated: bool | None = None
    raw_ref: str | None = None
    resident_id: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.channel not in CHANNELS:
            raise ValueError(f"unknown channel {self.channel!r}")
        if not self.external_id:
            raise ValueError("external_id is required: it is the idempotency key")
        if self.sender_kind not in SENDER_KINDS:
            raise ValueError(f"unknown sender kind {self.sender_kind!r}")

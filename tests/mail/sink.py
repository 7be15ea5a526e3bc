"""A real aiosmtpd server that plays the outgoing relay: it keeps what it is given, or refuses."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.processes import free_port


@dataclass
class Delivered:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.raw, policy=policy.default)  # type: ignore[return-value]


@dataclass
class CollectingHandler:
    delivered: list[Delivered] = field(default_factory=list)
    rcpt_reply: str | None = None
    data_reply: str | None = None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply:
            return self.data_reply
        raw = envelope.original_content or b""
        self.delivered.append(Delivered(envelope.mail_from or "", list(envelope.rcpt_tos), raw))
        return "250 2.0.0 Delivered"


@dataclass
class Sink:
    controller: Controller
    handler: CollectingHandler

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.controller.port}"

    @property
    def delivered(self) -> list[Delivered]:
        return self.handler.delivered

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Delivered]:
        deadline = time.monotonic() + timeout
        while len(self.delivered) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.delivered

    def to(self, address: str) -> list[Delivered]:
        """What was sent to `address` (department notifications go to staff, not residents)."""
        return [d for d in self.delivered if address in d.rcpt_tos]

    def stop(self) -> None:
        self.controller.stop()


def start_sink() -> Sink:
    handler = CollectingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    return Sink(controller, handler)

"""The inbound SMTP listener (`hotline smtpd`): accept complaint mail, store it, answer 250.

Recipients are checked at RCPT time (only MAIL_FROM and the configured `mail.aliases`; 550 5.1.1 for
anything else), the size is limited (552), STARTTLS is offered when SMTPD_TLS_CERT/SMTPD_TLS_KEY name
a certificate. `250` is answered only once the raw bytes and the job that will parse them are
committed; any failure answers `451 4.3.0` so the sending server keeps the message and retries
(aiosmtpd's default for an exception is a permanent 500, which would bounce a resident's mail).
Parsing happens later in a worker: acknowledge fast, parse later.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from intake.config import ConfigError, Settings
from intake.metrics import smtp_answer
from intake.phones import normalize_email
from mail.auth import check_sender
from mail.health import report
from mail.store import max_message_bytes, store_message
from mail.threads import verp_outgoing_id

log = logging.getLogger(__name__)

TEMPORARY_FAILURE = "451 4.3.0 Temporary failure, please try again later"
SMTP_HEALTH = "smtp"


def accepted_addresses(settings: Settings) -> frozenset[str]:
    from email.utils import parseaddr

    addresses = [parseaddr(settings.mail_from)[1] or settings.mail_from]
    addresses += list(settings.config.mail.aliases)
    return frozenset(filter(None, (normalize_email(a) for a in addresses)))


def tls_context_from_env() -> ssl.SSLContext | None:
    """A server context when SMTPD_TLS_CERT (and SMTPD_TLS_KEY, unless the cert file holds it) is set."""
    cert = os.environ.get("SMTPD_TLS_CERT")
    key = os.environ.get("SMTPD_TLS_KEY") or None
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"SMTPD_TLS_CERT: expected a readable PEM certificate and key, got {cert!r} ({exc})"
        ) from None
    return context


class LenientSMTP(SMTP):
    """RFC 5321 caps lines at 1000 octets, but aiosmtpd answers a longer one with a permanent 500,
    which would bounce a resident's mail from a sloppy client: accept up to 64 KiB per line."""

    line_length_limit = 64 * 1024


class ComplaintController(Controller):
    def factory(self) -> SMTP:
        return LenientSMTP(self.handler, **self.SMTP_kwargs)


class ComplaintHandler:
    """aiosmtpd handler: validate at the edge, store durably, then say 250."""

    def __init__(
        self,
        sessions: sessionmaker[DbSession],
        settings: Settings,
        *,
        dnsfunc: Callable[..., Any] | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.accepted = accepted_addresses(settings)
        self.max_bytes = max_message_bytes(settings.config)
        self.authserv_id = settings.config.mail.own_authserv_id
        self.dnsfunc = dnsfunc  # tests answer DNS themselves
        # Health (`smtp` in channel_health, for the health page and alerts): written when storing
        # starts failing and when it works again, not on every message.
        self.failing = False

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if (
            normalize_email(address) not in self.accepted
            and verp_outgoing_id(self.settings, address) is None
        ):
            return smtp_answer("550 5.1.1 Recipient rejected: no such mailbox here")
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        if len(raw) > self.max_bytes:
            return smtp_answer("552 5.3.4 Message too big for this mailbox")
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        try:
            if self.authserv_id is not None:
                raw = await asyncio.get_running_loop().run_in_executor(
                    None, self._checked, raw, envelope.mail_from or "", session.host_name, peer
                )
            raw_id = await asyncio.get_running_loop().run_in_executor(
                None, self._store, raw, envelope.mail_from, list(envelope.rcpt_tos), peer
            )
        except Exception as exc:
            log.exception("could not store mail from %s; answered 451", envelope.mail_from)
            self.failing = True
            error = f"{type(exc).__name__}: {exc}"
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: report(self.sessions, SMTP_HEALTH, "refusing", error=error)
            )
            return smtp_answer(TEMPORARY_FAILURE)
        if self.failing:
            self.failing = False
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: report(self.sessions, SMTP_HEALTH, "ok")
            )
        return smtp_answer(f"250 2.0.0 Queued as {raw_id}")

    def _checked(self, raw: bytes, mail_from: str, helo: str | None, peer: str) -> bytes:
        """The message with our SPF/DKIM/DMARC verdict on top (`mail.verify_senders`)."""
        assert self.authserv_id is not None
        results = check_sender(
            raw,
            authserv_id=self.authserv_id,
            peer_ip=peer,
            mail_from=envelope_text(mail_from),
            helo=envelope_text(helo or ""),
            dnsfunc=self.dnsfunc,
        )
        return f"Authentication-Results: {results}\r\n".encode() + raw

    def _store(self, raw: bytes, mail_from: str | None, rcpt_tos: list[str], peer: str) -> int:
        with self.sessions() as db:
            stored = store_message(
                db,
                raw,
                source="smtp",
                envelope_from=envelope_text(mail_from or ""),
                envelope_to=[envelope_text(to) for to in rcpt_tos],
            )
            db.commit()
        log.info(
            "stored mail %s from %s via %s", stored.raw_id, envelope_text(mail_from or ""), peer
        )
        return stored.raw_id

    async def handle_exception(self, error: Exception) -> str:
        log.error("SMTP session failed (%s: %s); answered 451", type(error).__name__, error)
        return smtp_answer(TEMPORARY_FAILURE)


def envelope_text(address: str) -> str:
    """An envelope address as the database can keep it: a NUL, other control characters or bytes
    that were not UTF-8 (kept by the SMTP server as surrogates) become U+FFFD. Storing must not
    fail on them: a 451 would be answered on every retry and the mail finally bounced."""
    text = address.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return "".join("\ufffd" if ord(c) < 32 or ord(c) == 127 else c for c in text)


class WritableEnvelopeText(logging.Filter):
    """aiosmtpd logs each sender and recipient as it decoded them, with surrogates for bytes that
    were not UTF-8; a UTF-8 log stream cannot write those, so they are logged as U+FFFD."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                envelope_text(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


@dataclass
class Listener:
    controller: Controller
    handler: ComplaintHandler

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def stop(self) -> None:
        self.controller.stop()


def start_listener(
    sessions: sessionmaker[DbSession],
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    tls_context: ssl.SSLContext | None = None,
    dnsfunc: Callable[..., Any] | None = None,
    **smtp_options: Any,
) -> Listener:
    """Start the listener in a background thread (what `hotline smtpd` and the tests run)."""
    aiosmtpd_log = logging.getLogger("mail.log")
    if not any(isinstance(f, WritableEnvelopeText) for f in aiosmtpd_log.filters):
        aiosmtpd_log.addFilter(WritableEnvelopeText())
    handler = ComplaintHandler(sessions, settings, dnsfunc=dnsfunc)
    context = tls_context if tls_context is not None else tls_context_from_env()
    controller = ComplaintController(
        handler,
        hostname=host or settings.smtpd_host,
        port=port if port is not None else settings.smtpd_port,
        data_size_limit=handler.max_bytes,
        enable_SMTPUTF8=True,
        tls_context=context,
        require_starttls=False,
        ident="Hotline complaint mailbox",
        **smtp_options,
    )
    controller.start()
    return Listener(controller, handler)

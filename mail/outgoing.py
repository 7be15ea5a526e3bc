"""Outgoing mail: one `OutgoingMessage` row becomes one RFC 5322 message, sent once.

With `SMTP_URL` the message goes to that relay (`smtp://` upgrades with STARTTLS when offered,
`smtps://` is TLS from the start); without it the message is kept in the local outbox
(`hotline outbox list`). Either way it lands on the ticket's timeline as an outbound interaction
whose external id is our signed Message-ID, so a resident's reply threads back to the ticket.
A 4xx answer or a lost connection raises (the job is retried); a 5xx answer marks the message
failed with the relay's words, for an operator to see.
"""

from __future__ import annotations

import html
import logging
import smtplib
import ssl
from dataclasses import dataclass
from datetime import timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from intake.config import Settings
from intake.db import rowcount
from intake.models import ContactPoint, Interaction, OutgoingMessage, Ticket, utcnow
from intake.tickets import enqueue_after_commit, record_event

log = logging.getLogger(__name__)

SMTP_TIMEOUT_SECONDS = 30.0
# A claim's lease: longer than the send job's timeout (worker/outbox.JOB_TIMEOUTS, 60 s), so a
# job that still holds it is still running; once it lapses the worker is dead and the row may be
# claimed again (`_claim`), by the retry `retry_after_lease` queues or by the housekeeping sweep.
SENDING_LEASE = timedelta(seconds=90)
MAX_REFERENCES = 20
FINAL_STATUSES = ("sent", "kept", "failed", "undeliverable")
_HEADER_NAME = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-"


class TransientSendError(Exception):
    """The relay or the network said "later": the job raises so it is retried."""


class PermanentSendError(Exception):
    """The relay refused the message for good (5xx)."""


@dataclass(frozen=True)
class Relay:
    host: str
    port: int
    implicit_tls: bool
    username: str | None
    password: str | None
    verify_tls: bool

    @classmethod
    def from_url(cls, url: str) -> Relay:
        parts = urlsplit(url)
        implicit = parts.scheme == "smtps"
        query = parse_qs(parts.query)
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or (465 if implicit else 587),
            implicit_tls=implicit,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            verify_tls=query.get("verify", ["true"])[0].lower() not in ("false", "0", "no"),
        )

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def deliver(relay: Relay, message: EmailMessage, sender: str, recipients: list[str]) -> str:
    """Hand `message` to the relay; returns a note on refused recipients (if some were)."""
    try:
        client: smtplib.SMTP
        if relay.implicit_tls:
            client = smtplib.SMTP_SSL(
                relay.host, relay.port, timeout=SMTP_TIMEOUT_SECONDS, context=relay.tls_context()
            )
        else:
            client = smtplib.SMTP(relay.host, relay.port, timeout=SMTP_TIMEOUT_SECONDS)
        with client:
            client.ehlo()
            if not relay.implicit_tls and client.has_extn("starttls"):
                client.starttls(context=relay.tls_context())
                client.ehlo()
            if relay.username:
                client.login(relay.username, relay.password or "")
            refused = client.send_message(message, from_addr=sender, to_addrs=recipients)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        detail = "; ".join(
            f"{rcpt}: {code} {text.decode('utf-8', 'replace') if isinstance(text, bytes) else text}"
            for rcpt, (code, text) in exc.recipients.items()
        )
        if all(code >= 500 for code in codes):
            raise PermanentSendError(detail) from exc
        raise TransientSendError(detail) from exc
    except smtplib.SMTPAuthenticationError as exc:
        raise TransientSendError(f"relay login failed: {exc.smtp_code} {_text(exc)}") from exc
    except smtplib.SMTPResponseException as exc:
        text = f"{exc.smtp_code} {_text(exc)}"
        if 500 <= exc.smtp_code < 600:
            raise PermanentSendError(text) from exc
        raise TransientSendError(text) from exc
    except (TimeoutError, smtplib.SMTPException, OSError) as exc:
        raise TransientSendError(f"{type(exc).__name__}: {exc}") from exc
    if refused:
        return "; ".join(f"{rcpt}: {code}" for rcpt, (code, _) in refused.items())
    return ""


def _text(exc: smtplib.SMTPResponseException) -> str:
    error = exc.smtp_error
    return error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)


def _plain_to_html(text: str) -> str:
    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n")]
    body = "".join(
        "<p>" + "<br>\n".join(html.escape(line) for line in p.split("\n")) + "</p>\n"
        for p in paragraphs
        if p.strip()
    )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head><body>\n{body}</body></html>\n'
    )


def _references(session: Session, msg: OutgoingMessage) -> list[str]:
    """RFC 5322 §3.6.4: the parent's references (or its In-Reply-To), then the parent itself."""
    chain: list[str] = []
    if msg.references:
        chain = msg.references.split()
    elif msg.in_reply_to:
        parent_meta = session.scalar(
            select(Interaction.meta).where(
                Interaction.channel == "email", Interaction.external_id == msg.in_reply_to
            )
        )
        chain = [str(r) for r in (parent_meta or {}).get("references") or []]
    if msg.in_reply_to and msg.in_reply_to not in chain:
        chain.append(msg.in_reply_to)
    if len(chain) > MAX_REFERENCES:
        chain = chain[:1] + chain[-(MAX_REFERENCES - 1) :]
    return chain


def is_automatic(msg: OutgoingMessage) -> bool:
    """Acknowledgements and templated notices are automatic; an operator's own words (even from a
    canned phrase) and an API client's message are not."""
    headers = msg.headers or {}
    if headers.get("automatic") is not None:
        return bool(headers["automatic"])
    if headers.get("operator") or headers.get("api_client"):
        return False
    return msg.template is not None


def one_line(value: str | None) -> str:
    """A header value on one line: CR, LF and other control characters (a resident's encoded
    subject, an API client's `subject`) folded into single spaces."""
    text = "".join(" " if not ch.isprintable() else ch for ch in value or "")
    return " ".join(text.split())


def build_email(
    session: Session, msg: OutgoingMessage, ticket: Ticket | None, settings: Settings
) -> EmailMessage:
    """The message exactly as it will be sent (also what is kept when no relay is configured)."""
    from mail.threads import make_body_marker

    config = settings.config
    language = ticket.language if ticket is not None else config.default_language
    sender = parseaddr(settings.mail_from)[1] or settings.mail_from
    local, _, domain = sender.partition("@")
    email = EmailMessage(policy=SMTP)
    email["From"] = Address(config.company(language), local, domain)
    email["To"] = one_line(msg.to)
    subject = one_line(msg.subject)
    if ticket is not None and ticket.ref and f"[{ticket.ref}]" not in subject:
        subject = f"{subject} [{ticket.ref}]".strip()
    email["Subject"] = subject
    email["Date"] = format_datetime(utcnow())
    email["Message-ID"] = msg.message_id
    if msg.in_reply_to:
        email["In-Reply-To"] = msg.in_reply_to
    references = _references(session, msg)
    if references:
        email["References"] = " ".join(references)
    if is_automatic(msg):
        email["Auto-Submitted"] = "auto-replied" if msg.in_reply_to else "auto-generated"
        email["X-Auto-Response-Suppress"] = "All"
        email["Precedence"] = "auto_reply" if msg.in_reply_to else "bulk"
    email["X-Loop"] = sender
    for name, value in (msg.headers or {}).items():
        if (
            isinstance(value, str)
            and name[:1].isupper()
            and all(c in _HEADER_NAME for c in name)
            and name not in email
        ):
            email[name] = one_line(value)
    text = msg.body_text or ""
    body_html = msg.body_html or _plain_to_html(text)
    if ticket is not None and ticket.ref:
        marker = make_body_marker(settings, ticket.ref)
        text = f"{text.rstrip()}\n\n{marker}\n"
        marker_html = f'<p style="color:#999;font-size:small">{html.escape(marker)}</p>'
        body_html = (
            body_html.replace("</body>", marker_html + "</body>", 1)
            if "</body>" in body_html
            else body_html + marker_html
        )
    email.set_content(text, charset="utf-8", cte="base64")
    email.add_alternative(body_html, subtype="html", charset="utf-8", cte="base64")
    return email


def _message_id(settings: Settings, ticket: Ticket | None, outgoing_id: int) -> str:
    from mail.threads import mail_domain, make_message_id

    if ticket is not None and ticket.ref:
        return make_message_id(settings, ticket.ref, outgoing_id)
    return make_msgid(idstring=f"hl.out.{outgoing_id}", domain=mail_domain(settings)).lower()


def claim_for_sending(
    session: Session, outgoing_id: int, *, channel: str = "email", lease: timedelta = SENDING_LEASE
) -> bool:
    """queued → sending, or a `sending` whose lease lapsed (its worker died); `sent_at` holds the
    lease. Email and SMS rows are claimed the same way."""
    now = utcnow()
    claimed = rowcount(
        session.execute(
            update(OutgoingMessage)
            .where(
                OutgoingMessage.id == outgoing_id,
                OutgoingMessage.channel == channel,
                or_(
                    OutgoingMessage.status == "queued",
                    and_(
                        OutgoingMessage.status == "sending",
                        or_(
                            OutgoingMessage.sent_at.is_(None),
                            OutgoingMessage.sent_at < now - lease,
                        ),
                    ),
                ),
            )
            .values(status="sending", sent_at=now, attempts=OutgoingMessage.attempts + 1)
            .execution_options(synchronize_session=False)
        )
    )
    session.commit()
    return bool(claimed)


def retry_after_lease(
    session: Session, outgoing_id: int, job: str, lease: timedelta, queue: str = "default"
) -> str:
    """Another claim holds the row: never send within its lease, but do not let the row hang on
    a worker that may be dead. A `job` run is queued for the moment the lease lapses (once per
    claim: the dedupe key names the claim); if the holder finishes first, that run finds the row
    final and does nothing, and if it died, that run takes the row over."""
    session.rollback()
    msg = session.get(OutgoingMessage, outgoing_id, populate_existing=True)
    if msg is None or msg.status != "sending":
        return f"already {msg.status if msg else 'gone'}"
    claimed_at = msg.sent_at
    stamp = int(claimed_at.timestamp()) if claimed_at else 0
    expires = (claimed_at or utcnow()) + lease
    enqueue_after_commit(
        session,
        job,
        queue=queue,
        dedupe_key=f"lease:{outgoing_id}:{stamp}",
        available_at=expires + timedelta(seconds=1),
        outgoing_id=outgoing_id,
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()  # this claim's retry is already queued
    return f"being sent elsewhere; tried again after {expires:%H:%M:%S}"


def _on_timeline(
    session: Session, msg: OutgoingMessage, ticket: Ticket | None, settings: Settings
) -> None:
    if ticket is None or msg.interaction_id is not None or not msg.message_id:
        return
    existing = session.scalar(
        select(Interaction.id).where(
            Interaction.channel == "email", Interaction.external_id == msg.message_id
        )
    )
    if existing is None:
        interaction = Interaction(
            ticket_id=ticket.id,
            kind="email",
            direction="out",
            channel="email",
            external_id=msg.message_id,
            sender=parseaddr(settings.mail_from)[1] or settings.mail_from,
            recipient=msg.to,
            subject=msg.subject,
            body_text=msg.body_text or "",
            body_html=msg.body_html,
            language=ticket.language,
            meta={
                "outgoing_id": msg.id,
                "delivery": msg.status,
                "template": msg.template,
                "automatic": is_automatic(msg),
                "in_reply_to": msg.in_reply_to,
            },
            created_at=utcnow(),
        )
        session.add(interaction)
        session.flush()
        existing = interaction.id
    msg.interaction_id = existing


def _recipients(msg: OutgoingMessage) -> list[str]:
    """The valid addresses in `to`; any invalid one makes the whole list unusable."""
    from intake.phones import normalize_email

    pairs = getaddresses([one_line(msg.to)])
    found = [normalize_email(addr) for _, addr in pairs]
    if not found or any(addr is None for addr in found):
        return []
    return list(dict.fromkeys(a for a in found if a))


def send_email(outgoing_id: int) -> str:
    """RQ job: send (or keep) one outgoing email once, even if the job runs twice."""
    from intake.config import get_settings
    from intake.db import session_factory

    current = get_settings()
    return send_outgoing(session_factory(current.database_url), current, outgoing_id)


def send_outgoing(sessions: Any, settings: Settings, outgoing_id: int) -> str:
    """Send (or keep) one outgoing email. The envelope sender is the message's own VERP address
    (`mail.threads.make_verp_address`), so its bounce names it with our signature."""
    from mail.threads import make_verp_address

    with sessions() as session:
        msg = session.get(OutgoingMessage, outgoing_id)
        if msg is None or msg.channel != "email":
            return "no such email"
        if msg.status in FINAL_STATUSES:
            return f"already {msg.status}"
        if not claim_for_sending(session, outgoing_id):
            return retry_after_lease(session, outgoing_id, "send_email", SENDING_LEASE)
        session.refresh(msg)
        ticket = session.get(Ticket, msg.ticket_id) if msg.ticket_id else None
        if not msg.message_id:
            msg.message_id = _message_id(settings, ticket, msg.id)
            session.commit()
        recipients = _recipients(msg)
        email: EmailMessage | None = None
        error = None
        if not recipients:
            error = f"no usable address in {msg.to!r}"
        elif is_automatic(msg) and len(recipients) != 1:
            error = f"automatic mail goes to exactly one recipient, not {msg.to!r}"
        else:
            try:
                email = build_email(session, msg, ticket, settings)
            except Exception as exc:  # never leave the row in `sending`: say why it failed
                log.exception("email %s cannot be built", outgoing_id)
                error = f"cannot be built: {type(exc).__name__}: {exc}"
        if email is None:
            outcome = "failed"
        elif not settings.smtp_url:
            outcome, error = "kept", None
        else:
            try:
                envelope_from = make_verp_address(settings, msg.id)
                note = deliver(Relay.from_url(settings.smtp_url), email, envelope_from, recipients)
                outcome, error = "sent", (f"refused: {note}" if note else None)
            except PermanentSendError as exc:
                outcome, error = "failed", str(exc)
            except TransientSendError as exc:
                msg.status, msg.error, msg.sent_at = "queued", str(exc), None
                session.commit()
                log.warning("email %s not sent yet: %s", outgoing_id, exc)
                raise
        msg.status, msg.error = outcome, error
        msg.sent_at = utcnow() if outcome == "sent" else None
        references = email["References"] if email is not None else None
        msg.headers = {
            **(msg.headers or {}),
            "Message-ID": msg.message_id,
            **({"References": str(references)} if references else {}),
        }
        _on_timeline(session, msg, ticket, settings)
        if ticket is not None and outcome == "failed":
            record_event(
                session,
                ticket,
                "email_failed",
                f"email to {msg.to} was refused: {error}",
                outgoing_id=msg.id,
            )
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return "already recorded"
        return f"{outcome} {msg.message_id}" + (f" ({error})" if error else "")


def record_bounce(
    session: Session, settings: Settings, bounce: Any, ticket_id: int | None = None
) -> str | None:
    """A bounce of our mail: the outgoing message is undeliverable, the address unreachable.

    `bounce` is what the parser found (`meta["bounce"]`): the original Message-ID (a string, or a
    mapping with `original_message_id`, optional `action`, `status`, `recipients`, `diagnostic`).
    A delayed notice (`action: delayed`) is not a failure. Runs in the caller's transaction.

    `verp_outgoing_id` (the bounce came back to that message's signed envelope sender) names the
    message with authority. Otherwise a failed recipient counts only when the message was really
    sent to it: anyone can write a report quoting a Message-ID they received themselves.
    """
    from mail.threads import normalize_message_id, outgoing_id_of

    info: dict[str, Any] = bounce if isinstance(bounce, dict) else {"original_message_id": bounce}
    if info.get("failed") is False or str(info.get("action") or "").lower() in (
        "delayed",
        "relayed",
        "delivered",
        "expanded",
    ):
        return None
    original = normalize_message_id(info.get("original_message_id") or info.get("message_id") or "")
    verp_id = info.get("verp_outgoing_id")
    msg = session.get(OutgoingMessage, int(verp_id)) if isinstance(verp_id, int) else None
    if msg is None and not original:
        return None
    if msg is None:
        msg = session.scalar(select(OutgoingMessage).where(OutgoingMessage.message_id == original))
    if msg is None:
        own_id = outgoing_id_of(settings, original)
        if own_id and own_id.isdigit():
            msg = session.get(OutgoingMessage, int(own_id))
    if msg is None:
        return None
    reason = (
        " ".join(str(info[k]) for k in ("status", "diagnostic") if info.get(k))
        or "returned as undeliverable"
    )
    from intake.phones import normalize_email

    sent_to = _recipients(msg)
    named = [*(info.get("recipients") or []), info.get("recipient")]
    failed = [a for a in (normalize_email(str(r)) for r in named if r) if a]
    # A report names the recipient that failed; it counts only for an address this message was
    # really sent to (anyone can write a DSN quoting a Message-ID they received themselves).
    addresses = [a for a in dict.fromkeys(failed) if a in sent_to] if failed else sent_to
    if msg is not None and verp_id == msg.id and not addresses:
        addresses = sent_to  # came back to the message's own signed envelope sender: authentic
    if not addresses:
        log.warning(
            "ignored a bounce of %s for %s: not a recipient of that message", original, failed
        )
        return None
    changed = msg.status != "undeliverable"
    msg.status, msg.error = "undeliverable", reason[:2000]
    for point in session.scalars(
        select(ContactPoint).where(ContactPoint.kind == "email", ContactPoint.value.in_(addresses))
    ):
        point.unreachable, point.unreachable_reason = True, reason[:2000]
    ticket = session.get(Ticket, msg.ticket_id) if msg.ticket_id else None
    if ticket is not None and changed:
        record_event(
            session,
            ticket,
            "email_bounced",
            f"email to {', '.join(addresses)} could not be delivered: {reason}",
            outgoing_id=msg.id,
            bounce_ticket_id=ticket_id,
        )
    return original or msg.message_id

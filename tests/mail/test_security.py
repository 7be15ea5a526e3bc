"""Issue 12, mail items: each case as an attacker (or a bad night) sent it, on SQLite and
PostgreSQL through the real parser, the core and the outgoing side."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from intake.models import ContactPoint, Interaction, OutgoingMessage, Ticket
from intake.phones import normalize_email, plausible_name
from intake.service import receive
from mail.charsets import decode_bytes
from mail.contact import message_to_contact
from mail.outgoing import record_bounce, send_outgoing
from mail.parse import parse_message
from mail.threads import make_message_id
from worker import replies

PHISH_FROM = (
    '"a@victim.example, b@victim.example" (Your refund is ready: http://phish.example/claim)'
)


def _mail(sender: str, *, subject: str = "Lift broken", extra: str = "", body: str = "") -> bytes:
    return (
        f"From: {sender}\r\nTo: complaints@hotline.localhost\r\nSubject: {subject}\r\n"
        f"Message-ID: <m-{abs(hash((sender, subject, extra))) % 10**9}@example.com>\r\n{extra}"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{body or 'The lift in block C is stuck.'}\r\n"
    ).encode()


# --- item 1: one sender, one recipient, no chosen words in the greeting -------------------------


def test_a_quoted_list_of_addresses_is_no_sender_at_all() -> None:
    parsed = parse_message(_mail(PHISH_FROM))
    assert parsed.from_email is None
    assert parsed.from_name is None


@pytest.mark.parametrize(
    "raw",
    [
        "a@victim.example, b@victim.example",
        '"a@x.example, b@y.example"',
        "a@x.example b@y.example",
        "a@@x.example",
        "a@x..example",
        "a@x.example;b@y.example",
        '"quoted"@x.example',
        "a@x.example>",
        "no-at-sign",
        "a@-x.example",
    ],
)
def test_normalize_email_takes_one_mailbox_or_nothing(raw: str) -> None:
    assert normalize_email(raw) is None


def test_normalize_email_keeps_real_addresses() -> None:
    assert normalize_email(" Chan.TaiMan+leak@Example.COM ") == "chan.taiman+leak@example.com"
    assert normalize_email("<w@example.cn>") == "w@example.cn"
    assert normalize_email("o'brien@example.ie") == "o'brien@example.ie"


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("陳大文", True),
        ("Emily Carter", True),
        ("O'Brien, Seán", True),
        ("Your refund is ready: http://phish.example/claim", False),
        ("www.phish.example", False),
        ("a@victim.example", False),
        ("Call 0912345678 now", False),
        ("x" * 120, False),
        ("", False),
    ],
)
def test_only_a_name_that_looks_like_a_name_is_kept(name: str, kept: bool) -> None:
    assert (plausible_name(name) is not None) is kept


def test_the_phishing_from_gets_no_acknowledgement_to_anyone(demo, sessions) -> None:
    contact = message_to_contact(_mail(PHISH_FROM), settings=demo, source="smtp")
    assert contact.sender_email is None
    assert contact.sender_name is None
    receipt = receive(sessions, contact, demo.config)
    with sessions() as s:
        assert s.get(Ticket, receipt.ticket_id).contact_email is None


def test_a_display_name_with_a_link_never_reaches_the_greeting(demo, sessions, monkeypatch):
    monkeypatch.setattr(replies, "enqueue_after_commit", lambda *a, **k: None)
    raw = _mail('"Your refund is ready: http://phish.example/claim" <victim@example.org>')
    contact = message_to_contact(raw, settings=demo, source="smtp")
    assert contact.sender_email == "victim@example.org"
    assert contact.sender_name is None
    receipt = receive(sessions, contact, demo.config)
    replies.acknowledge(receipt.ticket_id, receipt.interaction_id)
    with sessions() as s:
        [ack] = s.scalars(select(OutgoingMessage)).all()
    assert ack.to == "victim@example.org"
    assert "phish" not in (ack.body_text or "")


def _outgoing(sessions, **fields) -> int:  # type: ignore[no-untyped-def]
    with sessions() as s:
        ticket = s.scalars(select(Ticket)).first()
        values = {
            "ticket_id": ticket.id if ticket else None,
            "channel": "email",
            "to": "chan.taiman@example.com",
            "subject": "Your complaint",
            "body_text": "Received.",
            "status": "queued",
            "headers": {"automatic": True},
            "template": "ack_email",
        }
        values.update(fields)
        msg = OutgoingMessage(**values)
        s.add(msg)
        s.commit()
        return msg.id


def test_an_automatic_message_goes_to_exactly_one_recipient(demo, sessions) -> None:
    receive(
        sessions,
        message_to_contact(_mail("chan.taiman@example.com"), settings=demo, source="smtp"),
        demo.config,
    )
    two = _outgoing(sessions, to="a@victim.example, b@victim.example")
    send_outgoing(sessions, demo, two)
    with sessions() as s:
        msg = s.get(OutgoingMessage, two)
        assert msg.status == "failed" and "one recipient" in (msg.error or "")


def test_the_hourly_limit_counts_real_recipients(demo, sessions, monkeypatch) -> None:
    """Old rows (or any path) holding "victim, other" still count against the victim."""
    monkeypatch.setattr(replies, "enqueue_after_commit", lambda *a, **k: None)
    for n in range(3):
        _outgoing(sessions, to=f"victim@example.org, other{n}@example.org", ticket_id=None)
    contact = message_to_contact(_mail("victim@example.org"), settings=demo, source="smtp")
    receipt = receive(sessions, contact, demo.config)
    result = replies.acknowledge(receipt.ticket_id, receipt.interaction_id)
    assert result.startswith("not acknowledged"), result


# --- item 3: a bounce counts only for a recipient the message was sent to ------------------------


def test_a_forged_bounce_cannot_mark_someone_elses_address(demo, sessions) -> None:
    with sessions() as s:
        neighbour = s.scalars(
            select(ContactPoint.value).where(ContactPoint.kind == "email").limit(1)
        ).one()
    receive(
        sessions,
        message_to_contact(_mail("attacker@example.com"), settings=demo, source="smtp"),
        demo.config,
    )
    out = _outgoing(sessions, to="attacker@example.com", status="sent")
    with sessions() as s:
        msg = s.get(OutgoingMessage, out)
        msg.message_id = make_message_id(demo, s.get(Ticket, msg.ticket_id).ref, out)
        s.commit()
        forged = {
            "original_message_id": msg.message_id,
            "recipient": neighbour,
            "status": "5.1.1",
            "failed": True,
        }
        assert record_bounce(s, demo, forged) is None
        s.commit()
    with sessions() as s:
        point = s.scalars(select(ContactPoint).where(ContactPoint.value == neighbour)).one()
        assert not point.unreachable
        assert s.get(OutgoingMessage, out).status == "sent"


# --- item 9: a CR/LF in a subject never leaves a row in `sending` --------------------------------


def test_a_subject_with_a_line_break_is_folded_and_sent(demo, sessions) -> None:
    receive(
        sessions,
        message_to_contact(_mail("chan.taiman@example.com"), settings=demo, source="smtp"),
        demo.config,
    )
    out = _outgoing(sessions, subject="Leak\r\nBcc: everyone@example.org", template=None)
    send_outgoing(sessions, demo, out)
    with sessions() as s:
        msg = s.get(OutgoingMessage, out)
        assert msg.status == "kept", msg.error


def test_a_message_that_cannot_be_built_fails_with_its_reason(demo, sessions, monkeypatch):
    import mail.outgoing

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise ValueError("cannot build this")

    monkeypatch.setattr(mail.outgoing, "build_email", broken)
    out = _outgoing(sessions, ticket_id=None)
    send_outgoing(sessions, demo, out)
    with sessions() as s:
        msg = s.get(OutgoingMessage, out)
        assert msg.status == "failed" and "cannot build this" in (msg.error or "")


def test_a_residents_subject_with_an_encoded_line_break_is_acknowledged(
    demo, sessions, monkeypatch
) -> None:
    monkeypatch.setattr(replies, "enqueue_after_commit", lambda *a, **k: None)
    raw = _mail("chan.taiman@example.com", subject="=?utf-8?q?Leak=0D=0ABcc=3A_x=40y=2Eexample?=")
    receipt = receive(sessions, message_to_contact(raw, settings=demo, source="smtp"), demo.config)
    with sessions() as s:
        subject = s.get(Ticket, receipt.ticket_id).subject
    assert "\n" in subject
    out = _outgoing(sessions, subject=subject, template=None)
    send_outgoing(sessions, demo, out)
    with sessions() as s:
        assert s.get(OutgoingMessage, out).status == "kept"


# --- item 10: any decode failure falls back, never quarantines ----------------------------------


@pytest.mark.parametrize("label", ["punycode", "idna", "base64", "rot13", "unicode_escape"])
def test_a_strange_charset_label_falls_back(label: str) -> None:
    text, _ = decode_bytes(b"Hello, my kitchen is leaking-badly.", label)
    assert text == "Hello, my kitchen is leaking-badly."


def test_a_punycode_message_is_read_not_quarantined(demo) -> None:
    raw = _mail("chan.taiman@example.com").replace(b"charset=utf-8", b"charset=punycode")
    contact = message_to_contact(raw, settings=demo, source="smtp")
    assert "lift in block C" in contact.text


# --- item 4: a trusted Authentication-Results decides whether the From is believed --------------

TRUSTED = "mx.hotline.localhost"


@pytest.mark.parametrize(
    ("results", "verified"),
    [
        (f"{TRUSTED}; dmarc=fail (p=reject) header.from=example.com", False),
        (f"{TRUSTED}; spf=pass smtp.mailfrom=spammer.example; dkim=none", False),
        (f"{TRUSTED}; spf=fail smtp.mailfrom=example.com; dkim=pass header.d=evil.example", False),
        (f"{TRUSTED}; dmarc=pass header.from=example.com", True),
        (f"{TRUSTED}; spf=pass smtp.mailfrom=bounces.example.com", True),
        (f"{TRUSTED} 1; dkim=pass (2048-bit key) header.d=example.com header.s=s1", True),
        (f"{TRUSTED}; dmarc=temperror", None),
        (f"{TRUSTED}; none", None),
        ("mx.attacker.example; dmarc=pass header.from=example.com", None),
    ],
)
def test_the_trusted_servers_verdict_is_carried_in_the_contact(
    demo, monkeypatch, results: str, verified: bool | None
) -> None:
    monkeypatch.setattr(demo.config.mail, "trusted_authserv_id", TRUSTED)
    raw = _mail("chan.taiman@example.com", extra=f"Authentication-Results: {results}\r\n")
    contact = message_to_contact(raw, settings=demo, source="smtp")
    assert contact.sender_authenticated is verified


def test_only_the_topmost_trusted_header_counts(demo, monkeypatch) -> None:
    """A sender's own header claiming our server's id sits below the one our server added."""
    monkeypatch.setattr(demo.config.mail, "trusted_authserv_id", [TRUSTED])
    extra = (
        f"Authentication-Results: {TRUSTED}; dmarc=fail header.from=example.com\r\n"
        f"Authentication-Results: {TRUSTED}; dmarc=pass header.from=example.com\r\n"
    )
    contact = message_to_contact(
        _mail("chan.taiman@example.com", extra=extra), settings=demo, source="smtp"
    )
    assert contact.sender_authenticated is False
    assert contact.meta["authentication"]["reason"] == "dmarc=fail"


def test_without_the_setting_nothing_is_judged(demo) -> None:
    extra = f"Authentication-Results: {TRUSTED}; dmarc=fail header.from=example.com\r\n"
    contact = message_to_contact(
        _mail("chan.taiman@example.com", extra=extra), settings=demo, source="smtp"
    )
    assert contact.sender_authenticated is None


def test_a_spoofed_reply_gets_a_new_linked_ticket(demo, sessions, monkeypatch) -> None:
    monkeypatch.setattr(demo.config.mail, "trusted_authserv_id", TRUSTED)
    first = _mail("chan.taiman@example.com", subject="Leak")
    opened = receive(sessions, message_to_contact(first, settings=demo, source="smtp"), demo.config)
    ours = make_message_id(demo, opened.ticket_ref, 1)
    extra = (
        f"Authentication-Results: {TRUSTED}; dmarc=fail header.from=example.com\r\n"
        f"In-Reply-To: {ours}\r\nReferences: {ours}\r\n"
    )
    spoofed = _mail(
        "chan.taiman@example.com", subject=f"Re: Leak [{opened.ticket_ref}]", extra=extra
    )
    receipt = receive(
        sessions, message_to_contact(spoofed, settings=demo, source="smtp"), demo.config
    )
    assert receipt.created_ticket and receipt.linked_to == opened.ticket_ref


# --- item 2 through the parser: the stranger's signed id and the neighbour's Message-ID ---------


def test_a_stranger_cannot_borrow_a_neighbours_message_id(demo, sessions) -> None:
    neighbour = _mail("chan.taiman@example.com", subject="Neighbour's leak")
    theirs = receive(
        sessions, message_to_contact(neighbour, settings=demo, source="smtp"), demo.config
    )
    own = _mail("stranger@example.net", subject="My own complaint")
    mine = receive(sessions, message_to_contact(own, settings=demo, source="smtp"), demo.config)
    signed = make_message_id(demo, mine.ticket_ref, 7)
    with sessions() as s:
        neighbour_id = s.scalars(
            select(Interaction.external_id).where(Interaction.ticket_id == theirs.ticket_id)
        ).one()
    extra = f"In-Reply-To: {signed}\r\nReferences: {signed} {neighbour_id}\r\n"
    sneaky = _mail("stranger@example.net", subject="Re: hello", extra=extra)
    receipt = receive(
        sessions, message_to_contact(sneaky, settings=demo, source="smtp"), demo.config
    )
    assert receipt.ticket_id == mine.ticket_id
    with sessions() as s:
        count = s.scalar(
            select(func.count())
            .select_from(Interaction)
            .where(Interaction.ticket_id == theirs.ticket_id)
        )
    assert count == 1

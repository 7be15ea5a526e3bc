"""Outgoing mail and acknowledgements, with a real aiosmtpd relay sink and the real SMTP listener."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from intake.config import get_settings
from intake.models import (
    ChannelHealth,
    ContactPoint,
    Event,
    Interaction,
    OutgoingMessage,
    RawMessage,
    Ticket,
)
from mail.outgoing import TransientSendError, send_outgoing
from mail.smtpd import Listener, start_listener
from mail.threads import verify_message_id, verp_outgoing_id
from tests.mail.mailmaker import resident_mail
from tests.processes import free_port
from worker.runner import drain

ADDRESS = "complaints@hotline.localhost"
ACK = OutgoingMessage.template == "ack_email"


def count(sessions, model, *where) -> int:  # type: ignore[no-untyped-def]
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


@pytest.fixture
def relay(smtp_sink, monkeypatch, demo):  # type: ignore[no-untyped-def]
    """SMTP_URL pointed at the sink; returns the sink."""
    monkeypatch.setenv("SMTP_URL", smtp_sink.url)
    get_settings.cache_clear()
    return smtp_sink


@pytest.fixture
def listener(demo, sessions) -> Iterator[Listener]:  # type: ignore[no-untyped-def]
    server = start_listener(sessions, demo, host="127.0.0.1", port=free_port())
    yield server
    server.stop()


def deliver(listener: Listener, raw: bytes, sender: str = "chan.taiman@example.com") -> None:
    import smtplib

    with smtplib.SMTP("127.0.0.1", listener.port, timeout=30) as client:
        client.sendmail(sender, [ADDRESS], raw)


def test_a_residents_mail_gets_one_threaded_acknowledgement_in_their_language(
    relay, listener, sessions
):
    inbound_id = "<kitchen-leak-1@example.com>"
    deliver(listener, resident_mail(subject="廚房漏水", message_id=inbound_id))
    drain()

    relay.wait_for(1)
    [sent] = relay.to("chan.taiman@example.com")
    local, _, domain = ADDRESS.partition("@")
    assert sent.mail_from.startswith(f"{local}+b.") and sent.mail_from.endswith(f"@{domain}")
    assert verp_outgoing_id(get_settings(), sent.mail_from) is not None, "VERP: signed per message"
    head = sent.raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii(), "headers are RFC 2047 encoded, no raw UTF-8"
    msg = sent.message
    with sessions() as session:
        ticket = session.scalars(select(Ticket)).one()
        out = session.scalars(select(OutgoingMessage).where(ACK)).one()
    assert f"[{ticket.ref}]" in msg["Subject"] and "已受理" in msg["Subject"]
    assert msg["From"].addresses[0].display_name == get_settings().config.company("zh-Hant")
    assert msg["From"].addresses[0].addr_spec == ADDRESS
    assert verify_message_id(get_settings(), msg["Message-ID"]) == ticket.ref
    assert msg["In-Reply-To"] == inbound_id
    assert inbound_id in msg["References"]
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    plain, rich = msg.get_payload()
    assert (plain.get_content_type(), rich.get_content_type()) == ("text/plain", "text/html")
    for part in (plain, rich):
        assert part["Content-Transfer-Encoding"] == "base64"
        assert part.get_content_charset() == "utf-8"
    assert "來信已受理" in plain.get_content() and ticket.ref in plain.get_content()
    assert "來信已受理" in rich.get_content()
    assert (out.status, out.message_id) == ("sent", msg["Message-ID"])
    with sessions() as session:
        timeline = session.scalars(
            select(Interaction).where(Interaction.ticket_id == ticket.id).order_by(Interaction.id)
        ).all()
    assert (timeline[0].direction, timeline[0].external_id) == ("in", inbound_id)
    [on_timeline] = [i for i in timeline if i.external_id == out.message_id]
    assert (on_timeline.direction, on_timeline.kind) == ("out", "email")

    reply = EmailMessage(policy=SMTP)
    reply["From"] = "chan.taiman@example.com"
    reply["To"] = ADDRESS
    reply["Subject"] = "回覆: " + str(msg["Subject"])
    reply["Message-ID"] = "<kitchen-leak-2@example.com>"
    reply["In-Reply-To"] = msg["Message-ID"]
    reply["References"] = f"{inbound_id} {msg['Message-ID']}"
    reply.set_content("補充：漏水在水槽下面。")
    deliver(listener, reply.as_bytes())
    drain()
    assert count(sessions, Ticket) == 1, "the reply lands on the same ticket"
    assert count(sessions, Interaction, Interaction.direction == "in") == 2
    assert len(relay.to("chan.taiman@example.com")) == 1, "no second acknowledgement for a reply"


@pytest.mark.parametrize(
    ("sender", "subject", "body", "expected"),
    [
        ("emily.carter@example.com", "Lift broken", "The lift in block C is stuck.", "received"),
        ("wang.jianguo@example.cn", "厨房漏水", "我家厨房漏水，请派人维修。", "来信已受理"),
    ],
)
def test_acknowledgements_follow_the_residents_language(
    relay, listener, sessions, sender, subject, body, expected
):
    deliver(listener, resident_mail(sender=sender, subject=subject, body=body), sender)
    drain()
    relay.wait_for(1)
    [sent] = relay.to(sender)
    text = sent.message.get_body(("plain",)).get_content()
    assert expected in text


def test_without_a_relay_mail_is_kept_in_the_outbox_and_on_the_timeline(listener, sessions, demo):
    from intake.cli import main

    deliver(listener, resident_mail(subject="信箱鎖壞了"))
    drain()
    with sessions() as session:
        out = session.scalars(select(OutgoingMessage).where(ACK)).one()
        assert out.status == "kept"
        assert session.scalar(
            select(Interaction.id).where(
                Interaction.direction == "out", Interaction.external_id == out.message_id
            )
        )
    result = CliRunner().invoke(main, ["outbox", "list", "--format", "json"])
    assert result.exit_code == 0, result.output
    [listed] = [m for m in json.loads(result.output) if m["message_id"] == out.message_id]
    assert listed["status"] == "kept" and listed["message_id"] == out.message_id
    assert listed["headers"]["automatic"] is True


def _queued_ack(sessions, listener) -> int:  # type: ignore[no-untyped-def]
    """A resident's mail processed and acknowledged, its email not sent yet; returns its id."""
    from mail.store import process_stored
    from worker.replies import acknowledge

    deliver(listener, resident_mail(subject="大門壞了"))
    with sessions() as session:
        raw_id = session.scalars(select(RawMessage.id)).one()
    process_stored(sessions, get_settings(), raw_id)
    with sessions() as session:
        ticket = session.scalars(select(Ticket)).one()
        inbound = session.scalars(select(Interaction)).one()
    acknowledge(ticket.id, inbound.id)
    with sessions() as session:
        return session.scalars(select(OutgoingMessage.id).where(ACK)).one()


def test_the_job_running_twice_sends_once(relay, listener, sessions):
    outgoing_id = _queued_ack(sessions, listener)
    results: list[str] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(send_outgoing(sessions, get_settings(), outgoing_id))
        )
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    results.append(send_outgoing(sessions, get_settings(), outgoing_id))
    relay.wait_for(1)
    assert len(relay.delivered) == 1
    assert sum(r.startswith("sent") for r in results) == 1
    assert count(sessions, Interaction, Interaction.direction == "out") == 1


def test_a_temporary_refusal_is_retried_and_a_permanent_one_is_shown(relay, listener, sessions):
    outgoing_id = _queued_ack(sessions, listener)
    relay.handler.rcpt_reply = "451 4.7.1 Greylisted, try again later"
    with pytest.raises(TransientSendError):
        send_outgoing(sessions, get_settings(), outgoing_id)
    with sessions() as session:
        out = session.get(OutgoingMessage, outgoing_id)
        assert out.status == "queued" and "451" in (out.error or "")
    relay.handler.rcpt_reply = "550 5.1.1 No such user here"
    assert send_outgoing(sessions, get_settings(), outgoing_id).startswith("failed")
    with sessions() as session:
        out = session.get(OutgoingMessage, outgoing_id)
        assert out.status == "failed" and "550 5.1.1" in (out.error or "")
        assert session.scalar(select(Event.id).where(Event.kind == "email_failed"))
    assert relay.delivered == []


def test_an_unreachable_relay_is_a_retry_not_a_failure(listener, sessions, monkeypatch):
    outgoing_id = _queued_ack(sessions, listener)
    monkeypatch.setenv("SMTP_URL", f"smtp://127.0.0.1:{free_port()}")
    get_settings.cache_clear()
    with pytest.raises(TransientSendError):
        send_outgoing(sessions, get_settings(), outgoing_id)
    with sessions() as session:
        assert session.get(OutgoingMessage, outgoing_id).status == "queued"


def _bounce_of(original: bytes) -> bytes:
    """A Postfix-style RFC 3464 delivery status notification returning `original`'s headers."""
    headers = original.split(b"\r\n\r\n", 1)[0].decode("ascii") + "\r\n"
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        f"To: {ADDRESS}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce-1@mx.example.com>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n'
        "\r\n--b1\r\nContent-Type: text/plain\r\n\r\n"
        "Your message could not be delivered to chan.taiman@example.com.\r\n"
        "\r\n--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        "Final-Recipient: rfc822; chan.taiman@example.com\r\n"
        "Action: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
        "\r\n--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"{headers}"
        "\r\n--b1--\r\n"
    ).encode("ascii")


def test_a_bounce_of_our_mail_marks_it_undeliverable_and_is_not_answered(relay, listener, sessions):
    deliver(listener, resident_mail(subject="熱水器壞了"))
    drain()
    relay.wait_for(1)
    [ack] = relay.to("chan.taiman@example.com")
    deliver(listener, _bounce_of(ack.raw), sender="")
    drain()
    with sessions() as session:
        out = session.scalars(select(OutgoingMessage).where(ACK)).one()
        point = session.scalars(
            select(ContactPoint).where(ContactPoint.value == "chan.taiman@example.com")
        ).one()
        assert session.scalar(select(Event.id).where(Event.kind == "email_bounced"))
    assert out.status == "undeliverable"
    assert point.unreachable and "5.1.1" in (point.unreachable_reason or "")
    assert len(relay.to("chan.taiman@example.com")) == 1, "a bounce is never answered"
    assert count(sessions, RawMessage, RawMessage.classification == "bounce") == 1


def test_acknowledgements_are_limited_per_sender(relay, listener, sessions):
    for n in range(5):
        deliver(listener, resident_mail(subject=f"投訴第{n + 1}件", body=f"第{n + 1}件事"))
    drain()
    assert count(sessions, Ticket) == 5
    relay.wait_for(3)
    assert len(relay.to("chan.taiman@example.com")) == 3, "ack_limit_per_sender_per_hour is 3"
    assert count(sessions, Event, Event.kind == "ack_suppressed") == 2


def test_a_storm_trips_the_breaker_and_says_so(relay, listener, sessions, monkeypatch, tmp_path):
    from intake.config import DEFAULT_CONFIG_PATH

    config = DEFAULT_CONFIG_PATH.read_text(encoding="utf-8").replace(
        "storm_limit_per_minute: 60", "storm_limit_per_minute: 2"
    )
    (tmp_path / "config.yaml").write_text(config, encoding="utf-8")
    monkeypatch.setenv("HOTLINE_CONFIG", str(tmp_path / "config.yaml"))
    get_settings.cache_clear()
    for n in range(4):
        sender = f"resident{n}@example.net"
        deliver(listener, resident_mail(sender=sender, subject=f"事件{n}"), sender)
    drain()
    assert count(sessions, Ticket) == 4
    relay.wait_for(2)
    assert count(sessions, OutgoingMessage, ACK) == 2
    with sessions() as session:
        reasons = [
            e.data.get("reason")
            for e in session.scalars(select(Event).where(Event.kind == "ack_suppressed"))
        ]
        breaker = session.scalars(
            select(ChannelHealth).where(ChannelHealth.name == "mail:acknowledgements")
        ).one()
    assert reasons == ["storm", "storm"]
    assert breaker.status == "breaker_open" and "limit 2" in (breaker.last_error or "")


def test_an_operators_reply_is_not_marked_automatic(relay, sessions):
    from intake.service import receive
    from tests.factories import email_contact

    receipt = receive(sessions, email_contact(), get_settings().config)
    with sessions() as session:
        reply = OutgoingMessage(
            ticket_id=receipt.ticket_id,
            channel="email",
            to="chan.taiman@example.com",
            subject="師傅明天上午到",
            body_text="陳先生您好，師傅明天上午十點到府維修。",
            template="canned_visit",
            headers={"operator": "operator@hotline.localhost"},
            status="queued",
        )
        session.add(reply)
        session.commit()
        reply_id = reply.id
    assert send_outgoing(sessions, get_settings(), reply_id).startswith("sent")
    [sent] = relay.to("chan.taiman@example.com")
    assert sent.message["Auto-Submitted"] is None
    assert sent.message["X-Auto-Response-Suppress"] is None
    assert sent.message["Subject"].endswith(f"[{receipt.ticket_ref}]")


def test_a_bounce_to_the_verp_address_names_its_message_and_nothing_else(relay, listener, sessions):
    """Issue 12 #3: the envelope sender is signed per message and the listener accepts it; a
    report sent there marks only that message's recipient, whatever Final-Recipient it claims."""
    deliver(listener, resident_mail(subject="熱水器壞了"))
    drain()
    relay.wait_for(1)
    [ack] = relay.to("chan.taiman@example.com")
    verp = ack.mail_from
    forged_local = verp.replace("+b.", "+b.9").split("@")[0]
    import smtplib

    with (
        smtplib.SMTP("127.0.0.1", listener.port, timeout=30) as client,
        pytest.raises(smtplib.SMTPRecipientsRefused),
    ):
        client.sendmail("", [f"{forged_local}@hotline.localhost"], b"Subject: x\r\n\r\nx\r\n")
    report = _bounce_of(ack.raw).replace(
        b"Final-Recipient: rfc822; chan.taiman@example.com",
        b"Final-Recipient: rfc822; somebody.else@example.com",
    )
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=30) as client:
        client.sendmail("", [verp], report)
    drain()
    with sessions() as session:
        out = session.scalars(select(OutgoingMessage).where(ACK)).one()
        point = session.scalars(
            select(ContactPoint).where(ContactPoint.value == "chan.taiman@example.com")
        ).one()
        raw = session.scalars(select(RawMessage).where(RawMessage.classification == "bounce")).one()
    assert out.status == "undeliverable" and point.unreachable
    assert raw.status == "processed"

"""Store first: quarantine with a reason, replay from the command line, outages in between."""

from __future__ import annotations

import json
import smtplib

import pytest
from click.testing import CliRunner
from redis import Redis
from sqlalchemy import func, select

from intake.cli import main
from intake.config import get_settings
from intake.models import Outbox, RawMessage, Ticket
from mail.imap import ImapAccount, MailboxPoller
from mail.smtpd import start_listener
from mail.store import TransientFailure, process_stored, store_message
from tests.mail.faults import postgres_down
from tests.mail.mailmaker import resident_mail
from tests.processes import free_port
from worker.runner import drain

ADDRESS = "complaints@hotline.localhost"


def count(sessions, model, *where) -> int:  # type: ignore[no-untyped-def]
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def only_raw(sessions) -> RawMessage:  # type: ignore[no-untyped-def]
    with sessions() as session:
        return session.scalars(select(RawMessage)).one()


def test_storing_writes_the_bytes_and_the_processing_job_together(demo, sessions):
    raw = resident_mail(message_id="<Mixed.Case@Example.COM>")
    with sessions() as session:
        first = store_message(session, raw, source="smtp", envelope_to=[ADDRESS])
        again = store_message(session, raw, source="smtp", envelope_to=[ADDRESS])
        session.commit()
    assert first.created and not again.created and again.raw_id == first.raw_id
    row = only_raw(sessions)
    assert (row.raw, row.size, row.message_id) == (raw, len(raw), "<mixed.case@example.com>")
    with sessions() as session:
        job = session.scalars(select(Outbox)).one()
    assert (job.job, job.args, job.dedupe_key) == (
        "process_raw_message",
        {"raw_id": row.id},
        f"mail:{row.id}",
    )


def test_bytes_that_are_not_mail_are_quarantined_with_a_reason_never_dropped(
    demo, sessions, redis_url
):
    listener = start_listener(sessions, demo, host="127.0.0.1", port=free_port())
    try:
        with smtplib.SMTP("127.0.0.1", listener.port, timeout=30) as client:
            client.sendmail("x@example.com", [ADDRESS], b"\x00\x01\x02 binary junk\r\n")
    finally:
        listener.stop()
    drain()
    row = only_raw(sessions)
    assert row.status == "quarantined"
    assert "not an RFC 5322 message" in (row.reason or "")
    assert row.raw == b"\x00\x01\x02 binary junk\r\n"
    result = CliRunner().invoke(main, ["mail", "quarantine", "--format", "json"])
    assert result.exit_code == 0, result.output
    [listed] = json.loads(result.output)
    assert listed["id"] == row.id and "RFC 5322" in listed["reason"]
    result = CliRunner().invoke(main, ["mail", "replay", "--id", str(row.id)])
    assert result.exit_code == 1, "still unparseable: said so, kept"
    assert only_raw(sessions).status == "quarantined"


def test_a_quarantined_message_is_replayed_once_the_cause_is_fixed(
    demo, sessions, redis_url, monkeypatch
):
    import mail.contact
    from mail.parse import UnparseableMessage

    real = mail.contact.message_to_contact

    def parser_bug(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise UnparseableMessage("parser bug #123")

    monkeypatch.setattr(mail.contact, "message_to_contact", parser_bug)
    with sessions() as session:
        stored = store_message(session, resident_mail(subject="暖氣不熱"), source="smtp")
        session.commit()
    drain()
    assert only_raw(sessions).status == "quarantined"
    assert count(sessions, Ticket) == 0

    monkeypatch.setattr(mail.contact, "message_to_contact", real)
    result = CliRunner().invoke(main, ["mail", "replay", "--all"])
    assert result.exit_code == 0, result.output
    assert f"{stored.raw_id}: human mail new ticket HL-000001" in result.output
    assert only_raw(sessions).status == "processed"
    assert count(sessions, Ticket) == 1
    result = CliRunner().invoke(main, ["mail", "replay", "--id", str(stored.raw_id)])
    assert "duplicate of HL-000001" in result.output
    assert count(sessions, Ticket) == 1


def test_replay_needs_to_be_told_what(env):
    result = CliRunner().invoke(main, ["mail", "replay"])
    assert result.exit_code == 2


def test_a_database_outage_between_store_and_processing_loses_nothing(demo, sessions, redis_url):
    if not demo.database_url.startswith("postgresql"):
        pytest.skip("the outage is played by PostgreSQL refusing connections")
    with sessions() as session:
        stored = store_message(session, resident_mail(subject="地下室淹水"), source="smtp")
        session.commit()
    with postgres_down(demo.database_url), pytest.raises(TransientFailure):
        process_stored(sessions, get_settings(), stored.raw_id)
    assert only_raw(sessions).status == "stored"
    drain()
    assert only_raw(sessions).status == "processed"
    assert count(sessions, Ticket) == 1


def test_the_imap_poller_survives_a_database_outage(dovecot, demo, sessions, redis_url):
    if not demo.database_url.startswith("postgresql"):
        pytest.skip("the outage is played by PostgreSQL refusing connections")
    dovecot.append(resident_mail(subject="水塔漏水"), resident_mail(subject="電梯停了"))
    poller = MailboxPoller(
        ImapAccount.from_url(dovecot.url), demo, sessions, redis=Redis.from_url(redis_url)
    )
    with postgres_down(demo.database_url), pytest.raises(Exception):  # noqa: B017
        poller.run_once()
    assert dovecot.count("INBOX") == 2, "nothing moved while nothing could be stored"
    assert poller.run_once() == 2
    assert count(sessions, Ticket) == 2
    assert dovecot.count("INBOX") == 0

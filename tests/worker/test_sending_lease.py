"""An email or SMS left `sending` by a killed worker is sent once its claim's lease lapses: never a
second send within a live lease, never a row stuck in `sending` (issue 12 item 13)."""

from __future__ import annotations

import socket
from datetime import timedelta
from typing import Any

import pytest
from redis import Redis
from sqlalchemy import select

from intake.config import get_settings
from intake.models import Outbox, OutgoingMessage, utcnow
from intake.service import receive
from mail.outgoing import SENDING_LEASE, send_email
from tests.factories import email_contact
from tests.processes import wait_for
from tests.worker.helpers import run_jobs
from tests.worker.test_reliability import kill, spawn_worker
from worker.outbox import ABANDONED_AFTER, reconcile_once

RESIDENT = "chan.taiman@example.com"


def _emails(sessions: Any) -> list[OutgoingMessage]:
    with sessions() as s:
        return list(
            s.scalars(
                select(OutgoingMessage)
                .where(OutgoingMessage.channel == "email", OutgoingMessage.to.contains(RESIDENT))
                .order_by(OutgoingMessage.id)
            )
        )


def _use_smtp(monkeypatch: pytest.MonkeyPatch, url: str | None) -> None:
    if url is None:
        monkeypatch.delenv("SMTP_URL", raising=False)
    else:
        monkeypatch.setenv("SMTP_URL", url)
    get_settings.cache_clear()


def test_a_worker_killed_mid_send_leaves_no_row_sending_and_the_mail_goes_once(
    demo, sessions, redis_url, env, smtp_sink, tmp_path, monkeypatch
):
    """The worker is SIGKILLed while its SMTP server has not even greeted it. Before: the rerun
    (after ~7 min) found the 10-minute lease live, answered "being sent elsewhere", the outbox
    row was closed and the acknowledgement stayed `sending` for ever."""
    stall = socket.socket()
    stall.bind(("127.0.0.1", 0))
    stall.listen(8)  # accepts connections and never says a word
    conn = Redis.from_url(redis_url)
    receive(sessions, email_contact(), demo.config)
    worker = spawn_worker(
        {**env, "SMTP_URL": f"smtp://127.0.0.1:{stall.getsockname()[1]}"},
        tmp_path / "worker.log",
    )
    try:
        wait_for(
            lambda: any(m.status == "sending" for m in _emails(sessions)), 60, "a send in progress"
        )
    finally:
        kill(worker)
        stall.close()
    [ack] = _emails(sessions)
    assert ack.status == "sending"
    _use_smtp(monkeypatch, smtp_sink.url)
    later = utcnow() + ABANDONED_AFTER
    reconcile_once(sessions, conn, now=later)
    for minutes in (1, 3, 6, 20):
        run_jobs(conn, later + timedelta(minutes=minutes))
        reconcile_once(sessions, conn, now=later + timedelta(minutes=minutes, seconds=40))
    [ack] = _emails(sessions)
    assert ack.status == "sent"
    assert len(smtp_sink.to(RESIDENT)) == 1


def test_a_send_within_a_live_lease_waits_for_it_and_never_doubles(
    demo, sessions, redis_url, env, smtp_sink, monkeypatch
):
    conn = Redis.from_url(redis_url)
    _use_smtp(monkeypatch, None)
    receive(sessions, email_contact(), demo.config)
    now = utcnow()
    run_jobs(conn, now)  # routed and acknowledged; kept (no SMTP yet)
    [ack] = _emails(sessions)
    with sessions() as s:  # another worker claimed it a moment ago and is still sending
        s.execute(
            OutgoingMessage.__table__.update()
            .where(OutgoingMessage.id == ack.id)
            .values(status="sending", sent_at=now)
        )
        s.commit()
    _use_smtp(monkeypatch, smtp_sink.url)
    assert send_email(ack.id).startswith("being sent elsewhere")
    assert send_email(ack.id).startswith("being sent elsewhere")  # one retry per claim
    with sessions() as s:
        [retry] = s.scalars(select(Outbox).where(Outbox.dedupe_key.like("lease:%"))).all()
        assert retry.available_at >= now + SENDING_LEASE
    run_jobs(conn, now + SENDING_LEASE - timedelta(seconds=5))
    assert smtp_sink.to(RESIDENT) == [] and _emails(sessions)[0].status == "sending"
    run_jobs(conn, now + SENDING_LEASE + timedelta(seconds=5))
    assert _emails(sessions)[0].status == "sent"
    assert len(smtp_sink.to(RESIDENT)) == 1


def test_the_housekeeping_sweep_resends_rows_stale_in_sending(
    demo, sessions, redis_url, env, smtp_sink, monkeypatch
):
    from worker.housekeeping import sweep_stale_sending

    conn = Redis.from_url(redis_url)
    _use_smtp(monkeypatch, None)
    receive(sessions, email_contact(), demo.config)
    now = utcnow()
    run_jobs(conn, now)
    [ack] = _emails(sessions)
    with sessions() as s:  # left by a worker killed mid-send, its outbox row long closed
        s.execute(
            OutgoingMessage.__table__.update()
            .where(OutgoingMessage.id == ack.id)
            .values(status="sending", sent_at=now - timedelta(minutes=30))
        )
        s.commit()
    _use_smtp(monkeypatch, smtp_sink.url)
    assert sweep_stale_sending(sessions, now=now - timedelta(minutes=29)) == 0  # lease still live
    assert sweep_stale_sending(sessions, now=now) == 1
    assert sweep_stale_sending(sessions, now=now) == 1  # idempotent: one retry per claim
    run_jobs(conn, now + timedelta(seconds=5))
    assert _emails(sessions)[0].status == "sent"
    assert len(smtp_sink.to(RESIDENT)) == 1
    assert sweep_stale_sending(sessions, now=now + timedelta(hours=1)) == 0

"""SLA warnings and escalation (上報), with the sweep run by real workers at chosen moments."""

from __future__ import annotations

from datetime import timedelta

from redis import Redis
from sqlalchemy import select

from intake.models import Event, OutgoingMessage, Ticket
from intake.service import receive
from tests.factories import call_contact
from tests.worker.helpers import run_jobs
from worker.housekeeping import schedule_periodic
from worker.sla import sla_sweep


def _events(sessions, ticket_id, kind):
    with sessions() as s:
        return list(
            s.scalars(select(Event).where(Event.ticket_id == ticket_id, Event.kind == kind))
        )


def test_an_emergency_is_warned_then_escalated_to_the_supervisor_then_the_project_manager(
    demo, sessions, redis_url
):
    conn = Redis.from_url(redis_url)
    receipt = receive(sessions, call_contact(text="", category_hint="emergency"), demo.config)
    receipt_time = _created(sessions, receipt.ticket_id)
    run_jobs(conn, receipt_time + timedelta(seconds=5))
    with sessions() as s:
        ticket = s.get(Ticket, receipt.ticket_id)
        first_due, resolution_due = ticket.first_response_due_at, ticket.resolution_due_at
        s.execute(
            Ticket.__table__.update().where(Ticket.id == ticket.id).values(first_responded_at=None)
        )
        s.commit()
    assert first_due - receipt_time == timedelta(minutes=15)
    assert sla_sweep(now=(first_due - timedelta(minutes=10)).isoformat()) == "0 warned, 0 escalated"
    assert sla_sweep(now=(first_due - timedelta(minutes=4)).isoformat()) == "1 warned, 0 escalated"
    assert sla_sweep(now=(first_due - timedelta(minutes=3)).isoformat()) == "0 warned, 0 escalated"
    assert sla_sweep(now=(first_due + timedelta(minutes=1)).isoformat()) == "0 warned, 1 escalated"
    assert sla_sweep(now=(first_due + timedelta(minutes=2)).isoformat()) == "0 warned, 0 escalated"
    run_jobs(conn, first_due + timedelta(minutes=2))
    with sessions() as s:
        ticket = s.get(Ticket, receipt.ticket_id)
        assert (ticket.escalated, ticket.escalation_level) == (True, 1)
        mails = s.scalars(
            select(OutgoingMessage).where(OutgoingMessage.template == "notify_department_email")
        ).all()
    assert any("即將逾期" in m.subject for m in mails)
    supervisor = [m for m in mails if "個案已上報" in m.subject]
    assert len(supervisor) == 1 and "supervisor@hotline.localhost" in supervisor[0].to
    assert (
        sla_sweep(now=(resolution_due + timedelta(minutes=1)).isoformat())
        == "0 warned, 1 escalated"
    )
    run_jobs(conn, resolution_due + timedelta(minutes=2))
    [level1, level2] = _events(sessions, receipt.ticket_id, "escalated")
    assert (level1.data["level"], level2.data["level"]) == (1, 2)
    assert "project manager" in level2.message
    with sessions() as s:
        manager = s.scalars(
            select(OutgoingMessage).where(OutgoingMessage.to == "management@example.com")
        ).all()
    assert any("個案已上報" in m.subject for m in manager)
    assert len(_events(sessions, receipt.ticket_id, "sla_warning")) == 1


def _created(sessions, ticket_id):
    with sessions() as s:
        return s.get(Ticket, ticket_id).created_at


def test_the_sweep_is_scheduled_once_a_minute_however_many_workers_ask(demo, sessions, redis_url):
    moment = _now().replace(minute=1)
    first = schedule_periodic(sessions, moment)
    assert first == 8, (
        "sweep, chase, digest, incident suggestions, retention (daily), alerts, the dashboard's "
        "roll-up (every five minutes, and its last week daily)"
    )
    assert schedule_periodic(sessions, moment + timedelta(seconds=30)) == 0
    assert schedule_periodic(sessions, moment.replace(minute=2)) == 3, "sweep, suggestions, alerts"
    assert schedule_periodic(sessions, moment.replace(minute=5)) == 5, "... the chase, the roll-up"


def _now():
    from intake.models import utcnow

    return utcnow().replace(second=1)


def test_the_sweep_reads_only_tickets_whose_next_deadline_has_come(demo, sessions, redis_url):
    from intake.sla import _due_now

    conn = Redis.from_url(redis_url)
    ids = [
        receive(
            sessions,
            call_contact(text=f"冷氣不冷 {n}", sender_phone=f"+8869120001{n:02d}"),
            demo.config,
        ).ticket_id
        for n in range(20)
    ]
    start = _created(sessions, ids[0])
    run_jobs(conn, start + timedelta(seconds=5))
    now = start + timedelta(minutes=1)
    assert sla_sweep(now=now.isoformat()) == "0 warned, 0 escalated"
    with sessions() as s:
        assert s.scalars(_due_now(now)).all() == [], "nothing due: the next sweep reads nothing"
        next_at = {t.id: t.sla_next_at for t in s.scalars(select(Ticket))}
        assert all(next_at[i] is not None and next_at[i] > now for i in ids)
        # An operator's change moves one ticket's due time close: only that one is read again.
        moved = s.get(Ticket, ids[3])
        moved.first_response_due_at = now + timedelta(minutes=3)
        s.commit()
        assert [t.id for t in s.scalars(_due_now(now))] == [ids[3]]
    assert sla_sweep(now=now.isoformat()) == "1 warned, 0 escalated"
    with sessions() as s:
        assert s.scalars(_due_now(now)).all() == []
        assert [t.id for t in s.scalars(_due_now(now + timedelta(minutes=3)))] == [ids[3]]

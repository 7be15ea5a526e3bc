from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

from redis import Redis
from sqlalchemy import func, select, text

from intake.models import Event, Outbox, Ticket, utcnow
from intake.service import receive
from tests.factories import call_contact, email_contact
from worker.outbox import ABANDONED_AFTER, reconcile_once, relay_once
from worker.runner import drain


def _ticket(sessions, ticket_id):
    """The ticket, its department and routed events, read in one snapshot."""
    with sessions() as s:
        if s.get_bind().dialect.name == "postgresql":
            s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        t = s.get(Ticket, ticket_id)
        return (
            t,
            t.department.code if t.department else None,
            [e for e in t.events if e.kind == "routed"],
        )


def test_it_routes_a_leak_to_engineering_and_says_why(demo, sessions, redis_url):
    receipt = receive(sessions, email_contact(), demo.config)
    drain(Redis.from_url(redis_url))
    ticket, dept, routed = _ticket(sessions, receipt.ticket_id)
    assert (ticket.status, dept) == ("routed", "engineering")
    assert len(routed) == 1
    assert routed[0].data["rule"] == "repairs"
    assert "category is repair" in routed[0].message
    assert (
        ticket.first_response_due_at is not None
        and ticket.resolution_due_at > ticket.first_response_due_at
    )


def test_a_lift_outage_is_raised_to_p2_by_its_rule(demo, sessions, redis_url):
    receipt = receive(
        sessions, email_contact(subject="電梯", text="電梯停了，壞了兩天"), demo.config
    )
    drain(Redis.from_url(redis_url))
    ticket, dept, routed = _ticket(sessions, receipt.ticket_id)
    assert (dept, ticket.priority, routed[0].data["rule"]) == (
        "engineering",
        "P2",
        "lift-and-water-outages",
    )
    assert "text mentions 電梯" in routed[0].message


def test_an_emergency_is_routed_from_the_urgent_queue_with_its_on_call_departments(
    demo, sessions, redis_url
):
    receipt = receive(sessions, call_contact(text="", category_hint="emergency"), demo.config)
    drain(Redis.from_url(redis_url))
    ticket, dept, routed = _ticket(sessions, receipt.ticket_id)
    assert (dept, ticket.priority) == ("engineering", "P1")
    assert routed[0].data["notify"] == ["engineering", "security"]
    assert ticket.first_response_due_at - ticket.created_at == timedelta(minutes=15)


def test_the_first_ticket_of_a_configured_department_creates_its_row(settings, sessions, redis_url):
    """No department rows yet (a fresh install before any seeding): routing creates the row
    from the configuration and routes the ticket to it, once."""
    receipt = receive(sessions, email_contact(), settings.config)
    drain(Redis.from_url(redis_url))
    ticket, dept, routed = _ticket(sessions, receipt.ticket_id)
    assert (ticket.status, dept, len(routed)) == ("routed", "engineering", 1)
    with sessions() as s:
        notify = s.scalars(select(Outbox).where(Outbox.job == "notify_department")).all()
    assert [row.args["ticket_id"] for row in notify] == [receipt.ticket_id]


def test_routing_twice_changes_nothing(demo, sessions, redis_url):
    from worker.jobs import route_ticket

    receipt = receive(sessions, email_contact(), demo.config)
    drain(Redis.from_url(redis_url))
    assert route_ticket(receipt.ticket_id) == "already routed"
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Event).where(Event.kind == "routed")) == 1


def test_a_redis_flush_before_the_job_ran_is_repaired_by_the_reconciler(
    demo, sessions, redis_url, settings
):
    conn = Redis.from_url(redis_url)
    receipt = receive(sessions, email_contact(), demo.config)
    assert relay_once(sessions, conn, settings.database_url) == 2
    conn.flushdb()  # what a Redis restart without persistence does
    counts = reconcile_once(sessions, conn, now=utcnow() + timedelta(minutes=2))
    assert counts["requeued"] == 2
    with sessions() as s:
        s.execute(Outbox.__table__.update().values(available_at=utcnow()))
        s.commit()
    drain(conn)
    _, dept, routed = _ticket(sessions, receipt.ticket_id)
    assert dept == "engineering" and len(routed) == 1


def test_a_worker_killed_in_the_middle_of_routing_still_routes_the_ticket_exactly_once(
    demo, sessions, redis_url, settings, env, db_url
):
    """Hold the ticket's row so the job blocks mid-transaction, SIGKILL the worker, then recover."""
    conn = Redis.from_url(redis_url)
    receipt = receive(sessions, email_contact(), demo.config)
    relay_once(sessions, conn, settings.database_url)
    with sessions() as s:
        route_job_id = f"outbox-{s.scalar(select(Outbox.id).where(Outbox.job == 'route_ticket'))}"
    blocker = sessions()
    if db_url.startswith("sqlite"):
        blocker.connection().exec_driver_sql(
            f"UPDATE ticket SET updated_at = updated_at WHERE id = {receipt.ticket_id}"
        )
    else:
        blocker.execute(
            text("SELECT id FROM ticket WHERE id = :id FOR UPDATE"), {"id": receipt.ticket_id}
        )
    worker = subprocess.Popen(
        [sys.executable, "-m", "intake.cli", "worker", "--without-scheduler"],
        env={**os.environ, **env},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        from rq.job import Job

        while time.monotonic() < deadline:
            job = Job.fetch(route_job_id, connection=conn)
            if job.get_status(refresh=True).value == "started":
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the routing job never started")
        time.sleep(0.5)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        blocker.rollback()
        blocker.close()
    ticket, dept, routed = _ticket(sessions, receipt.ticket_id)
    # On PostgreSQL the claim is one statement outside a transaction: the server may finish it
    # for the dead worker once the row is free. Either all of it happened or none of it.
    assert (ticket.status, len(routed)) in (("new", 0), ("routed", 1))
    counts = reconcile_once(sessions, conn, now=utcnow() + ABANDONED_AFTER)
    assert counts["requeued"] >= 1
    with sessions() as s:
        s.execute(Outbox.__table__.update().values(available_at=utcnow()))
        s.commit()
    drain(conn)
    ticket, dept, routed = _ticket(sessions, receipt.ticket_id)
    assert (ticket.status, dept, len(routed)) == ("routed", "engineering", 1)

"""Department notification: emails, the low-priority digest, and the emergency on-call page."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from redis import Redis
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from intake import clock
from intake.models import Call, DepartmentNotification, Event, OutgoingMessage, Page, Ticket
from intake.service import receive
from tests.factories import call_contact, email_contact
from tests.worker.helpers import run_jobs

NOW = datetime(2026, 11, 30, 10, 0).astimezone()


@pytest.fixture(autouse=True)
def _the_test_world_is_monday_morning():
    """Every stamp and comparison (intake, relay, jobs) reads this moment, whatever today is."""
    with clock.frozen(NOW):
        yield


def _messages(sessions, **where):
    with sessions() as s:
        query = select(OutgoingMessage).order_by(OutgoingMessage.id)
        for key, value in where.items():
            query = query.where(getattr(OutgoingMessage, key) == value)
        return list(s.scalars(query))


def test_a_routed_repair_emails_engineering_once_with_the_reason(demo, sessions, redis_url):
    conn = Redis.from_url(redis_url)
    receipt = receive(sessions, email_contact(), demo.config)
    run_jobs(conn, NOW)
    run_jobs(conn, NOW)
    [mail] = _messages(sessions, template="notify_department_email")
    assert mail.to == "engineering@example.com"
    assert "HL-" in mail.subject and "新個案" in mail.subject
    assert "分派原因：依規則「一般報修」分派至工程維修部，優先級 P3：類別為報修。" in mail.body_text
    from worker.notify import notify_department

    assert notify_department(receipt.ticket_id, "routed") == "notified nobody new"
    assert len(_messages(sessions, template="notify_department_email")) == 1


def test_low_priority_cases_wait_for_one_digest_per_department(demo, sessions, redis_url):
    conn = Redis.from_url(redis_url)
    for n in range(2):
        receive(
            sessions,
            email_contact(subject=f"發票 {n}", text="請問管理費發票幾時寄出？"),
            demo.config,
        )
    run_jobs(conn, NOW)
    assert _messages(sessions, template="notify_department_email") == []
    from worker.notify import send_department_digests

    assert send_department_digests() == "1 digest(s) queued"
    assert send_department_digests() == "0 digest(s) queued"
    [digest] = _messages(sessions, template="notify_digest_email")
    assert digest.to == "billing@example.com" and "2 宗" in digest.subject
    with sessions() as s:
        rows = s.scalars(select(DepartmentNotification)).all()
        assert {r.outgoing_message_id for r in rows} == {digest.id}


def _emergency(sessions, demo, conn):
    receipt = receive(sessions, call_contact(text="", category_hint="emergency"), demo.config)
    run_jobs(conn, NOW)
    with sessions() as s:
        page = s.scalar(select(Page).where(Page.ticket_id == receipt.ticket_id))
        return receipt.ticket_id, page


def test_an_emergency_nobody_acknowledges_walks_the_whole_on_call_chain(demo, sessions, redis_url):
    conn = Redis.from_url(redis_url)
    ticket_id, page = _emergency(sessions, demo, conn)
    chain = ["+886912345001", "+886912345002", "+886912345101"]
    assert page.chain == chain
    moment = NOW
    for _ in chain:
        moment += timedelta(seconds=121)
        run_jobs(conn, moment)
    with sessions() as s:
        page = s.get(Page, page.id)
        calls = s.scalars(select(Call).where(Call.purpose == "page").order_by(Call.id)).all()
        kinds = [e.kind for e in s.scalars(select(Event).where(Event.ticket_id == ticket_id))]
    assert page.status == "exhausted"
    assert [c.to_number for c in calls] == chain
    assert all(
        c.meta["url"] == f"https://hotline.example.com/voice/page?page={page.id}" for c in calls
    )
    assert [m.to for m in _messages(sessions, template="notify_page_sms")] == chain
    assert kinds.count("page_called") == 3 and kinds.count("page_escalated") == 2
    assert "page_unacknowledged" in kinds
    alarm = _messages(sessions, template="notify_department_email")
    recipients = " ".join(m.to for m in alarm)
    assert "supervisor@hotline.localhost" in recipients, "the ladder's first rung"
    assert "management@example.com" not in recipients, "the project manager comes later"
    with sessions() as s:
        assert s.get(Ticket, ticket_id).escalation_level == 1
    run_jobs(conn, moment + timedelta(minutes=59))
    assert "management@example.com" not in {
        m.to for m in _messages(sessions, template="notify_department_email")
    }
    from worker.sla import sla_sweep

    with clock.frozen(moment + timedelta(hours=1)):  # the SLA sweep sees the same breach
        sla_sweep()
    run_jobs(conn, moment + timedelta(hours=1))
    with clock.frozen(moment + timedelta(hours=2)):
        sla_sweep()
    run_jobs(conn, moment + timedelta(hours=2))
    with sessions() as s:
        assert len(s.scalars(select(Call).where(Call.purpose == "page")).all()) == 3
        ticket = s.get(Ticket, ticket_id)
        assert (ticket.escalated, ticket.escalation_level) == (True, 2)
        ladder = [
            e.message
            for e in s.scalars(select(Event).where(Event.ticket_id == ticket_id))
            if e.kind == "escalated"
        ]
    assert len(ladder) == 2
    assert ladder[0].endswith("to the supervisor") and ladder[1].endswith("project manager")
    told = [m.to for m in _messages(sessions, template="notify_department_email")]
    assert told.count("management@example.com") == 1


def _signed_post(client, settings, path, form):
    url = settings.public_base_url + path
    signature = RequestValidator(settings.webhook_auth_token).compute_signature(url, form)
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def test_pressing_1_acknowledges_the_page_and_stops_the_chain(demo, sessions, redis_url):
    from web.app import create_app

    conn = Redis.from_url(redis_url)
    ticket_id, page = _emergency(sessions, demo, conn)
    client = create_app(settings=demo).test_client()
    path = f"/voice/page?page={page.id}"
    prompt = _signed_post(client, demo, path, {"CallSid": "CA1", "To": "+886912345001"})
    assert (
        prompt.status_code == 200 and b"<Gather" in prompt.data and "確認收到請按1" in prompt.text
    )
    assert client.post(path, data={"Digits": "1"}).status_code == 403, "unsigned is refused"
    acked = _signed_post(client, demo, path, {"Digits": "1", "To": "+886912345001"})
    assert acked.status_code == 200 and "已確認" in acked.text
    run_jobs(conn, NOW + timedelta(minutes=10))
    with sessions() as s:
        page = s.get(Page, page.id)
        assert (page.status, page.acknowledged_by) == ("acknowledged", "+886912345001")
        assert len(s.scalars(select(Call).where(Call.purpose == "page")).all()) == 1
        ticket = s.get(Ticket, ticket_id)
        assert ticket.first_responded_at is not None
        assert ticket.assignee_id is None, "no operator has that phone"
        taken = [e for e in ticket.events if e.kind == "on_call_taken"]
        assert len(taken) == 1 and "+886912345001" in taken[0].message


def test_the_engineer_who_presses_1_becomes_the_assignee(demo, sessions, redis_url):
    from intake.models import Operator
    from web.app import create_app

    conn = Redis.from_url(redis_url)
    with sessions() as s:
        engineer = s.scalar(
            select(Operator).where(Operator.email == "engineering@hotline.localhost")
        )
        engineer.phone = "+886912345002"
        s.commit()
    ticket_id, page = _emergency(sessions, demo, conn)
    run_jobs(conn, NOW + timedelta(seconds=121))  # the first on-call person does not press 1
    client = create_app(settings=demo).test_client()
    path = f"/voice/page?page={page.id}"
    acked = _signed_post(client, demo, path, {"Digits": "1", "To": "+886912345002"})
    assert acked.status_code == 200
    assert (
        _signed_post(client, demo, path, {"Digits": "1", "To": "+886912345002"}).status_code == 200
    )
    run_jobs(conn, NOW + timedelta(hours=2))
    with sessions() as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket.assignee.email == "engineering@hotline.localhost"
        kinds = [e.kind for e in ticket.events]
        assert kinds.count("page_acknowledged") == 1 and kinds.count("assigned") == 1
        assert "page_unacknowledged" not in kinds and "escalated" not in kinds
        assert [c.to_number for c in s.scalars(select(Call).where(Call.purpose == "page"))] == [
            "+886912345001",
            "+886912345002",
        ]
        assert s.get(Page, page.id).status == "acknowledged"


def test_an_answer_before_the_page_starts_means_it_never_starts(demo, sessions, redis_url):
    """The caller's live <Dial> reached someone on call before the worker routed the ticket."""
    from intake.paging import on_call_answered

    conn = Redis.from_url(redis_url)
    receipt = receive(sessions, call_contact(text="", category_hint="emergency"), demo.config)
    with sessions() as s:
        assert on_call_answered(s, receipt.ticket_id, "+886912345001", how="test") is True
        assert on_call_answered(s, receipt.ticket_id, "+886912345002", how="test") is False
        s.commit()
    run_jobs(conn, NOW)
    run_jobs(conn, NOW + timedelta(hours=2))
    with sessions() as s:
        assert s.scalars(select(Call).where(Call.purpose == "page")).all() == []
        kinds = [e.kind for e in s.get(Ticket, receipt.ticket_id).events]
        assert "page_started" not in kinds and "escalated" not in kinds

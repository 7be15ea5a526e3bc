"""Resolving a repair, the follow-up call or email (回訪, 滿意度), and the scripted replies."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from jinja2 import UndefinedError
from redis import Redis
from sqlalchemy import select

from intake import clock
from intake.constants import LANGUAGES
from intake.lifecycle import follow_up_token, resolve
from intake.models import Callback, Event, Outbox, OutgoingMessage, Ticket
from intake.phrases import render
from intake.service import receive
from tests.factories import call_contact, email_contact
from tests.worker.helpers import run_jobs
from worker.scripted import EVENTS, send_scripted_reply, template_base


def _resolve(sessions, config, receipt, when):
    with sessions() as s:
        ticket = s.get(Ticket, receipt.ticket_id)
        done = resolve(
            s, ticket, "換了水管", actor="engineering@hotline.localhost", config=config, now=when
        )
        s.commit()
        return done.follow_up.id


def test_resolving_a_repair_schedules_the_follow_up_in_the_next_allowed_window(
    demo, sessions, redis_url
):
    cfg = demo.config
    friday_evening = datetime(2026, 11, 27, 17, 30, tzinfo=cfg.timezone)
    receipt = receive(sessions, call_contact(text="廚房漏水"), cfg, now=friday_evening)
    callback_id = _resolve(sessions, cfg, receipt, friday_evening)
    with sessions() as s:
        cb = s.get(Callback, callback_id)
        assert cb.purpose == "follow_up" and cb.phone == "+886912000001"
        # 24 h later is Saturday 17:30, after Saturday's 12:00 closing; Sunday is closed.
        assert cb.due_at.astimezone(cfg.timezone) == datetime(
            2026, 11, 30, 9, 0, tzinfo=cfg.timezone
        )


def test_an_email_only_resident_gets_the_questions_by_email_and_one_click_answers(
    demo, sessions, redis_url
):
    from web.app import create_app

    cfg = demo.config
    conn = Redis.from_url(redis_url)
    moment = datetime(2026, 11, 30, 10, 0, tzinfo=cfg.timezone)
    receipt = receive(sessions, email_contact(), cfg, now=moment)
    run_jobs(conn, moment)
    callback_id = _resolve(sessions, cfg, receipt, moment)
    run_jobs(conn, moment + timedelta(days=2))
    [survey] = [m for m in (_all(sessions)) if m.template == "survey_email"]
    assert survey.to == "chan.taiman@example.com" and "滿意度" in survey.subject
    link = next(line for line in survey.body_text.splitlines() if "非常滿意" in line)
    path = link.split("https://hotline.example.com", 1)[1]
    clock.set_now(moment + timedelta(days=2))  # the resident reads the mail (reset after the test)
    client = create_app(settings=demo).test_client()
    previewed = client.get(path)  # a mail scanner or a link preview opening the link
    assert previewed.status_code == 200 and "5/5" in previewed.text
    assert '<form method="post">' in previewed.text and "送出回覆" in previewed.text
    with sessions() as s:
        assert s.get(Ticket, receipt.ticket_id).satisfaction is None, "opening is not answering"
    answered = client.post(path)
    assert (
        answered.status_code == 200 and "謝謝您的回覆" in answered.text and "5/5" in answered.text
    )
    forged = client.post(f"/followup/{callback_id}.1.AAAAAAAAAAAAAAAA")
    assert forged.status_code == 404 and "此連結無效" in forged.text
    not_fixed = client.post(
        "/followup/" + follow_up_token(demo.secret_key, callback_id, "not_fixed")
    )
    assert not_fixed.status_code == 200
    with sessions() as s:
        ticket = s.get(Ticket, receipt.ticket_id)
        assert ticket.satisfaction == 5
        assert ticket.status == "routed" and ticket.department.code == "engineering"
        kinds = [e.kind for e in s.scalars(select(Event).where(Event.ticket_id == ticket.id))]
        assert "survey_answered" in kinds and "reopened" in kinds
        assert (
            s.scalar(
                select(Outbox).where(
                    Outbox.job == "notify_department",
                    Outbox.args["reason"].as_string() == "not_fixed",
                )
            )
            is not None
        )
    run_jobs(conn, moment + timedelta(days=2, minutes=1))
    told = [
        m
        for m in _all(sessions)
        if m.template == "notify_department_email" and "未解決" in m.subject
    ]
    assert len(told) == 1 and told[0].to == "engineering@example.com"


def _all(sessions):
    with sessions() as s:
        return list(s.scalars(select(OutgoingMessage).order_by(OutgoingMessage.id)))


def test_a_reply_is_written_once_even_when_its_job_runs_twice(demo, sessions, redis_url):
    receipt = receive(sessions, call_contact(text="電梯壞了"), demo.config)
    first = send_scripted_reply(receipt.ticket_id, "need_more_info", key="op1")
    second = send_scripted_reply(receipt.ticket_id, "need_more_info", key="op1")
    assert first.startswith("need_more_info sms") and second == "already sent"
    [sms] = _all(sessions)
    assert sms.to == "+886912000001" and "補充" in sms.body_text
    with sessions() as s:
        [send] = s.scalars(select(Outbox).where(Outbox.job == "send_sms")).all()
        assert send.dedupe_key == f"send:{sms.id}"


def test_replies_come_in_the_residents_language(demo, sessions, redis_url):
    receipt = receive(
        sessions,
        email_contact(
            sender_email="emily.carter@example.com",
            sender_name="Emily Carter",
            subject="Kitchen leak",
            text="My kitchen tap is leaking, please repair.",
        ),
        demo.config,
    )
    send_scripted_reply(receipt.ticket_id, "received")
    [mail] = [m for m in _all(sessions) if m.template == "reply_received_email"]
    assert (
        mail.subject.startswith("[Kangho Property] We have received")
        and "repair request" in mail.body_text
    )


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("event", EVENTS)
def test_every_event_has_strict_templates_in_every_language(language, event):
    context = {
        "company": "C",
        "ref": "HL-000001",
        "ref_spoken": "H, L",
        "name": None,
        "category": "c",
        "department": "d",
        "due": "2026-11-30 09:00",
        "resolution_due": "2026-12-09 16:00",
        "note": "",
        "links": {a: f"https://x/{a}" for a in ("fixed", "not_fixed", "1", "2", "3", "4", "5")},
    }
    base = template_base(event)
    assert render(f"{base}_email_subject", language, **context)
    body = render(f"{base}_email_body", language, **context)
    assert "HL-000001" in body
    if event != "survey":
        assert render(f"{base}_sms", language, **context)
    with pytest.raises(UndefinedError):
        render(f"{base}_email_body", language, company="C")

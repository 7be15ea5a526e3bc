"""Outbound callback calls placed by the dialer: TwiML by purpose, answering machines, call end."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from intake.callbacks import schedule_callback
from intake.models import Call, Callback, CallbackAttempt, Outbox, Ticket
from intake.phrases import spoken_ref
from intake.service import receive
from tests.factories import call_contact
from tests.voice.conftest import check_twiml
from voice.simulator import SILENCE, new_sid, press


def place(
    sessions: Any, settings: Any, purpose: str, phone: str = "+886912000001"
) -> dict[str, Any]:
    """What the worker's dialer leaves behind in local mode: callback, attempt and a queued Call."""
    receipt = receive(sessions, call_contact(sender_phone=phone, text="浴室漏水"), settings.config)
    sid = new_sid("CA")
    base = settings.public_base_url
    with sessions() as session:
        ticket = session.get(Ticket, receipt.ticket_id)
        callback = schedule_callback(
            session, ticket, phone=phone, purpose=purpose, config=settings.config
        )
        attempt = CallbackAttempt(
            callback_id=callback.id,
            attempt_no=1,
            call_sid=sid,
            idempotency_key=f"cb:{callback.id}:1",
            status="placed",
        )
        session.add(attempt)
        session.flush()
        url = f"{base}/voice/outbound?attempt={attempt.id}"
        session.add(
            Call(
                call_sid=sid,
                direction="outbound-api",
                from_number="+886227000000",
                to_number=phone,
                status="queued",
                purpose=purpose,
                callback_id=callback.id,
                meta={"local": True, "url": url, "status_callback": f"{base}/voice/status"},
            )
        )
        session.commit()
        return {
            "sid": sid,
            "url": url,
            "status": f"{base}/voice/status",
            "ticket_id": ticket.id,
            "ref": ticket.ref,
            "callback_id": callback.id,
            "attempt_id": attempt.id,
            "phone": phone,
        }


def answer(
    simulator_for: Any,
    placed: dict[str, Any],
    steps: list[Any],
    *,
    duplicate_status: bool = False,
    out_of_order: bool = False,
    **kw: Any,
) -> Any:
    simulator = simulator_for(steps, duplicate_status=duplicate_status, out_of_order=out_of_order)
    result = simulator.answer(
        placed["sid"],
        placed["url"],
        placed["status"],
        from_number="+886227000000",
        to_number=placed["phone"],
        **kw,
    )
    check_twiml(result)
    return result


def _ticket(sessions: Any, ticket_id: int) -> Ticket:
    with sessions() as session:
        ticket = session.get(Ticket, ticket_id)
        _ = ticket.events, ticket.callbacks
        return ticket


def _call_ended_rows(sessions: Any) -> list[Outbox]:
    with sessions() as session:
        return list(session.scalars(select(Outbox).where(Outbox.job == "callback_call_ended")))


@pytest.mark.parametrize(
    "purpose", ["missed_call", "virtual_hold", "voicemail", "after_hours", "operator_request"]
)
def test_callback_opening_names_the_ticket_then_connects_an_operator(
    simulator_for, sessions, demo, purpose
) -> None:  # type: ignore[no-untyped-def]
    placed = place(sessions, demo, purpose)
    result = answer(simulator_for, placed, [])
    assert (
        result.said[0][1]
        == f"您好，這裡是康和物業客服中心，就您的單號 {spoken_ref(placed['ref'], 'zh-Hant')} 回電給您。"
    )
    assert "<Enqueue" in "".join(e.body for e in result.exchanges)
    [row] = _call_ended_rows(sessions)
    assert row.args == {
        "attempt_id": placed["attempt_id"],
        "call_status": "completed",
        "answered_by": "human",
    }


def test_follow_up_fixed(simulator_for, sessions, demo) -> None:  # type: ignore[no-untyped-def]
    placed = place(sessions, demo, "follow_up")
    result = answer(simulator_for, placed, [press("1")], duplicate_status=True)
    assert "請問問題已經解決了嗎" in result.text()
    ticket = _ticket(sessions, placed["ticket_id"])
    assert [e.kind for e in ticket.events].count("follow_up_fixed") == 1
    callback = next(c for c in ticket.callbacks if c.id == placed["callback_id"])
    assert (callback.outcome, callback.status) == ("fixed", "done")
    assert len(_call_ended_rows(sessions)) == 1


def test_follow_up_not_fixed_reopens_and_notifies(simulator_for, sessions, demo) -> None:  # type: ignore[no-untyped-def]
    placed = place(sessions, demo, "follow_up")
    with sessions() as session:
        session.get(Ticket, placed["ticket_id"]).status = "resolved"
        session.commit()
    answer(simulator_for, placed, [SILENCE, press("2")])
    ticket = _ticket(sessions, placed["ticket_id"])
    assert ticket.status == ("routed" if ticket.department_id else "new"), "reopened"
    assert "follow_up_not_fixed" in [e.kind for e in ticket.events]
    with sessions() as session:
        [notify] = session.scalars(select(Outbox).where(Outbox.job == "notify_department"))
        assert notify.args == {"ticket_id": ticket.id, "reason": "not_fixed"}


@pytest.mark.parametrize("lang_phone", ["+886912000005", "+8613800138000"])
def test_survey_in_the_residents_language(simulator_for, sessions, demo, lang_phone) -> None:  # type: ignore[no-untyped-def]
    placed = place(sessions, demo, "survey", phone=lang_phone)
    result = answer(simulator_for, placed, [press("x"), press("4")])
    expected = {"+886912000005": "en-US", "+8613800138000": "cmn-CN"}[lang_phone]
    assert {lang for lang, _ in result.said} == {expected}
    ticket = _ticket(sessions, placed["ticket_id"])
    assert ticket.satisfaction == 4
    assert [e.kind for e in ticket.events].count("survey_answered") == 1


def test_answering_machine_gets_a_short_message(simulator_for, sessions, demo) -> None:  # type: ignore[no-untyped-def]
    placed = place(sessions, demo, "follow_up")
    result = answer(simulator_for, placed, [press("1")], answered_by="machine_end_beep")
    assert len(result.said) == 1 and "稍後會再致電" in result.said[0][1]
    assert "<Hangup" in result.exchanges[0].body and "<Gather" not in result.exchanges[0].body
    ticket = _ticket(sessions, placed["ticket_id"])
    assert ticket.satisfaction is None and "follow_up_fixed" not in [e.kind for e in ticket.events]
    [row] = _call_ended_rows(sessions)
    assert row.args["answered_by"] == "machine_end_beep"


def test_no_answer_ends_the_attempt_once(simulator_for, sessions, demo) -> None:  # type: ignore[no-untyped-def]
    placed = place(sessions, demo, "missed_call")
    answer(simulator_for, placed, [], outcome="no-answer", duplicate_status=True, out_of_order=True)
    [row] = _call_ended_rows(sessions)
    assert row.args["call_status"] == "no-answer" and row.dedupe_key == f"callend:{placed['sid']}"
    with sessions() as session:
        call = session.scalar(select(Call).where(Call.call_sid == placed["sid"]))
        assert call.status == "no-answer"
        assert session.get(Callback, placed["callback_id"]).status != "done"

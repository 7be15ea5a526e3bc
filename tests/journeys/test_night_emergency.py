"""A night emergency, through the front doors: a Cantonese caller reports a gas leak after hours.

Whoever on call answers (the caller's own call, or 1 pressed on a page call) stops the page and
becomes the ticket's assignee; an emergency nobody on call answers climbs the ladder: the
supervisor, then the project manager.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from voice.simulator import HANGUP, press, say

TAIPEI = ZoneInfo("Asia/Taipei")
NIGHT = datetime(2026, 12, 1, 23, 40, tzinfo=TAIPEI)  # a Tuesday, long after 18:00
ENGINEER_1, ENGINEER_2, SECURITY = "+886912345001", "+886912345002", "+886912345101"
CANTONESE = press("2")  # the language menu: 國語 1, 廣東話 2, English 3
ENGINEER = "engineering@hotline.localhost"
SUPERVISOR = "supervisor@hotline.localhost"
MANAGEMENT = "management@example.com"


def _engineer_on_call_has_phone(world: Any, phone: str) -> None:
    """The admin records the engineer's mobile in the console (Admin → Operators)."""
    admin = world.console("admin@hotline.localhost")
    with world.sessions() as s:
        from sqlalchemy import select

        from intake.models import Operator

        engineer_id = s.scalar(select(Operator.id).where(Operator.email == ENGINEER))
    response = admin.post(
        f"/admin/operators/{engineer_id}",
        {
            "role": "department",
            "department": "engineering",
            "language": "zh-Hant",
            "phone": phone,
            "active": "1",
        },
    )
    assert response.status_code in (302, 303)


def _the_emergency(world: Any) -> dict[str, Any]:
    [ticket] = [t for t in world.hotline("tickets", "list", "--format", "json")]
    shown = world.hotline("tickets", "show", ticket["ref"], "--format", "json")
    assert shown["category"] == "emergency" and shown["priority"] == "P1"
    return shown


def _kinds(ticket: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in ticket["events"]]


def _page_calls(world: Any) -> list[str]:
    return [c["To"] for c in world.placed_calls() if "/voice/page" in c["Url"]]


def test_the_second_engineer_answers_the_callers_call_and_takes_the_emergency(world):
    world.at(NIGHT)
    _engineer_on_call_has_phone(world, ENGINEER_2)
    result = world.call(
        [CANTONESE, say("十二樓廚房煤氣洩漏,好大陣煤氣味")],
        caller="+85261234567",
        dial_outcomes=["no-answer", "completed"],
    )
    assert any(lang == "yue-HK" for lang, _ in result.said), "the caller is answered in Cantonese"
    dialled = [e for e in result.exchanges if "/voice/emergency/dialed" in e.url]
    assert [e.params["DialCallStatus"] for e in dialled] == ["no-answer", "completed"]
    world.drain()
    world.drain(NIGHT + timedelta(hours=3))  # every page timer and ladder rung is long past

    ticket = _the_emergency(world)
    assert ticket["language"] == "zh-Hant"
    assert ticket["assignee"] == ENGINEER
    kinds = _kinds(ticket)
    assert "on_call_answered" in kinds and "page_acknowledged" in kinds and "assigned" in kinds
    assert "page_started" not in kinds and "page_escalated" not in kinds
    assert "escalated" not in kinds
    assigned = next(e for e in ticket["events"] if e["kind"] == "assigned")
    assert assigned["message"] == ENGINEER
    assert _page_calls(world) == [], "nobody is paged for an emergency someone already has"
    assert world.sms_sent(ENGINEER_1) == [] and world.sms_sent(SECURITY) == []


def test_nobody_picks_up_the_callers_call_so_the_page_runs_until_the_second_engineer_presses_1(
    world,
):
    world.at(NIGHT)
    _engineer_on_call_has_phone(world, ENGINEER_2)
    world.call(
        [CANTONESE, press("9"), HANGUP],
        caller="+85261234567",
        dial_outcomes=["no-answer", "no-answer", "no-answer"],
    )
    world.drain()
    assert _page_calls(world) == [ENGINEER_1]
    world.answer_next_call([], outcome="no-answer")  # the first engineer sleeps through it
    world.drain(NIGHT + timedelta(seconds=125))
    assert _page_calls(world) == [ENGINEER_1, ENGINEER_2]
    placed, _ = world.answer_next_call([press("1")])
    assert placed["To"] == ENGINEER_2
    world.drain(NIGHT + timedelta(hours=3))

    assert _page_calls(world) == [ENGINEER_1, ENGINEER_2], "the page stopped at the second"
    assert [s["To"] for s in world.sms_sent() if s["To"] in (ENGINEER_1, ENGINEER_2, SECURITY)] == [
        ENGINEER_1,
        ENGINEER_2,
    ]
    ticket = _the_emergency(world)
    assert ticket["assignee"] == ENGINEER
    kinds = _kinds(ticket)
    assert kinds.count("page_called") == 2 and kinds.count("page_acknowledged") == 1
    assert "page_unacknowledged" not in kinds and "escalated" not in kinds
    acked = next(e for e in ticket["events"] if e["kind"] == "page_acknowledged")
    assert ENGINEER_2 in acked["message"]
    assert world.mail_to(MANAGEMENT) == []


def test_an_emergency_nobody_answers_goes_to_the_supervisor_then_the_project_manager(world):
    world.at(NIGHT)
    world.call(
        [CANTONESE, say("地下停車場水浸,水好急"), HANGUP],
        caller="+85261234568",
        dial_outcomes=["no-answer", "busy", "no-answer"],
    )
    world.drain()
    moment = NIGHT
    for number in (ENGINEER_1, ENGINEER_2, SECURITY):
        assert _page_calls(world)[-1] == number
        world.answer_next_call([], outcome="no-answer")
        moment += timedelta(seconds=125)
        world.drain(moment)
    assert _page_calls(world) == [ENGINEER_1, ENGINEER_2, SECURITY]

    ticket = _the_emergency(world)
    assert ticket["assignee"] is None
    assert "page_unacknowledged" in _kinds(ticket)
    escalations = [e for e in ticket["events"] if e["kind"] == "escalated"]
    assert [e["message"].rsplit(" ", 1)[-1] for e in escalations] == ["supervisor"]
    supervisor_mail = [
        m for m in world.hotline("outbox", "list", "--format", "json") if SUPERVISOR in m["to"]
    ]
    assert len(supervisor_mail) == 1 and ticket["ref"] in supervisor_mail[0]["subject"]
    assert world.mail_to(MANAGEMENT) == [], "the project manager is not told yet"

    world.drain(moment + timedelta(minutes=30))
    assert world.mail_to(MANAGEMENT) == []
    world.drain(moment + timedelta(minutes=61))  # sla.manager_after_minutes: 60
    ticket = _the_emergency(world)
    escalations = [e for e in ticket["events"] if e["kind"] == "escalated"]
    assert [e["message"].split("escalated to the ")[-1] for e in escalations] == [
        "supervisor",
        "project manager",
    ]
    [manager_mail] = world.mail_to(MANAGEMENT)
    assert ticket["ref"] in manager_mail["subject"]
    world.drain(moment + timedelta(hours=6))  # the SLA sweep or a second run tells nobody twice
    assert len(world.mail_to(MANAGEMENT)) == 1
    assert _page_calls(world) == [ENGINEER_1, ENGINEER_2, SECURITY]

"""Issue 13, contacts entered by hand: a resident at the counter, a letter from someone unknown.

Through the console over HTTP with its CSRF token: the operator finds Mrs 李 by her unit, files
what she reports as a walk-in, and the ticket takes the same path as a call or an email — routed
by the rules to engineering, her reference written to her in her language, its SLA running. A double submit files one ticket; a form with a bad address is refused with words, not
a 500, and files nothing.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from intake.models import Ticket
from tests.journeys.conftest import World
from tests.web.console_helpers import OPERATOR

TAIPEI = ZoneInfo("Asia/Taipei")


def submission_of(page: str) -> str:
    match = re.search(r'name="submission" value="([0-9a-f]{32})"', page)
    assert match, "the form carries a one-time submission id"
    return match.group(1)


def tickets(world: World) -> int:
    with world.sessions() as session:
        return int(session.scalar(select(func.count(Ticket.id))) or 0)


def test_a_walk_in_is_filed_routed_and_told_like_any_other_contact(world: World) -> None:
    world.at(datetime(2030, 10, 16, 10, 0, tzinfo=TAIPEI))  # a Wednesday morning
    desk = world.console(OPERATOR)

    found = desk.get("/tickets/new?q=3F-2").get_data(as_text=True)
    assert "李小梅" in found and "翠林苑A座" in found
    chosen_link = re.search(r'href="(/tickets/new\?resident=\d+[^"]*)"', found)
    assert chosen_link, "each match can be chosen"
    page = desk.get(chosen_link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert 'id="chosen-resident"' in page and "李小梅" in page
    resident_id = re.search(r'name="resident_id" value="(\d+)"', page)
    assert resident_id
    form = {
        "submission": submission_of(page),
        "resident_id": resident_id.group(1),
        "channel": "walk_in",
        "description": "浴室天花板漏水，水一直滴到地上，請派人來看看。",
    }

    filed = desk.post("/tickets/new", form)
    assert filed.status_code == 303
    ticket_page = desk.get(filed.headers["Location"]).get_data(as_text=True)
    ref = re.search(r"HL-\d{6}", filed.headers["Location"])
    assert ref
    assert f"已建立工單 {ref.group(0)}" in ticket_page
    assert "來訪" in ticket_page
    assert "客服代錄" in ticket_page and "網上留言" not in ticket_page

    again = desk.post("/tickets/new", form)  # the browser resends the form
    assert again.status_code == 303 and again.headers["Location"] == filed.headers["Location"]
    assert "已建立為工單" in desk.get(again.headers["Location"]).get_data(as_text=True)
    assert tickets(world) == 1

    world.drain()
    shown = world.hotline("tickets", "show", ref.group(0), "--format", "json")
    assert shown["channel"] == "walk_in"
    assert shown["department"] == "engineering" and shown["status"] == "routed"
    assert shown["resident"]["name"] == "李小梅"
    assert shown["resolution_due_at"], "the SLA clock runs as for any ticket"
    to_her = [m for m in world.outgoing() if m.to == "lee.siumui@example.com"]
    assert len(to_her) == 2, "received, then routed — once each"
    received, routed = to_her
    assert ref.group(0) in (received.subject or "") and "受理" in received.body_text
    assert "李小梅您好" in received.body_text, "in her language, by her name"
    assert "工程維修部" in routed.body_text


def test_a_letter_from_someone_unknown_and_a_form_with_mistakes(world: World) -> None:
    world.at(datetime(2030, 10, 16, 10, 0, tzinfo=TAIPEI))
    desk = world.console(OPERATOR)
    page = desk.get("/tickets/new?channel=letter&q=nobody-like-this").get_data(as_text=True)
    assert "沒有相符的住戶" in page

    wrong = desk.post(
        "/tickets/new",
        {
            "submission": submission_of(page),
            "channel": "letter",
            "name": "Mr Tam",
            "email": "not-an-address",
            "description": "",
        },
    )
    assert wrong.status_code == 400
    body = wrong.get_data(as_text=True)
    assert "這不是有效的電子郵件地址" in body and "請填寫住戶的查詢或反映內容" in body
    assert tickets(world) == 0

    letter = desk.post(
        "/tickets/new",
        {
            "submission": submission_of(page),
            "channel": "letter",
            "name": "Mr Tam",
            "phone": "0912 345 678",
            "subject": "Noise from the car park at night",
            "description": "Cars race in the basement car park after midnight every weekend.",
            "category": "complaint",
        },
    )
    assert letter.status_code == 303
    world.drain()
    [row] = world.hotline("tickets", "list", "--format", "json")
    assert row["channel"] == "letter" and row["category"] == "complaint"
    assert row["contact_phone"] == "+886912345678" and row["language"] == "en"

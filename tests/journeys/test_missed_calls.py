"""Journey 4 (issue 11): a resident hangs up in the menu three times.

One missed-call callback is owed; it is tried three times, spaced by the policy and never outside
the allowed hours (business hours, holidays, quiet hours); after the third unanswered attempt the
resident is written to in their language, and an operator gets the callback and takes it.

The moments are fixed (a Friday late afternoon in Taipei, nothing to do with today): the second
attempt's retry would fall after closing, so the third attempt moves to Saturday's opening.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from click.testing import CliRunner

from intake.calendar import in_quiet_hours, is_open
from intake.cli import main
from tests.journeys.conftest import World
from tests.web.console_helpers import OPERATOR, SUPERVISOR
from voice.simulator import HANGUP

TAIPEI = ZoneInfo("Asia/Taipei")
EMILY = "+886912000005"  # Emily Carter, a demo resident who speaks English; a mobile number


def taipei(day: int, hour: int, minute: int) -> datetime:
    """A moment in October 2030 (Friday the 18th, Saturday the 19th), centre's time."""
    return datetime(2030, 10, day, hour, minute, tzinfo=TAIPEI)


def dial_times(world: World) -> list[datetime]:
    """When the app asked Twilio to dial (the fake stamps each call with the world's clock)."""
    return [parsedate_to_datetime(c["date_created"]) for c in world.twilio.calls]


def missed_callbacks(world: World) -> list[dict[str, Any]]:
    rows = world.hotline("callbacks", "list", "--format", "json")
    return [r for r in rows if r["purpose"] == "missed_call"]


def card(page: str, callback_id: int) -> str:
    """The callback's card on the console's /callbacks board."""
    match = re.search(
        rf'<article class="card" data-callback="{callback_id}">(.*?)</article>', page, re.S
    )
    assert match, f"callback {callback_id} is not on the board"
    return match.group(1)


def no_answer(world: World, moment: datetime, to: str = EMILY) -> None:
    """The resident's phone rings out at `moment`; the workers take it from there."""
    world.at(moment)
    placed, _ = world.answer_next_call([], outcome="no-answer")
    assert placed["To"] == to
    world.drain()


def test_three_hang_ups_one_callback_three_attempts_then_a_letter_and_an_operator(
    world: World,
) -> None:
    config = world.settings.config
    spacing = timedelta(minutes=config.callbacks.retry_spacing_minutes)
    assert config.callbacks.max_attempts == 3

    # Friday 17:05: Emily calls and hangs up in the menu; the worker calls her back at once.
    world.at(taipei(18, 17, 5))
    world.call([HANGUP], caller=EMILY)
    world.drain()
    assert len(dial_times(world)) == 1
    no_answer(world, taipei(18, 17, 6))

    # She calls twice more while the retry waits, hanging up in the menu each time.
    for minute in (20, 30):
        world.at(taipei(18, 17, minute))
        world.call([HANGUP], caller=EMILY)
        world.drain()
    callbacks = missed_callbacks(world)
    assert len(callbacks) == 1, callbacks
    (callback,) = callbacks
    assert (callback["phone"], callback["status"], callback["attempts"]) == (EMILY, "scheduled", 1)
    assert len(dial_times(world)) == 1  # the hang-ups did not make the app dial again

    # The retry falls due: second attempt, not answered either.
    world.drain(taipei(18, 17, 35))
    assert len(dial_times(world)) == 1  # not before the spacing
    world.drain(taipei(18, 17, 36))
    assert len(dial_times(world)) == 2
    no_answer(world, taipei(18, 17, 37))

    # 18:07 would be the spacing, but the centre closed at 18:00: nothing is dialled that evening,
    # overnight (quiet hours) or before Saturday's opening.
    for moment in (taipei(18, 18, 7), taipei(18, 21, 30), taipei(19, 3, 0), taipei(19, 8, 59)):
        world.drain(moment)
        assert len(dial_times(world)) == 2, moment
    assert world.sms_sent(EMILY) == []

    world.drain(taipei(19, 9, 0))
    assert len(dial_times(world)) == 3
    no_answer(world, taipei(19, 9, 1))
    world.drain(taipei(19, 9, 2))
    assert len(dial_times(world)) == 3  # three attempts, no fourth

    # Exactly three attempts, each spaced by the policy and inside the allowed hours.
    times = dial_times(world)
    assert [t.astimezone(TAIPEI) for t in times] == [
        taipei(18, 17, 5),
        taipei(18, 17, 36),
        taipei(19, 9, 0),
    ]
    for earlier, later in pairwise(times):
        assert later >= earlier + spacing
    for moment in times:
        assert is_open(moment, config) and not in_quiet_hours(moment, config), moment

    # Emily is written to once, by SMS to her mobile, in English, and not in quiet hours.
    (callback,) = missed_callbacks(world)
    ticket = world.hotline("tickets", "show", callback["ticket_ref"], "--format", "json")
    assert ticket["language"] == "en"
    letters = world.sms_sent(EMILY)
    assert len(letters) == 1, letters
    assert "could not reach you" in letters[0]["Body"]
    assert callback["ticket_ref"] in letters[0]["Body"]
    sms_rows = world.outgoing(channel="sms", to=EMILY)
    assert [m.status for m in sms_rows] == ["sent"]
    assert sms_rows[0].sent_at is not None
    assert not in_quiet_hours(sms_rows[0].sent_at, config)

    # The callback now needs an operator: on the command line and on the console's board.
    assert (callback["status"], callback["attempts"], callback["outcome"]) == (
        "needs_operator",
        3,
        "no_answer",
    )
    operator = world.console(OPERATOR)
    board = operator.get("/callbacks")
    assert board.status_code == 200
    mine = card(board.get_data(as_text=True), callback["id"])
    assert callback["ticket_ref"] in mine and "3/3" in mine
    assert f"/callbacks/{callback['id']}/take" in mine

    # The operator takes it; it is theirs, and nobody else can take it.
    taken = operator.post(f"/callbacks/{callback['id']}/take")
    assert taken.status_code in (302, 303)
    assert taken.headers["Location"].endswith(f"/tickets/{callback['ticket_ref']}")
    # (the demo operators read the console in Traditional Chinese: 已接手 "taken", 由您 "by you")
    mine = card(operator.get("/callbacks").get_data(as_text=True), callback["id"])
    assert "已接手" in mine and "由您" in mine and "/take" not in mine

    supervisor = world.console(SUPERVISOR)
    theirs = card(supervisor.get("/callbacks").get_data(as_text=True), callback["id"])
    assert "已接手" in theirs and "由您" not in theirs and "/take" not in theirs
    supervisor.post(f"/callbacks/{callback['id']}/take")
    shown = world.hotline("tickets", "show", callback["ticket_ref"], "--format", "json")
    claims = [e for e in shown["events"] if e["kind"] == "callback_claimed"]
    assert len(claims) == 1 and OPERATOR in claims[0]["message"], claims
    # The command line and the API say whose it is, and list it by its status.
    [listed] = [c for c in missed_callbacks(world) if c["id"] == callback["id"]]
    assert listed["claimed_by"] == OPERATOR and listed["status"] == "needs_operator"
    found = world.api("supervisor-board", role="readonly").get(
        "/api/v1/callbacks?status=needs_operator"
    )
    assert found.status_code == 200, found.get_data(as_text=True)
    assert [c["claimed_by"] for c in found.get_json()["items"]] == [OPERATOR]


def test_a_resident_on_a_landline_is_written_to_by_email_in_her_language(
    world: World, tmp_path: Path
) -> None:
    landline, address = "+886227001234", "zhou.xiuying@example.cn"
    residents = tmp_path / "residents.csv"
    residents.write_text(
        f"name,language,building,unit,phone,email\n周秀英,zh-Hans,A,5F-1,{landline},{address}\n",
        encoding="utf-8",
    )
    imported = CliRunner().invoke(main, ["import-residents", str(residents)])
    assert imported.exit_code == 0, imported.output

    # Saturday 11:40, twenty minutes before the centre closes for the weekend.
    world.at(taipei(19, 11, 40))
    world.call([HANGUP], caller=landline)
    world.drain()
    no_answer(world, taipei(19, 11, 41), to=landline)
    for moment in (taipei(19, 12, 11), taipei(20, 10, 0), taipei(21, 8, 59)):
        world.drain(moment)  # closed Saturday afternoon and Sunday
        assert len(dial_times(world)) == 1, moment
    world.drain(taipei(21, 9, 0))
    no_answer(world, taipei(21, 9, 1), to=landline)
    world.drain(taipei(21, 9, 31))
    no_answer(world, taipei(21, 9, 32), to=landline)
    world.drain(taipei(21, 9, 33))

    assert [t.astimezone(TAIPEI) for t in dial_times(world)] == [
        taipei(19, 11, 40),
        taipei(21, 9, 0),
        taipei(21, 9, 31),
    ]
    (callback,) = missed_callbacks(world)
    assert (callback["status"], callback["attempts"]) == ("needs_operator", 3)
    assert world.sms_sent() == [], "a landline takes no text messages"
    (letter,) = world.mail_to(address)
    assert callback["ticket_ref"] in letter["subject"]
    assert "我们多次致电未能联络上您" in letter["body_text"]  # Simplified Chinese, as she reads

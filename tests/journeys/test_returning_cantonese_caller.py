"""Journey (issue 11, "Cantonese, complete"): a Hong Kong resident's choice of Cantonese is kept.

黃志強, a demo resident with a Hong Kong mobile who reads Traditional Chinese, calls for the first
time: Traditional script says nothing about Cantonese or Mandarin, so the hotline asks; he presses
廣東話 and reports a leak, in Cantonese from then on. What is written to him stays in Traditional
Chinese. The next day he calls again: greeted by name in Cantonese, no language menu; he asks for
progress and hears his own ticket's status in Cantonese, and is refused a neighbour's ticket.

The moments are fixed (October 2030, the centre open), nothing to do with today.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from intake.calendar import is_open
from intake.phrases import render, spoken_ref
from tests.journeys.conftest import World
from voice.simulator import CallResult, press, say

TAIPEI = ZoneInfo("Asia/Taipei")
WONG = "+85291234567"  # 黃志強: Hong Kong mobile, written language zh-Hant, no spoken choice yet
WONG_EMAIL = "wong.chikeung@example.hk"
CHAN = "+886912000001"  # 陳大文: a Taipei neighbour, Mandarin
ENGINEER = "engineering@hotline.localhost"  # 王工程師, engineering department
OPERATOR = "operator@hotline.localhost"  # 林接線員


def taipei(day: int, hour: int, minute: int) -> datetime:
    """A moment in October 2030 (Monday the 14th, Tuesday the 15th), the centre's time."""
    return datetime(2030, 10, day, hour, minute, tzinfo=TAIPEI)


def ticket_of(world: World, phone: str) -> dict[str, Any]:
    rows = world.hotline("tickets", "list", "--format", "json")
    mine = [t for t in rows if t["contact_phone"] == phone]
    assert len(mine) == 1, rows
    return mine[0]


def number_of(ref: str) -> str:
    """The digits a caller keys in for a reference such as HL-000123."""
    return str(int("".join(ch for ch in ref if ch.isdigit())))


def spoken(result: CallResult, start: int = 0) -> str:
    return "\n".join(words for _, words in result.said[start:])


def test_a_returning_cantonese_caller_is_remembered_and_hears_only_his_own_ticket(
    world: World,
) -> None:
    config = world.settings.config
    monday = taipei(14, 10, 0)
    assert is_open(monday, config) and is_open(taipei(15, 11, 0), config)

    # Monday 10:00: first call. A known resident, but his script does not say what he speaks.
    world.at(monday)
    first = world.call(
        [press("2"), press("1"), say("廚房個水喉漏水，地下濕晒")],
        caller=WONG,
        record_seconds=0,
    )
    menu = spoken(first)
    assert "國語請按1" in menu and "廣東話請按2" in menu and "For English, press 3" in menu
    after_choice = first.said[4:]
    assert after_choice and {code for code, _ in after_choice} == {"yue-HK"}
    assert "你嘅報修已經受理" in spoken(first, 4) and "我哋會盡快安排專人跟進" in spoken(first, 4)
    world.drain()

    ticket = ticket_of(world, WONG)
    assert ticket["language"] == "zh-Hant", "written to in Traditional Chinese"
    assert ticket["resident"]["name"] == "黃志強"
    assert "廚房個水喉漏水" in ticket["description"]

    # Monday 10:30: a neighbour reports something of his own.
    world.at(taipei(14, 10, 30))
    neighbour = world.call([press("1"), say("客廳冷氣不冷")], caller=CHAN, record_seconds=0)
    assert neighbour.said[0] == ("cmn-TW", "陳大文您好，這裡是康和物業客服中心。")
    world.drain()
    theirs = ticket_of(world, CHAN)

    # Monday 14:00: engineering fixes the leak and the operator writes to him: in Traditional
    # Chinese, his written language, whatever he speaks.
    world.at(taipei(14, 14, 0))
    engineer = world.console(ENGINEER)
    resolved = engineer.post(
        f"/tickets/{ticket['ref']}/resolve", {"resolution_note": "已更換廚房水管接頭"}
    )
    assert resolved.status_code in (302, 303), resolved.get_data(as_text=True)[:500]
    operator = world.console(OPERATOR)
    replied = operator.post(
        f"/tickets/{ticket['ref']}/reply", {"body": "黃先生您好，廚房水管已修好。"}
    )
    assert replied.status_code in (302, 303), replied.get_data(as_text=True)[:500]
    world.drain()
    letters = world.mail_to(WONG_EMAIL)
    assert [m["subject"] for m in letters] == [
        render("reply_email_subject", "zh-Hant", subject=ticket["subject"], ref=ticket["ref"])
    ]
    assert not any(word in letters[0]["subject"] for word in ("嘅", "我哋", "係")), letters

    # Tuesday 11:00: 黃志強 calls again. By name, in Cantonese, straight to the main menu.
    world.at(taipei(15, 11, 0))
    again = world.call(
        [press("4"), press(number_of(ticket["ref"])), press("4"), press(number_of(theirs["ref"]))],
        caller=WONG,
    )
    assert again.said[0] == ("yue-HK", "黃志強你好，呢度係康和物業客服中心。")
    heard = spoken(again)
    assert "國語請按" not in heard and "廣東話請按" not in heard, "no language menu"
    assert {code for code, _ in again.said} == {"yue-HK"}
    assert "唔該輸入單號嘅數字" in heard

    # His own ticket: its status, read back in Cantonese.
    status = world.hotline("tickets", "show", ticket["ref"], "--format", "json")["status"]
    read_back = render(
        "voice_progress_status",
        "yue",
        ref_spoken=spoken_ref(ticket["ref"], "yue"),
        status=render("voice_status_name", "yue", status=status),
    )
    assert read_back in heard and "而家嘅狀態係：已經處理好" in read_back

    # The neighbour's ticket: refused, its status never read.
    assert "為咗保障住戶私隱" in heard
    assert spoken_ref(theirs["ref"], "yue") not in heard
    assert heard.count("而家嘅狀態係") == 1

"""Journey 1: a Mandarin caller's leak, from the call to the satisfaction score on the dashboard.

Everything goes through a front door: the call and the follow-up calls are Twilio's signed
webhooks, the engineer works in the console with its CSRF token, the resident's texts are what the
app asked Twilio's REST API to send, and what anyone checks comes from `hotline … --format json`,
the console's pages or its CSV export.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

from tests.web.console_helpers import ENGINEERING, SUPERVISOR
from voice.simulator import HANGUP, press, say

RESIDENT = "+886912000001"  # 陳大文 in the demo estate, who speaks Mandarin


def _ticket(world, ref):
    return world.hotline("tickets", "show", ref, "--format", "json")


def _follow_up(world, ref):
    [callback] = [
        c
        for c in world.hotline("callbacks", "list", "--format", "json")
        if c["ticket_ref"] == ref and c["purpose"] == "follow_up" and c["status"] == "scheduled"
    ]
    return callback


def _resolve_in_console(world, ref, note):
    engineer = world.console(ENGINEERING)
    page = engineer.get(f"/tickets/{ref}")
    assert page.status_code == 200 and ref in page.get_data(as_text=True)
    done = engineer.post(f"/tickets/{ref}/resolve", {"resolution_note": note})
    assert done.status_code in (302, 303)


def test_a_leak_reported_by_speech_is_fixed_followed_up_and_scored(world, demo):
    tz = demo.config.timezone
    world.at(datetime(2026, 11, 30, 10, 0, tzinfo=tz))  # a Monday morning

    call = world.call([say("廚房漏水，天花板一直滴水"), HANGUP], caller=RESIDENT)
    assert "陳大文" in call.said[0][1], "a known caller is greeted by name"
    world.drain()
    [listed] = world.hotline("tickets", "list", "--format", "json")
    ref = listed["ref"]
    assert any(ref.replace("-", "") in said.replace("，", "") for _, said in call.said), (
        "the caller hears the reference"
    )
    assert (listed["status"], listed["department"]) == ("routed", "engineering")
    [to_engineering] = world.mail_to("engineering@example.com")
    assert ref in to_engineering["subject"]
    texts = [m["Body"] for m in world.sms_sent(RESIDENT)]
    assert len(texts) == 2, texts  # received, then routed with the department and the due time
    assert ref in texts[0] and "工程維修部" in texts[1] and "預計" in texts[1]

    world.at(datetime(2026, 11, 30, 15, 0, tzinfo=tz))
    _resolve_in_console(world, ref, "更換廚房水管接頭")
    world.drain()
    assert _ticket(world, ref)["status"] == "resolved"
    resolved_text = world.sms_sent(RESIDENT)[-1]["Body"]
    assert ref in resolved_text and "處理完成" in resolved_text

    # Next day, the follow-up call (回訪): "not fixed".
    due = datetime.fromisoformat(_follow_up(world, ref)["due_at"])
    assert due >= datetime(2026, 12, 1, 15, 0, tzinfo=tz), "not before follow_up_delay_hours"
    world.drain(due)
    placed, heard = world.answer_next_call([press("2")])
    assert placed["To"] == RESIDENT and "解決" in heard.text()
    world.drain(due + timedelta(minutes=1))
    ticket = _ticket(world, ref)
    assert (ticket["status"], ticket["department"]) == ("routed", "engineering")
    urgent = [m for m in world.mail_to("engineering@example.com") if "未解決" in m["subject"]]
    assert len(urgent) == 1, "engineering is told at once, once"

    world.at(due + timedelta(hours=2))
    _resolve_in_console(world, ref, "重新更換整段水管")
    world.drain()
    due = datetime.fromisoformat(_follow_up(world, ref)["due_at"])
    world.drain(due)
    _placed, heard = world.answer_next_call([press("1"), say("五分")])
    assert "滿意" in heard.text() and "謝謝您的評分" in heard.text()
    world.drain(due + timedelta(minutes=1))
    ticket = _ticket(world, ref)
    assert (ticket["status"], ticket["satisfaction"]) == ("resolved", 5)
    assert (
        len([m for m in world.mail_to("engineering@example.com") if "未解決" in m["subject"]]) == 1
    )

    # No objection during the quiet period: closed.
    world.drain(due + timedelta(days=6))
    assert _ticket(world, ref)["status"] == "resolved"
    world.drain(due + timedelta(days=7, minutes=5))
    assert _ticket(world, ref)["status"] == "closed"

    supervisor = world.console(SUPERVISOR)
    report = supervisor.get("/reports/satisfaction.csv").get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(report)))
    assert any("工程維修部" in row[0] and float(row[1]) == 5.0 for row in rows[1:]), rows
    assert supervisor.get("/dashboard").status_code == 200

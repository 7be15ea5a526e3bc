"""Journey (issue 14): a busy desk reads one timeline in words, in its own language.

A resident's email arrives over SMTP and the real workers route it, acknowledge it and tell the
department. The ticket page tells that story once per thing that happened, as sentences, with no
code, rule id or status code on screen; the department's email says why in words; an operator's
note appears once.
"""

from __future__ import annotations

import html
import re
import socket
from datetime import datetime
from typing import Any

from click.testing import CliRunner

from tests.web.console_helpers import OPERATOR

RESIDENT = "chan.taiman@example.com"
RAW = re.compile(
    r"\b(interaction_added|status_changed|callback_scheduled|note_added|created|canned_\w+|"
    r"ack_email|notify_\w+|in_progress|waiting_resident|zh-Hant|zh-Hans|rule:\w+|kept|"
    r"repairs|repair)\b"
)


def _visible(page: str) -> str:
    """What a person reads on the timeline: tags, folded technical details and scripts removed."""
    timeline = page[page.index('id="timeline"') : page.index('<aside class="actions">')]
    timeline = re.sub(r'<details class="tech">.*?</details>', "", timeline, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", timeline))


def test_a_mail_ticket_reads_as_one_timeline_of_sentences(world, demo):
    tz = demo.config.timezone
    world.at(datetime(2030, 10, 15, 10, 0, tzinfo=tz))
    world.send_mail(
        sender=f"陳大文 <{RESIDENT}>",
        subject="廚房水管漏水",
        body="您好，我家廚房水管漏水，請盡快派人維修。",
    )
    world.drain()
    [ticket] = world.hotline("tickets", "list", "--format", "json")
    ref = ticket["ref"]

    [notice] = [
        m
        for m in world.hotline("outbox", "list", "--format", "json")
        if m["to"] == "engineering@example.com"
    ]
    assert (
        "分派原因：依規則「一般報修」分派至工程維修部，優先級 P3：類別為報修。"
        in notice["body_text"]
    )
    assert "rule" not in notice["body_text"] and "repair" not in notice["body_text"]

    world.at(datetime(2030, 10, 15, 10, 5, tzinfo=tz))
    operator = world.console(OPERATOR)
    operator.post(f"/tickets/{ref}/note", {"note": "已致電住戶約明早維修"})
    page = operator.get(f"/tickets/{ref}").get_data(as_text=True)
    text = _visible(page)
    assert RAW.findall(text) == [], text
    assert text.count("【康和物業】您的來信已受理") == 1, (
        "the acknowledgement is on the timeline once"
    )
    assert text.count("新個案：P3 報修 廚房水管漏水") == 1, "the department notice once"
    assert text.count("已致電住戶約明早維修") == 1, "a note once, not again as an event"
    assert "受理通知" in text and "部門通知" in text, "what each sent message is, in words"
    assert "系統依規則「一般報修」分派至工程維修部，優先級 P3：類別為報修。" in text
    assert "建立工單：報修，優先級 P3，繁體中文。" in text
    order = [
        text.index(s)
        for s in ("建立工單", "您好，我家廚房", "系統依規則", "受理通知", "已致電住戶")
    ]
    assert order == sorted(order), "in time order: opened, the mail, routed, replies, the note"
    assert "ack_email" in page, "the template's name is still there for whoever opens the details"

    resident = re.search(r'href="(/residents/\d+)"', page).group(1)
    history = html.unescape(operator.get(resident).get_data(as_text=True))
    assert "電子郵件: 1" in history, "the resident wrote once; what was sent out is not theirs"

    operator.post("/language", {"language": "en"})
    english = _visible(operator.get(f"/tickets/{ref}").get_data(as_text=True))
    assert (
        "The system routed it by the rule “repairs” to engineering and maintenance, priority P3: "
        "the category is repair request."
    ) in english
    assert "Ticket opened: repair request, priority P3, in Traditional Chinese." in english
    assert "Acknowledgement" in english and "Department notification" in english


def _run(*args: str) -> Any:
    from intake.cli import main

    return CliRunner().invoke(main, list(args))


def test_the_command_line_prints_tables_in_local_time_and_short_errors(world, demo):
    world.at(datetime(2030, 10, 15, 10, 0, tzinfo=demo.config.timezone))  # 02:00 UTC
    world.send_mail(
        sender=f"陳大文 <{RESIDENT}>", subject="廚房水管漏水", body="第一行\n第二行\n第三行"
    )
    world.drain()
    ref = world.hotline("tickets", "list", "--format", "json")[0]["ref"]

    listed = _run("tickets", "list").output.splitlines()
    assert listed[0].split()[:3] == ["ref", "priority", "status"], "a header row"
    assert ref in listed[1] and "2030-10-15 10:00" in listed[1], "local time, minutes"

    number = str(int(ref.split("-")[1]))
    by_number, by_ref = _run("tickets", "show", number), _run("tickets", "show", ref.lower())
    assert by_number.exit_code == 0 and by_number.output == by_ref.output
    assert f"ref: {ref}" in by_number.output
    missing = _run("tickets", "show", "999999")
    assert missing.exit_code == 1 and "no ticket 999999" in missing.output

    outbox = _run("outbox", "list").output.splitlines()
    sent = world.hotline("outbox", "list", "--format", "json")
    assert len(outbox) == 1 + len(sent), "one line per message, bodies left out"

    health = _run("mail", "health").output
    assert "smtp intake" in health and "2030-10-15 10:00" in health, health

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    call = _run("call", "--url", f"http://127.0.0.1:{port}", "--no-interactive", "--hangup")
    assert call.exit_code == 1
    assert call.stderr.strip().count("\n") == 0, call.stderr
    assert "hotline up" in call.stderr and "Traceback" not in call.output


def test_the_counters_open_their_own_boards_and_cards_say_what_the_call_was_about(world, demo):
    from intake.callbacks import schedule_callback
    from intake.models import Ticket
    from intake.service import receive
    from tests.factories import call_contact, email_contact

    tz = demo.config.timezone
    world.at(datetime(2030, 10, 15, 10, 0, tzinfo=tz))
    missed = receive(
        world.sessions,
        call_contact(kind="missed_call", text="", sender_phone="+886912000009"),
        demo.config,
    )
    asked = receive(
        world.sessions, email_contact(subject="電梯異響", text="電梯有怪聲"), demo.config
    )
    with world.sessions() as session:
        schedule_callback(
            session,
            session.get(Ticket, missed.ticket_id),
            phone="+886912000009",
            purpose="missed_call",
            config=demo.config,
        )
        schedule_callback(
            session,
            session.get(Ticket, asked.ticket_id),
            phone="+886912000001",
            purpose="operator_request",
            config=demo.config,
        )
        session.commit()
    world.at(datetime(2030, 10, 15, 10, 30, tzinfo=tz))
    operator = world.console(OPERATOR)
    queue = operator.get("/").get_data(as_text=True)
    assert 'href="/callbacks?show=due"' in queue and 'href="/callbacks?show=missed"' in queue
    only_missed = operator.get("/callbacks?show=missed").get_data(as_text=True)
    assert missed.ticket_ref in only_missed and asked.ticket_ref not in only_missed
    due = operator.get("/callbacks?show=due").get_data(as_text=True)
    assert asked.ticket_ref in due
    assert "報修 · 電梯異響" in due, "the card says what the callback is about"

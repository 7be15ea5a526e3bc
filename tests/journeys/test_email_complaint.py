"""Journey 2: a Simplified-Chinese email complaint, answered, resolved through the API, and the
follow-up questions answered once by link — after a link scanner opened every link first."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta

from tests.web.console_helpers import OPERATOR

RESIDENT = "li.ming@example.cn"


def _links(body: str) -> dict[str, str]:
    """The answer links of the follow-up mail, by the words in front of each."""
    found = {}
    for line in body.splitlines():
        match = re.search(r"(\S+?)[:：]\s*https://hotline\.example\.com(/followup/\S+)", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def _page_text(response) -> str:  # type: ignore[no-untyped-def]
    return html.unescape(response.get_data(as_text=True))


def test_a_simplified_chinese_complaint_from_mail_to_a_single_answer(world, demo):
    tz = demo.config.timezone
    world.at(datetime(2026, 11, 30, 9, 30, tzinfo=tz))
    first_id = world.send_mail(
        sender=f"李明 <{RESIDENT}>",
        subject="投诉：楼道垃圾三天没人清理",
        body="您好，B座5楼楼道的垃圾已经三天没有人清理了，气味很大，请尽快处理。",
    )
    world.drain()
    [ack] = world.mail_to(RESIDENT)
    ref = ack["subject"].split("[")[-1].rstrip("]")
    assert "已受理" in ack["subject"] and "单号" in ack["body_text"], "zh-Hans acknowledgement"
    assert ack["in_reply_to"] == first_id

    # The resident answers the acknowledgement from their mail client: it threads on the ticket.
    world.at(datetime(2026, 11, 30, 10, 0, tzinfo=tz))
    world.send_mail(
        sender=f"李明 <{RESIDENT}>",
        subject=f"回复：{ack['subject']}",
        body="补充：垃圾在消防通道旁边。",
        headers={"In-Reply-To": ack["message_id"], "References": f"{first_id} {ack['message_id']}"},
    )
    world.drain()
    tickets = world.hotline("tickets", "list", "--format", "json")
    assert [t["ref"] for t in tickets] == [ref], "the reply joined the ticket"
    shown = world.hotline("tickets", "show", ref, "--format", "json")
    inbound = [e for e in shown["timeline"] if e["direction"] == "in" and e["channel"] == "email"]
    assert len(inbound) == 2 and "消防通道" in inbound[1]["body_text"]
    assert shown["language"] == "zh-Hans"

    # An operator answers with a standard phrase, drafted in the resident's language.
    operator = world.console(OPERATOR)
    page = operator.get(f"/tickets/{ref}?phrase=canned_in_progress")
    draft = re.search(r'<textarea name="body"[^>]*>(.*?)</textarea>', _page_text(page), re.S)
    assert draft and draft.group(1).strip() and "处理" in draft.group(1)
    sent = operator.post(f"/tickets/{ref}/reply", {"body": draft.group(1), "to": RESIDENT})
    assert sent.status_code in (302, 303)
    world.drain()
    assert len(world.mail_to(RESIDENT)) == 2

    # Resolved through the JSON API; an impossible change is refused with a 400 first.
    api = world.api("estate-crm")
    refused = api.patch(f"/api/v1/tickets/{ref}", {"status": "new"})
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "not_allowed"
    world.at(datetime(2026, 11, 30, 16, 0, tzinfo=tz))
    done = api.patch(
        f"/api/v1/tickets/{ref}", {"status": "resolved", "resolution_note": "已安排保洁清运"}
    )
    assert done.status_code == 200 and done.get_json()["status"] == "resolved"
    world.drain()
    resolved_mail = world.mail_to(RESIDENT)[-1]
    assert ref in resolved_mail["subject"] and "处理完成" in resolved_mail["body_text"]

    # The follow-up questions come by email after follow_up_delay_hours.
    [follow_up] = [
        c
        for c in world.hotline("callbacks", "list", "--format", "json")
        if c["ticket_ref"] == ref and c["purpose"] == "follow_up"
    ]
    world.drain(datetime.fromisoformat(follow_up["due_at"]))
    questions = world.mail_to(RESIDENT)[-1]
    links = _links(questions["body_text"])
    assert {"已解决", "未解决", "非常满意"} <= set(links), links

    world.at(datetime.fromisoformat(follow_up["due_at"]) + timedelta(hours=3))
    reader = world.web
    for path in links.values():  # the resident's mail server scans every link first
        scanned = reader.get(path)
        assert scanned.status_code == 200 and "<form" in scanned.get_data(as_text=True)
    assert world.hotline("tickets", "show", ref, "--format", "json")["status"] == "resolved"

    clicked = reader.post(links["已解决"])
    assert clicked.status_code == 200 and "谢谢" in _page_text(clicked)
    scored = reader.post(links["非常满意"])
    assert scored.status_code == 200 and "5/5" in _page_text(scored)
    for second in (links["已解决"], links["未解决"], links["不满意"]):
        again = reader.post(second)
        assert again.status_code == 200 and "已经回复过" in _page_text(again)
    assert "已经回复过" in _page_text(reader.get(links["未解决"])), (
        "no form for an answered question"
    )
    world.drain()
    shown = world.hotline("tickets", "show", ref, "--format", "json")
    assert (shown["status"], shown["satisfaction"]) == ("resolved", 5)
    assert [e["kind"] for e in shown["events"]].count("reopened") == 0

    # Fourteen days on, a link found in an old mail no longer answers anything.
    world.at(datetime.fromisoformat(follow_up["due_at"]) + timedelta(days=15))
    late = reader.post(links["未解决"])
    assert "已过期" in _page_text(late)
    world.drain()
    assert world.hotline("tickets", "show", ref, "--format", "json")["status"] == "closed"

"""The ticket page: header, the whole timeline, and every operator action written to the timeline."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.contact import InboundAttachment
from intake.models import Call, Callback, Event, Interaction, Outbox, OutgoingMessage, Ticket
from intake.service import receive
from tests.factories import call_contact, email_contact
from tests.web.console_helpers import BILLING, OPERATOR, login, make_client, post, text

HOSTILE_HTML = """<p>樓上漏水<script>alert('x')</script></p>
<img src="https://tracker.example.net/pixel.gif" onerror="alert(1)">
<a href="javascript:alert(2)">click</a>
<div style="position:fixed;top:0;left:0;width:100%;height:100%;background:red" class="overlay">OVERLAY</div>
<style>body{display:none}</style>
<blockquote>On Monday the centre wrote: earlier message</blockquote>"""


def store_file(data_dir: Path, content: bytes) -> str:
    sha = hashlib.sha256(content).hexdigest()
    path = data_dir / "attachments" / sha[:2] / sha
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return sha


@pytest.fixture
def console(demo):
    client = make_client()
    login(client)
    return client


def ticket_of(sessions, ref):
    with sessions() as session:
        return session.scalar(select(Ticket).where(Ticket.ref == ref))


def events(sessions, ref):
    with sessions() as session:
        t = session.scalar(select(Ticket).where(Ticket.ref == ref))
        return [
            (e.kind, e.actor)
            for e in session.scalars(
                select(Event).where(Event.ticket_id == t.id).order_by(Event.id)
            )
        ]


def test_the_header_shows_resident_unit_contacts_language_and_sla_clocks(console, demo, sessions):
    ref = receive(sessions, email_contact(), demo.config).ticket_ref
    page = text(console.get(f"/tickets/{ref}"))
    header = page[page.index('id="ticket-header"') : page.index('id="timeline"')]
    assert "陳大文" in header and "翠林苑A座 12F-1" in header
    assert "chan.taiman@example.com" in header and "+886912000001" in header
    assert "繁體中文" in header and "首次回應" in header and "處理結果" in header


def test_a_hostile_email_is_shown_sanitized_with_the_quote_folded(console, demo, sessions):
    ref = receive(sessions, email_contact(html=HOSTILE_HTML), demo.config).ticket_ref
    page = text(console.get(f"/tickets/{ref}"))
    body = page[
        page.index('class="email-html"') : page.index(
            "</section>", page.index('class="email-html"')
        )
    ]
    for bad in (
        "<script",
        "onerror",
        "javascript:",
        "style=",
        "<style",
        "overlay",
        ' src="https://tracker',
    ):
        assert bad not in body, bad
    assert 'data-remote-src="https://tracker.example.net/pixel.gif"' in body
    assert '<details class="quoted"><summary>顯示引用內容</summary><blockquote>' in body
    assert "樓上漏水" in body


def test_a_call_shows_its_ivr_path_and_duration_and_its_voicemail_plays_through_the_app(
    console, demo, sessions, settings
):
    audio = b"RIFF\x24\x00\x00\x00WAVEfmt fake voicemail"
    sha = store_file(settings.data_dir, audio)
    contact = call_contact(
        kind="voicemail",
        text="電梯壞了，請回電",
        meta={"transcript": "電梯壞了，請回電"},
        attachments=(
            InboundAttachment(
                filename="voicemail.wav",
                content_type="audio/wav",
                size=len(audio),
                sha256=sha,
                external_id="RE" + "1" * 32,
            ),
        ),
    )
    receipt = receive(sessions, contact, demo.config)
    with sessions() as session:
        session.add(
            Call(
                call_sid=contact.external_id,
                direction="inbound",
                status="completed",
                ivr_path=["greeted", "language:zh-Hant", "menu:repair", "record:repair"],
                duration_seconds=135,
                ticket_id=receipt.ticket_id,
            )
        )
        session.commit()
    page = text(console.get(f"/tickets/{receipt.ticket_ref}"))
    assert "歡迎語 → 繁體中文 → 報修 → 留下描述" in page and "2:15" in page, "the path in words"
    assert "電梯壞了，請回電" in page
    src = re.search(r'<audio controls preload="none" src="([^"]+)"', page).group(1)
    response = console.get(src)
    assert response.status_code == 200 and response.data == audio
    assert response.headers["Content-Type"] == "audio/wav"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert "api.twilio.com" not in page


def test_attachments_get_safe_types_and_stay_inside_the_department(
    console, demo, sessions, settings, redis_url
):
    from redis import Redis

    from worker.runner import drain

    html = b"<html><script>alert(1)</script></html>"
    sha = store_file(settings.data_dir, html)
    receipt = receive(
        sessions,
        email_contact(
            subject="物業費",
            text="管理費收據",
            attachments=(
                InboundAttachment(
                    filename="invoice.html", content_type="text/html", size=len(html), sha256=sha
                ),
            ),
        ),
        demo.config,
    )
    drain(Redis.from_url(redis_url))
    page = text(console.get(f"/tickets/{receipt.ticket_ref}"))
    href = re.search(r'href="(/attachments/\d+)"', page).group(1)
    response = console.get(href)
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Disposition"] == "attachment; filename=invoice.html"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    engineer = make_client()
    login(engineer, email="engineering@hotline.localhost")
    assert engineer.get(href).status_code == 404
    accountant = make_client()
    login(accountant, email=BILLING)
    assert accountant.get(href).status_code == 200
    assert console.get("/attachments/999999").status_code == 404


def test_reply_with_a_canned_phrase_in_the_residents_language(console, demo, sessions):
    receipt = receive(
        sessions,
        email_contact(
            sender_email="emily.carter@example.com",
            sender_name="Emily Carter",
            subject="Leaking pipe",
            text="The kitchen pipe is leaking.",
        ),
        demo.config,
    )
    page = text(console.get(f"/tickets/{receipt.ticket_ref}?phrase=canned_resolved"))
    draft = re.search(
        r'<textarea name="body" rows="9" required>(.*?)</textarea>', page, re.S
    ).group(1)
    assert (
        draft.startswith("Dear Emily Carter,")
        and receipt.ticket_ref in draft
        and "林接線員" in draft
    )
    edited = draft.replace("Thank you for your patience.", "The plumber replaced the pipe.")
    response = post(
        console,
        f"/tickets/{receipt.ticket_ref}/reply",
        {"body": edited, "to": "emily.carter@example.com", "phrase": "canned_resolved"},
    )
    assert response.status_code == 302
    with sessions() as session:
        message = session.scalar(
            select(OutgoingMessage).where(OutgoingMessage.template == "canned_resolved")
        )
        assert message.body_text == edited and message.to == "emily.carter@example.com"
        assert message.subject == f"Re: Leaking pipe [{receipt.ticket_ref}]"
        assert message.in_reply_to == session.get(Interaction, receipt.interaction_id).external_id
        outbox = session.scalar(select(Outbox).where(Outbox.job == "send_email"))
        assert (
            outbox.args == {"outgoing_id": message.id} and outbox.dedupe_key == f"send:{message.id}"
        )
        ticket = session.get(Ticket, receipt.ticket_id)
        assert ticket.first_responded_at is not None and ticket.status == "in_progress"
    assert ("reply_queued", OPERATOR) in events(sessions, receipt.ticket_ref)
    assert "The plumber replaced the pipe." in text(console.get(f"/tickets/{receipt.ticket_ref}"))
    assert console.get(f"/tickets/{receipt.ticket_ref}?phrase=../../etc/passwd").status_code == 200


def test_note_changes_assign_and_resolve_are_on_the_timeline_with_the_operator(
    console, demo, sessions
):
    ref = receive(sessions, email_contact(), demo.config).ticket_ref
    post(console, f"/tickets/{ref}/note", {"note": "住戶下午在家"})
    post(
        console,
        f"/tickets/{ref}/update",
        {
            "category": "complaint",
            "priority": "P2",
            "department": "engineering",
            "status": "in_progress",
        },
    )
    post(console, f"/tickets/{ref}/take")
    assert "處理結果" in text(
        post(console, f"/tickets/{ref}/resolve", {"resolution_note": ""}, follow_redirects=True)
    )
    assert ticket_of(sessions, ref).status != "resolved"
    post(console, f"/tickets/{ref}/resolve", {"resolution_note": "已更換水管"})
    ticket = ticket_of(sessions, ref)
    assert (ticket.category, ticket.priority, ticket.status, ticket.resolution_note) == (
        "complaint",
        "P2",
        "resolved",
        "已更換水管",
    )
    kinds = [k for k, actor in events(sessions, ref) if actor == OPERATOR]
    for kind in (
        "note_added",
        "category_changed",
        "priority_changed",
        "department_changed",
        "status_changed",
        "assigned",
    ):
        assert kind in kinds, kind
    page = text(console.get(f"/tickets/{ref}"))
    assert "住戶下午在家" in page and "已更換水管" in page
    assert post(console, f"/tickets/{ref}/update", {"priority": "P9"}).status_code == 400


def test_merge_link_callback_and_call_now(console, demo, sessions):
    keeper = receive(sessions, email_contact(), demo.config).ticket_ref
    dup = receive(
        sessions, call_contact(sender_phone="+886912000009", text="廚房漏水"), demo.config
    ).ticket_ref
    post(console, f"/tickets/{keeper}/merge", {"duplicate": dup.lower()})
    assert ticket_of(sessions, dup).merged_into_id == ticket_of(sessions, keeper).id
    assert ticket_of(sessions, dup).status == "closed"
    assert "已合併的重複工單" in text(console.get(f"/tickets/{keeper}"))
    post(console, f"/tickets/{dup}/merge", {"duplicate": keeper})
    assert ticket_of(sessions, keeper).merged_into_id is None
    post(
        console,
        f"/tickets/{dup}/link",
        {
            "resident_id": str(ticket_of(sessions, keeper).resident_id),
            "building": "B",
            "unit": "8F-5",
        },
    )
    linked = ticket_of(sessions, dup)
    assert (
        linked.resident_id == ticket_of(sessions, keeper).resident_id and linked.unit_id is not None
    )
    post(
        console, f"/tickets/{keeper}/callback", {"phone": "0912000001", "when": "2030-01-07T10:30"}
    )
    with sessions() as session:
        cb = session.scalar(select(Callback).where(Callback.purpose == "operator_request"))
        assert (
            cb.phone == "+886912000001"
            and cb.due_at.astimezone(demo.config.timezone).strftime("%Y-%m-%d %H:%M")
            >= "2030-01-07 10:30"
        )
    response = post(console, f"/tickets/{keeper}/call", follow_redirects=True)
    assert "請先設定您的電話號碼" in text(response)
    from intake.models import Operator

    with sessions() as session:
        session.scalar(select(Operator).where(Operator.email == OPERATOR)).phone = "+886912345678"
        session.commit()
    post(console, f"/tickets/{keeper}/call")
    keeper_id = ticket_of(sessions, keeper).id
    with sessions() as session:
        job = session.scalar(select(Outbox).where(Outbox.job == "operator_call"))
        operator_id = session.scalar(select(Operator.id).where(Operator.email == OPERATOR))
        assert job.args == {"ticket_id": keeper_id, "operator_id": operator_id}
    kinds = [k for k, _ in events(sessions, keeper)]
    assert "merged_in" in kinds and "operator_call_requested" in kinds


def test_a_merge_cannot_make_a_cycle(console, demo, sessions):
    a = receive(sessions, email_contact(), demo.config).ticket_ref
    b = receive(sessions, call_contact(sender_phone="+886912000009"), demo.config).ticket_ref
    post(console, f"/tickets/{a}/merge", {"duplicate": b})
    post(console, f"/tickets/{b}/merge", {"duplicate": a})
    assert ticket_of(sessions, a).merged_into_id is None


def test_a_change_the_lifecycle_refuses_is_explained_and_changes_nothing(console, demo, sessions):
    ref = receive(sessions, email_contact(), demo.config).ticket_ref
    resolved = post(console, f"/tickets/{ref}/resolve", {"resolution_note": "已修復"})
    assert resolved.status_code == 302
    assert ticket_of(sessions, ref).status == "resolved"
    refused = post(console, f"/tickets/{ref}/update", {"status": "waiting_resident"})
    page = text(console.get(refused.headers["Location"]))
    assert "狀態為「已解決」的工單不能改為「等候住戶回覆」" in page
    assert ticket_of(sessions, ref).status == "resolved"
    again = post(console, f"/tickets/{ref}/update", {"status": "in_progress"})
    assert again.status_code == 302
    ticket = ticket_of(sessions, ref)
    assert ticket.status == "in_progress" and ticket.resolved_at is None
    assert ("reopened", "operator@hotline.localhost") in events(sessions, ref)
    no_note = post(console, f"/tickets/{ref}/resolve", {"resolution_note": "  "})
    assert "必須填寫處理結果" in text(console.get(no_note.headers["Location"]))
    assert ticket_of(sessions, ref).status == "in_progress"

"""Callbacks board, residents (directory, CSV import, history), dashboard and reports, admin, health."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from intake.models import (
    Callback,
    ChannelHealth,
    ContactPoint,
    Event,
    Outbox,
    Resident,
    Ticket,
    utcnow,
)
from intake.service import receive
from tests.factories import call_contact, email_contact
from tests.web.console_helpers import ADMIN, OPERATOR, SUPERVISOR, login, make_client, post, text


def signed_in(who=OPERATOR):
    client = make_client()
    login(client, email=who)
    return client


def test_the_callbacks_board_sorts_callbacks_and_one_click_takes_one(demo, sessions):
    receipt = receive(sessions, call_contact(), demo.config)
    now = utcnow()
    with sessions() as session:
        for purpose, status, due in (
            ("missed_call", "scheduled", now - timedelta(hours=1)),
            ("voicemail", "scheduled", now - timedelta(minutes=2)),
            ("follow_up", "in_progress", now),
            ("after_hours", "failed", now - timedelta(days=1)),
            ("survey", "scheduled", now + timedelta(hours=4)),
        ):
            session.add(
                Callback(
                    ticket_id=receipt.ticket_id,
                    phone="+886912000001",
                    purpose=purpose,
                    status=status,
                    due_at=due,
                )
            )
        session.commit()
        ids = {cb.purpose: cb.id for cb in session.scalars(select(Callback))}
    first, second = signed_in(), signed_in(SUPERVISOR)
    page = text(first.get("/callbacks"))
    for column, purpose in (
        ("overdue", "missed_call"),
        ("due", "voicemail"),
        ("in_progress", "follow_up"),
        ("failed", "after_hours"),
        ("upcoming", "survey"),
    ):
        section = page[page.index(f'id="column-{column}"') :]
        section = section[: section.index("</section>")]
        assert f'data-callback="{ids[purpose]}"' in section, column
    response = post(first, f"/callbacks/{ids['missed_call']}/take")
    assert (
        response.status_code == 302
        and response.headers["Location"] == f"/tickets/{receipt.ticket_ref}"
    )
    assert "此回電已由其他同事接手" in text(
        post(second, f"/callbacks/{ids['missed_call']}/take", follow_redirects=True)
    )
    with sessions() as session:
        cb = session.get(Callback, ids["missed_call"])
        assert cb.claimed_by is not None
        assert (
            session.scalar(select(Event.actor).where(Event.kind == "callback_claimed")) == OPERATOR
        )
    assert post(second, f"/callbacks/{ids['missed_call']}/release").status_code == 302
    with sessions() as session:
        assert session.get(Callback, ids["missed_call"]).claimed_by is None


def test_the_resident_directory_and_a_residents_history_across_channels(demo, sessions):
    mail = receive(sessions, email_contact(), demo.config).ticket_ref
    call = receive(sessions, call_contact(), demo.config).ticket_ref
    client = signed_in()
    page = text(client.get("/residents"))
    assert "翠林苑A座" in page and "陳大文" in page and "+886912000001" in page
    assert "Emily Carter" not in text(client.get("/residents?q=陳大文"))
    assert "Emily Carter" in text(client.get("/residents?building=C"))
    with sessions() as session:
        resident_id = session.scalar(select(Resident.id).where(Resident.name == "陳大文"))
    history = text(client.get(f"/residents/{resident_id}"))
    assert mail in history and call in history and "電子郵件: 1" in history and "電話: 1" in history
    assert client.get("/residents/99999").status_code == 404


def _csv(rows):
    out = io.StringIO()
    writer = csv.DictWriter(
        out, fieldnames=["name", "language", "building", "unit", "phone", "email"]
    )
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def test_csv_import_previews_errors_by_line_then_imports_all_or_nothing(demo, sessions):
    client = signed_in(SUPERVISOR)
    bad = _csv(
        [
            {
                "name": "周小明",
                "language": "zh-Hant",
                "building": "A",
                "unit": "5F-1",
                "phone": "0912333444",
                "email": "",
            },
            {
                "name": "",
                "language": "xx",
                "building": "A",
                "unit": "",
                "phone": "123",
                "email": "",
            },
        ]
    )
    response = post(
        client,
        "/residents/import",
        {"file": (io.BytesIO(bad), "residents.csv")},
        content_type="multipart/form-data",
    )
    page = text(response)
    assert response.status_code == 422
    assert (
        'data-line="3"' in page
        and "姓名是空的。" in page
        and "大廈和單位須同時填寫，或都不填。" in page
        and "「123」不是有效的電話號碼。" in page
    )
    assert "name is empty" not in page, "per-row reasons in the operator's language"
    assert "匯入 2 行" not in page
    with sessions() as session:
        assert session.scalar(select(Resident).where(Resident.name == "周小明")) is None
    good = _csv(
        [
            {
                "name": "周小明",
                "language": "zh-Hant",
                "building": "A",
                "unit": "5F-1",
                "phone": "0912333444",
                "email": "chow@example.com",
            },
            {
                "name": "Ann Lee",
                "language": "en",
                "building": "C",
                "unit": "2F-A",
                "phone": "",
                "email": "ann@example.com",
            },
        ]
    )
    preview = post(
        client,
        "/residents/import",
        {"file": (io.BytesIO(good), "r.csv")},
        content_type="multipart/form-data",
    )
    assert preview.status_code == 200 and "匯入 2 行" in text(preview)
    payload = re.search(r'name="payload" value="([^"]+)"', text(preview)).group(1)
    with sessions() as session:
        assert session.scalar(select(Resident).where(Resident.name == "周小明")) is None
    done = post(client, "/residents/import", {"payload": payload, "confirm": "1"})
    assert "新增 2" in text(done)
    with sessions() as session:
        assert (
            session.scalar(
                select(ContactPoint.resident_id).where(ContactPoint.value == "+886912333444")
            )
            is not None
        )
    assert signed_in(OPERATOR).get("/residents/import").status_code == 403


def test_the_dashboard_draws_svg_charts_and_exports_csv(demo, sessions):
    receive(sessions, email_contact(), demo.config)
    receive(sessions, email_contact(subject="漏水", text="又漏水了"), demo.config)
    receive(sessions, call_contact(text="電梯壞了"), demo.config)
    with sessions() as session:
        for t in session.scalars(select(Ticket)):
            t.first_responded_at = t.created_at + timedelta(minutes=10)
            t.satisfaction = 4
        session.commit()
    receive(
        sessions,
        call_contact(kind="missed_call", text="", sender_phone="+886912000009"),
        demo.config,
    )
    client = signed_in()
    page = text(client.get("/dashboard"))
    assert page.count("<svg") == 2 and "<script" not in page.split("</head>")[1]
    assert 'id="total">4<' in page and 'id="missed-total">1<' in page
    assert "翠林苑A座 12F-1" in page  # a repeat repair: two repair tickets from the same unit
    volume = client.get("/reports/volume.csv")
    assert volume.headers["Content-Disposition"].startswith("attachment;")
    rows = list(csv.reader(io.StringIO(volume.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][0] == "day" and sum(int(r[-1]) for r in rows[1:]) == 4
    abandoned = list(
        csv.reader(
            io.StringIO(
                client.get("/reports/abandoned.csv").get_data(as_text=True).lstrip("\ufeff")
            )
        )
    )
    assert sum(int(r[1]) for r in abandoned[1:]) == 1
    for name in ("hotspots", "repeats", "sla", "satisfaction"):
        assert client.get(f"/reports/{name}.csv").status_code == 200
    assert client.get("/reports/other.csv").status_code == 404
    assert client.get("/dashboard?from=2026-13-01").status_code == 400
    month = utcnow().astimezone(demo.config.timezone).strftime("%Y-%m")
    report = text(signed_in(SUPERVISOR).get(f"/reports/monthly?month={month}"))
    assert "月度統計總結" in report and 'id="total">4<' in report and "@media print" not in report


def test_admin_pages_routing_dry_run_template_previews_and_operators(demo, sessions):
    client = signed_in(ADMIN)
    assert "engineering" in text(client.get("/admin/departments"))
    dry = text(client.get("/admin/routing?run=1&text=電梯困人&channel=voice"))
    assert (
        'id="dry-run-result"' in dry and "系統依規則「緊急事故」分派至工程維修部，優先級 P1" in dry
    )
    rules = dry.split('id="rules"')[1].split("</table>")[0]
    assert "類別為報修 且 內容提到電梯、电梯" in rules.replace("且", " 且 ").replace("  ", " ")
    assert "{" not in rules and "repair" not in rules, "the rules in words, not JSON"
    from redis import Redis

    from worker.runner import drain

    routed = receive(
        sessions, email_contact(subject="漏水", text="廚房漏水"), demo.config
    ).ticket_ref
    drain(Redis.from_url(demo.redis_url))
    replay = text(client.get("/admin/routing?replay=1"))
    row = re.search(rf'<tr class="(\w*)" data-ref="{routed}">(.*?)</tr>', replay, re.S)
    assert row and row.group(1) == "" and "工程維修部" in row.group(2)
    previews = text(client.get("/admin/templates?name=canned_resolved"))
    assert "陳大文您好" in previews and "Dear 陳大文" in previews and "处理完成" in previews
    assert client.get("/admin/templates?name=../../secret").status_code == 404
    hours = text(client.get("/admin/hours"))
    assert "星期一" in hours and "mon" not in hours and "中華民國開國紀念日" in hours
    phrases = text(client.get("/admin/templates"))
    assert "陳大文您好" in phrases and "來電者聽到的語音" in phrases
    response = post(
        client,
        "/admin/operators",
        {
            "email": "new@hotline.localhost",
            "name": "新同事",
            "role": "department",
            "department": "",
            "password": "long-enough-1",
        },
        follow_redirects=True,
    )
    assert "部門人員必須指定部門" in text(response)
    post(
        client,
        "/admin/operators",
        {
            "email": "new@hotline.localhost",
            "name": "新同事",
            "role": "operator",
            "language": "en",
            "phone": "0912000777",
            "password": "long-enough-1",
        },
    )
    newcomer = make_client()
    assert (
        login(newcomer, email="new@hotline.localhost", password="long-enough-1").status_code == 302
    )
    assert "Queue" in text(newcomer.get("/"))
    page = text(client.get("/admin/operators"))
    admin_id = re.search(r'id="op-(\d+)" method="post" action="/admin/operators/\1"', page)
    assert admin_id


def test_the_health_page_shows_channels_queues_and_retries_failed_jobs(demo, sessions, redis_url):
    with sessions() as session:
        session.add(
            ChannelHealth(
                name="imap:INBOX",
                status="error",
                last_error="LOGIN failed",
                consecutive_failures=3,
                last_error_at=utcnow(),
            )
        )
        session.add(
            Outbox(
                job="send_email",
                args={"outgoing_id": 1},
                status="failed",
                attempts=5,
                last_error="SMTP 554",
            )
        )
        session.commit()
        row_id = session.scalar(select(Outbox.id))
    client = signed_in(SUPERVISOR)
    page = text(client.get("/admin/health"))
    assert "INBOX" in page and "LOGIN failed" in page and "SMTP 554" in page
    failed = page.split('id="failed"')[1]
    assert "寄出電子郵件" in failed, "a job by its name in words (its code folded away)"
    from web.labels import job_label
    from worker.jobs import JOBS

    with client.application.test_request_context():
        unnamed = {job for job in JOBS if job_label(job) == job}
    assert not unnamed, f"every job the health page may list has a name in words: {unnamed}"
    assert 'id="queues"' in page and "緊急" in page
    assert "需要注意" in page and "連續失敗" in page, "a verdict in words"
    post(client, f"/admin/outbox/{row_id}/retry")
    with sessions() as session:
        assert session.get(Outbox, row_id).status == "pending"
    assert "並未失敗" in text(post(client, f"/admin/outbox/{row_id}/retry", follow_redirects=True))


@pytest.mark.parametrize("who", [OPERATOR, SUPERVISOR])
def test_non_admins_cannot_post_admin_forms(demo, who):
    client = signed_in(who)
    assert (
        post(
            client, "/admin/operators", {"email": "x@y.z", "name": "x", "password": "long-enough-1"}
        ).status_code
        == 403
    )

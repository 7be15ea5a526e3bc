"""The console's incident pages: detection's suggestion declared in one click, the group on the
ticket page and in the queue, linking by hand, resolving, and bad input answered in words."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from intake import clock
from intake.models import Incident, Outbox, Ticket
from intake.service import receive
from tests.factories import email_contact
from tests.web.console_helpers import OPERATOR, SUPERVISOR, login, make_client, post, text

NOW = datetime(2030, 10, 16, 6, 0, tzinfo=UTC)  # 14:00 in Taipei


@pytest.fixture
def supervisor(demo):
    client = make_client()
    login(client, SUPERVISOR)
    return client


def lift_tickets(sessions, settings, n: int = 3) -> list[str]:
    refs = []
    senders = ["chan.taiman@example.com", "lee.siumui@example.com"]  # both live in block A
    for i in range(n):
        receipt = receive(
            sessions,
            email_contact(
                sender_email=senders[i % 2], subject=f"電梯壞了 {i}", text="A座電梯停了，報修。"
            ),
            settings.config,
            now=NOW,
        )
        refs.append(receipt.ticket_ref)
    return refs


def hidden_inputs(form_html: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in re.findall(
        r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form_html
    ):
        found.setdefault(name, []).append(value)
    return found


def test_it_suggests_an_incident_and_declares_it_with_one_click(supervisor, sessions, settings):
    with clock.frozen(NOW):
        refs = lift_tickets(sessions, settings)
        page = text(supervisor.get("/incidents"))
        assert "建議發布的事件" in page
        assert "A 座有 3 張新的報修工單" in page
        for ref in refs:
            assert ref in page
        form = re.search(r'<div class="notice suggestion".*?</form>', page, re.S)
        assert form is not None
        fields = hidden_inputs(form.group(0))
        fields.pop("csrf_token")
        response = post(supervisor, "/incidents", fields)
        assert response.status_code == 302
        detail = text(supervisor.get(response.headers["Location"]))
    assert "事件已發布。" in detail
    for ref in refs:
        assert f'data-ref="{ref}"' in detail
    # Once declared it is no longer suggested.
    with clock.frozen(NOW):
        assert "建議發布的事件" not in text(supervisor.get("/incidents"))
    # The ticket page and the queue show the group.
    ticket_page = text(supervisor.get(f"/tickets/{refs[0]}"))
    assert "屬於事件" in ticket_page and "已關聯大廈事件" in ticket_page
    queue = text(supervisor.get("/"))
    assert queue.count('class="badge incident"') == 3


def test_it_declares_updates_and_resolves_and_the_tickets_follow(supervisor, sessions, settings):
    with clock.frozen(NOW):
        [ref] = lift_tickets(sessions, settings, 1)
        response = post(
            supervisor,
            "/incidents",
            {
                "building": "A",
                "category": "repair",
                "kind": "incident",
                "text_zh_hant": "A座升降機故障，工程部正在搶修。",
                "until": "2030-10-16T18:00",
                "keywords": "電梯, 升降機",
                "notify": "1",
            },
        )
        assert response.status_code == 302
        incident_url = response.headers["Location"]
        incident_id = int(incident_url.rsplit("/", 1)[1])
        page = text(supervisor.get(incident_url))
        assert 'id="notices-sending"' in page and 'http-equiv="refresh"' in page
        # link the earlier ticket by hand
        post(
            supervisor,
            "/incidents/link",
            {"ref": ref, "incident": incident_id, "from": incident_id},
        )
        post(
            supervisor,
            f"/incidents/{incident_id}/update",
            {"text_en": "The lift in Block A is being repaired.", "until": "2030-10-16T19:00"},
        )
        page = text(supervisor.get(incident_url))
        assert "2030-10-16 19:00" in page and f'data-ref="{ref}"' in page
        response = post(supervisor, f"/incidents/{incident_id}/resolve", {"note": "已更換零件"})
        assert response.status_code == 302
    with sessions() as s:
        incident = s.get(Incident, incident_id)
        assert incident.status == "resolved"
        ticket = s.scalar(select(Ticket).where(Ticket.ref == ref))
        assert ticket.status == "resolved" and "已更換零件" in ticket.resolution_note
        steps = sorted(
            row.args["step"]
            for row in s.scalars(select(Outbox).where(Outbox.job == "send_incident_notices"))
        )
    assert steps == ["declared", "resolved"]  # the update was not told (no "notify")
    assert "事件已解決，正在發送恢復通知。" in text(supervisor.get(incident_url))


def test_it_unlinks_a_ticket_from_its_page(supervisor, sessions, settings):
    with clock.frozen(NOW):
        [ref] = lift_tickets(sessions, settings, 1)
        post(supervisor, "/incidents", {"building": "A", "category": "repair", "text_en": "Lift"})
        page = text(supervisor.get(f"/tickets/{ref}"))
        assert 'id="ticket-incident-link"' in page
        incident_id = re.search(r'<option value="(\d+)">', page).group(1)
        post(supervisor, "/incidents/link", {"ref": ref, "incident": incident_id, "back": "ticket"})
        assert "屬於事件" in text(supervisor.get(f"/tickets/{ref}"))
        response = post(
            supervisor, "/incidents/link", {"ref": ref, "unlink": "1", "back": "ticket"}
        )
        assert response.headers["Location"].endswith(f"/tickets/{ref}")
        assert "屬於事件" not in text(supervisor.get(f"/tickets/{ref}"))


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"category": "repair", "text_en": "x"}, "請至少選擇一棟大廈。"),
        ({"building": "Z", "category": "repair", "text_en": "x"}, "其中一棟大廈不存在。"),
        ({"building": "A", "category": "repair"}, "請至少以一種語言描述事件。"),
        ({"building": "A", "category": "nope", "text_en": "x"}, "請選擇類別。"),
        (
            {"building": "A", "category": "repair", "text_en": "x", "until": "soon"},
            "預計完成時間不是有效的日期時間。",
        ),
        (
            {"building": "A", "category": "repair", "text_en": "x", "until": "2000-01-01T00:00"},
            "預計完成時間必須晚於開始時間。",
        ),
    ],
)
def test_bad_input_is_answered_in_words(supervisor, sessions, form, message):
    with clock.frozen(NOW):
        response = post(supervisor, "/incidents", form)
        assert response.status_code == 302
        assert message in text(supervisor.get("/incidents"))
    with sessions() as s:
        assert s.scalar(select(Incident.id)) is None


def test_an_operator_sees_incidents_but_may_not_declare(demo, sessions):
    client = make_client()
    login(client, OPERATOR)
    assert client.get("/incidents").status_code == 200
    response = post(client, "/incidents", {"building": "A", "category": "repair", "text_en": "x"})
    assert response.status_code == 403
    assert client.get("/incidents/999").status_code == 404

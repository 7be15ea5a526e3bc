"""The queue: one list for every channel, filters, saved views, keyset pages, live polling."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select, update

from intake.models import Building, Callback, Operator, Ticket, Unit, utcnow
from intake.service import receive
from tests.factories import call_contact, email_contact
from tests.web.console_helpers import login, make_client, post, text


def refs(page: str) -> list[str]:
    return re.findall(r'<tr data-ref="(HL-\d+)"', page)


def _set(sessions, ref, **values):
    with sessions() as session:
        session.execute(update(Ticket).where(Ticket.ref == ref).values(**values))
        session.commit()


def test_calls_and_mail_in_one_list_sorted_by_priority_then_sla_due(demo, sessions):
    now = utcnow()
    a = receive(sessions, email_contact(subject="收據", text="請問收據"), demo.config).ticket_ref
    b = receive(sessions, call_contact(text="電梯壞了"), demo.config).ticket_ref
    c = receive(sessions, email_contact(subject="噪音", text="樓上噪音"), demo.config).ticket_ref
    _set(sessions, a, priority="P3", resolution_due_at=now + timedelta(hours=5))
    _set(sessions, b, priority="P3", resolution_due_at=now + timedelta(hours=1))
    _set(sessions, c, priority="P2", resolution_due_at=None)
    client = make_client()
    login(client)
    page = text(client.get("/"))
    assert refs(page) == [c, b, a]
    assert "陳大文" in page, "who wrote, by name"
    assert client.get(f"/tickets/{a}").status_code == 200
    newest = refs(text(client.get("/?sort=newest")))
    assert newest == [c, b, a]


def test_each_filter_narrows_the_list(demo, sessions):
    now = utcnow()
    mail = receive(
        sessions, email_contact(subject="收據", text="請問物業費收據"), demo.config
    ).ticket_ref
    call = receive(sessions, call_contact(text="電梯壞了"), demo.config).ticket_ref
    other = receive(
        sessions,
        email_contact(sender_email="stranger@example.org", subject="建議", text="建議加裝單車架"),
        demo.config,
    ).ticket_ref
    with sessions() as session:
        me = session.scalar(select(Operator).where(Operator.email == "operator@hotline.localhost"))
        unit_b = session.scalar(select(Unit).join(Building).where(Building.code == "B"))
        session.execute(
            update(Ticket).where(Ticket.ref == call).values(assignee_id=me.id, unit_id=unit_b.id)
        )
        session.commit()
    _set(sessions, mail, resolution_due_at=now - timedelta(minutes=5))
    _set(sessions, other, resolution_due_at=now + timedelta(minutes=30), status="resolved")
    client = make_client()
    login(client)
    assert refs(text(client.get("/?channel=voice"))) == [call]
    assert set(refs(text(client.get("/?channel=email")))) == {mail}
    assert set(refs(text(client.get("/?channel=email&status=all")))) == {mail, other}
    assert refs(text(client.get("/?status=resolved"))) == [other]
    assert refs(text(client.get("/?category=billing"))) == [mail]
    assert refs(text(client.get("/?assigned=me"))) == [call]
    assert set(refs(text(client.get("/?assigned=none")))) == {mail}
    assert refs(text(client.get("/?building=B"))) == [call]
    assert refs(text(client.get("/?sla=breached"))) == [mail]
    assert refs(text(client.get("/?sla=at_risk&status=all"))) == []
    _set(sessions, other, status="in_progress")
    assert refs(text(client.get("/?sla=at_risk"))) == [other]
    with sessions() as session:
        priority = session.scalar(select(Ticket.priority).where(Ticket.ref == call))
    assert call in refs(text(client.get(f"/?priority={priority}")))
    assert refs(text(client.get(f"/?q={call}"))) == [call]
    assert client.get("/?status=bogus&channel=x&sla=nope&after=garbage").status_code == 200


def test_keyset_pages_cover_every_ticket_once_even_when_new_ones_arrive(demo, sessions):
    for i in range(57):
        receive(sessions, email_contact(subject=f"報修 {i}", text="水管漏水"), demo.config)
    client = make_client()
    login(client)
    first = text(client.get("/"))
    page_one = refs(first)
    assert len(page_one) == 50
    next_link = re.search(r'rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    receive(sessions, call_contact(text="火警", category_hint="emergency"), demo.config)
    page_two = refs(text(client.get(next_link)))
    assert len(page_two) == 7 and not set(page_one) & set(page_two)


def test_saved_views_belong_to_their_operator(demo, sessions):
    receive(sessions, call_contact(text="電梯壞了"), demo.config)
    client = make_client()
    login(client)
    response = post(client, "/views", {"name": "電話", "channel": "voice", "sla": "breached"})
    assert response.status_code == 302 and "channel=voice" in response.headers["Location"]
    page = text(client.get("/"))
    assert "電話" in page and "channel=voice&amp;sla=breached" in page
    other = make_client()
    login(other, email="supervisor@hotline.localhost")
    assert "channel=voice&amp;sla=breached" not in text(other.get("/"))
    view_id = re.search(r"/views/(\d+)/delete", page).group(1)
    assert post(other, f"/views/{view_id}/delete").status_code == 404
    assert post(client, f"/views/{view_id}/delete").status_code == 302
    assert "channel=voice&amp;sla=breached" not in text(client.get("/"))


def test_the_poll_endpoint_counts_new_tickets_and_waiting_callbacks(demo, sessions):
    first = receive(sessions, email_contact(), demo.config)
    client = make_client()
    login(client)
    page = text(client.get("/"))
    poll_url = re.search(r'data-poll="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert client.get(poll_url).get_json()["new_tickets"] == 0
    receive(sessions, call_contact(text="電梯壞了"), demo.config)
    with sessions() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.ref == first.ticket_ref))
        session.add_all(
            [
                Callback(
                    ticket_id=ticket.id,
                    phone="+886912000001",
                    purpose="missed_call",
                    status="scheduled",
                    due_at=utcnow() - timedelta(minutes=1),
                ),
                Callback(
                    ticket_id=ticket.id,
                    phone="+886912000002",
                    purpose="follow_up",
                    status="scheduled",
                    due_at=utcnow() + timedelta(hours=3),
                ),
            ]
        )
        ticket.status = "in_progress"
        session.commit()
    data = client.get(f"{poll_url}&ref={first.ticket_ref}").get_json()
    assert data["new_tickets"] == 1
    assert data["waiting_callbacks"] == 1 and data["missed_calls"] == 1
    assert data["tickets"][first.ticket_ref]["status"] == "in_progress"
    page = text(client.get("/callbacks"))
    assert 'data-count="waiting_callbacks">1<' in page and 'data-count="missed_calls">1<' in page

"""Issue 12's web items: department-scoped API residents, internal and public resolution notes,
sign-in (constant-time failure, throttling that the right operator gets past, sessions ended on
the server), department users without a department, and the SQLite file's permissions."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from intake.models import Resident, Ticket
from tests.web.api_world import bearer, file_tickets
from tests.web.api_world import make_client as make_api_client
from web import create_app


@pytest.fixture
def world(demo: Any, sessions: Any) -> dict[str, Any]:
    app = create_app(settings=demo)
    return {
        "client": app.test_client(),
        "token": make_api_client(sessions, "crm"),
        "refs": file_tickets(sessions, demo.config),
        "sessions": sessions,
        "config": demo.config,
    }


# --- item 5: a department token sees only residents with tickets in its department ------------


def test_a_department_token_reads_only_its_departments_residents(world: dict[str, Any]) -> None:
    sessions, client = world["sessions"], world["client"]
    with sessions() as session:
        theirs = {
            r
            for r in session.scalars(
                select(Ticket.resident_id).where(
                    Ticket.ref.in_([world["refs"]["leak"], world["refs"]["lift"]])
                )
            )
            if r is not None
        }
        everyone = set(session.scalars(select(Resident.id)))
    assert theirs and everyone - theirs
    token = make_api_client(sessions, "engineering-app", "operator", "engineering")
    listed = client.get("/api/v1/residents?limit=200", headers=bearer(token)).json["items"]
    assert {r["id"] for r in listed} == theirs
    found = client.get("/api/v1/residents?q=Emily", headers=bearer(token)).json["items"]
    assert found == []
    other = min(everyone - theirs)
    assert client.get(f"/api/v1/residents/{other}", headers=bearer(token)).status_code == 404
    mine = min(theirs)
    assert client.get(f"/api/v1/residents/{mine}", headers=bearer(token)).status_code == 200
    created = client.post(
        "/api/v1/residents",
        json={"name": "Mallory", "phones": ["0912345670"]},
        headers=bearer(token),
    )
    assert created.status_code == 403
    # An unrestricted token still sees and creates everyone.
    full = client.get("/api/v1/residents?limit=200", headers=bearer(world["token"])).json
    assert {r["id"] for r in full["items"]} == everyone


# --- item 8: department staff without a department see nothing --------------------------------


def test_a_department_user_without_a_department_sees_no_ticket(demo: Any, sessions: Any) -> None:
    from intake.auth import hash_password
    from intake.models import Operator
    from intake.service import receive
    from tests.factories import email_contact
    from tests.web.console_helpers import ADMIN, login, make_client, post, text

    unrouted = receive(sessions, email_contact(subject="物業費"), demo.config).ticket_ref
    with sessions() as session:  # as `hotline create-operator --role department` used to allow
        session.add(
            Operator(
                email="nodept@hotline.localhost",
                name="No Dept",
                password_hash=hash_password("hotline-demo"),
                role="department",
                department_id=None,
                language="en",
            )
        )
        session.commit()
    client = make_client()
    assert login(client, email="nodept@hotline.localhost").status_code == 302
    assert unrouted not in text(client.get("/?status=all"))
    assert client.get(f"/tickets/{unrouted}").status_code == 404
    poll = client.get(f"/queue/poll?since=0&ref={unrouted}").get_json()
    assert poll["new_tickets"] == 0 and poll["tickets"] == {}
    # The admin form refuses to make one.
    admin = make_client()
    login(admin, email=ADMIN)
    post(
        admin,
        "/admin/operators",
        {
            "email": "x@hotline.localhost",
            "name": "X",
            "password": "long-enough",
            "role": "department",
        },
    )
    with sessions() as session:
        assert (
            session.scalar(select(Operator).where(Operator.email == "x@hotline.localhost")) is None
        )

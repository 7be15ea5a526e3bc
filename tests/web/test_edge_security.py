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


# --- item 7: sign-in ------------------------------------------------------------------------


def _median_failure_seconds(client: Any, email: str, n: int = 5) -> float:
    import statistics
    import time

    from tests.web.console_helpers import login

    times = []
    for i in range(n):
        started = time.perf_counter()
        assert login(client, email=email, password=f"wrong-password-{i}").status_code == 401
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def test_a_wrong_password_takes_as_long_for_an_unknown_account(demo: Any) -> None:
    from tests.web.console_helpers import OPERATOR, make_client

    real = _median_failure_seconds(make_client(), OPERATOR, 4)
    make_client().get("/login")
    unknown = _median_failure_seconds(make_client(), "nobody@hotline.localhost", 4)
    # argon2 dominates both: an unknown account is not several times faster.
    assert unknown > real * 0.5, (real, unknown)


def test_failures_from_one_source_never_lock_the_operator_out_elsewhere(demo: Any) -> None:
    from tests.web.console_helpers import OPERATOR, login, make_client

    attacker = make_client()
    attacker_env = {"REMOTE_ADDR": "203.0.113.9"}
    for i in range(12):
        response = attacker.post(
            "/login",
            data={"email": OPERATOR, "password": f"guess-{i}", "csrf_token": _csrf(attacker)},
            environ_base=attacker_env,
        )
        assert response.status_code in (401, 429)
    assert response.status_code == 429  # the attacking address is held back
    # The operator, from another address, signs in with the right password.
    assert login(make_client()).status_code == 302


def test_a_known_browser_gets_past_a_distributed_guess(demo: Any) -> None:
    from tests.web.console_helpers import OPERATOR, login, make_client, post

    mine = make_client()
    assert login(mine).status_code == 302
    post(mine, "/logout")
    for n in range(25):  # many addresses, a few guesses each
        bot = make_client()
        bot.post(
            "/login",
            data={"email": OPERATOR, "password": f"guess-{n}", "csrf_token": _csrf(bot)},
            environ_base={"REMOTE_ADDR": f"198.51.100.{n}"},
        )
    fresh = make_client()
    assert login(fresh).status_code == 429  # a new browser waits out the account-wide limit
    assert login(mine).status_code == 302  # the operator's own browser is not locked out


def test_sign_out_ends_the_session_on_the_server(demo: Any) -> None:
    from tests.web.console_helpers import login, make_client, post

    client = make_client()
    login(client)
    stolen = client.get_cookie("session").value
    post(client, "/logout")
    replay = make_client()
    replay.set_cookie("session", stolen, domain="localhost")
    assert replay.get("/").status_code == 302


def test_a_role_or_password_change_ends_sessions(demo: Any, sessions: Any) -> None:
    from intake.models import Operator
    from tests.web.console_helpers import ADMIN, OPERATOR, SUPERVISOR, login, make_client, post

    operator, supervisor, admin = make_client(), make_client(), make_client()
    login(operator)
    login(supervisor, email=SUPERVISOR)
    login(admin, email=ADMIN)
    assert supervisor.get("/admin/health").status_code == 200
    with sessions() as session:
        ids = {
            o.email: o.id
            for o in session.scalars(
                select(Operator).where(Operator.email.in_([OPERATOR, SUPERVISOR]))
            )
        }
    post(
        admin,
        f"/admin/operators/{ids[SUPERVISOR]}",
        {"role": "operator", "active": "1", "language": "zh-Hant"},
    )
    assert supervisor.get("/").status_code == 302
    post(
        admin,
        f"/admin/operators/{ids[OPERATOR]}",
        {"role": "operator", "active": "1", "language": "zh-Hant", "password": "a-new-password"},
    )
    assert operator.get("/").status_code == 302
    assert admin.get("/admin/operators").status_code == 200


def _csrf(client: Any) -> str:
    from tests.web.console_helpers import csrf

    return csrf(client)


# --- item 6: the internal note stays internal; Open311 publishes only the public answer --------


def test_open311_publishes_the_public_answer_never_the_internal_note(
    demo: Any, sessions: Any
) -> None:
    from intake.models import Outbox
    from tests.web.console_helpers import login, make_client, post, text

    app = create_app(settings=demo)
    portal = app.test_client()
    key = make_api_client(sessions, "estate-portal", "open311")
    api_token = make_api_client(sessions, "crm", "operator")
    refs = []
    for description in ("B座大堂燈壞了", "C座電梯異響"):
        created = portal.post(
            "/open311/v2/requests.json",
            data={
                "api_key": key,
                "service_code": "repair",
                "description": description,
                "email": "resident@example.com",
                "address_string": "翠林苑B座",
            },
        )
        assert created.status_code == 201
        refs.append(created.json[0]["service_request_id"])
    internal = "內部：5樓住戶脾氣差，師傅不願再上門"
    public = "已更換大堂燈管，請留意。"

    console = make_client()
    login(console)
    form = text(console.get(f"/tickets/{refs[0]}"))
    assert 'name="public_note"' in form and "給住戶的答覆（公開）" in form  # says which is public
    done = post(
        console,
        f"/tickets/{refs[0]}/resolve",
        {"resolution_note": internal, "public_note": public},
    )
    assert done.status_code == 302
    [shown] = portal.get(f"/open311/v2/requests/{refs[0]}.json").json
    assert shown["status"] == "closed" and shown["status_notes"] == public
    assert internal not in str(
        portal.get(f"/open311/v2/requests.json?service_request_id={refs[0]}").json
    )
    xml = portal.get(f"/open311/v2/requests/{refs[0]}.xml").get_data(as_text=True)
    assert public in xml and internal not in xml
    with sessions() as session:
        replies = [
            o.args
            for o in session.scalars(select(Outbox).where(Outbox.job == "send_scripted_reply"))
            if o.args.get("event") == "resolved"
        ]
    assert replies and all(r.get("note") == public for r in replies)  # the resident is told that

    # Resolved over the API with an internal note only: nothing is published.
    patched = app.test_client().patch(
        f"/api/v1/tickets/{refs[1]}",
        json={"status": "resolved", "resolution_note": internal},
        headers=bearer(api_token),
    )
    assert patched.status_code == 200
    [other] = portal.get(f"/open311/v2/requests/{refs[1]}.json").json
    assert other["status"] == "closed" and other["status_notes"] is None

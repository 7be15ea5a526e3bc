"""Sign-in, sessions, the login rate limit, roles on every page, and department isolation."""

from __future__ import annotations

import pytest
from redis import Redis

from intake.service import receive
from tests.factories import email_contact
from tests.web.console_helpers import (
    ADMIN,
    BILLING,
    ENGINEERING,
    OPERATOR,
    SUPERVISOR,
    login,
    make_client,
    post,
    text,
)


@pytest.fixture
def console(demo):
    return make_client()


def test_pages_need_a_sign_in(console):
    for path in (
        "/",
        "/callbacks",
        "/residents",
        "/dashboard",
        "/admin/",
        "/admin/health",
        "/tickets/HL-000001",
    ):
        response = console.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith(
            "/login?next="
        )


def test_sign_in_sets_a_secure_httponly_cookie_and_sign_out_ends_the_session(console):
    response = login(console)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert console.get("/").status_code == 200
    post(console, "/logout")
    assert console.get("/").status_code == 302


def test_a_wrong_password_is_refused_with_401(console):
    response = login(console, password="not-the-password")
    assert response.status_code == 401
    assert "電子郵件或密碼不正確" in text(response)


def test_forms_without_the_csrf_token_are_refused(console):
    assert (
        console.post("/login", data={"email": OPERATOR, "password": "hotline-demo"}).status_code
        == 400
    )
    login(console)
    assert console.post("/views", data={"name": "x"}).status_code == 400


def test_login_attempts_are_limited_per_account_across_processes(demo):
    """Two app instances (two web processes) share the limit: it lives in the database."""
    first, second = make_client(), make_client()
    for attempt in range(5):
        client = first if attempt % 2 else second
        assert login(client, password=f"wrong-{attempt}").status_code == 401
    refused = login(first)
    assert refused.status_code == 429
    assert login(second).status_code == 429
    assert login(first, email=SUPERVISOR).status_code == 302


def test_next_never_leaves_the_site(console):
    for target in ("//evil.example.com/", "https://evil.example.com/", "/\\evil.example.com"):
        response = login(console, next_=target)
        assert response.headers["Location"] == "/"
        post(console, "/logout")
    assert login(console, next_="/callbacks").headers["Location"] == "/callbacks"


def test_security_headers_are_set(console):
    response = console.get("/login")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert (
        "script-src" not in response.headers["Content-Security-Policy"]
    )  # default-src 'self' only
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


ROLE_PAGES = {
    "/": {OPERATOR, SUPERVISOR, ADMIN, ENGINEERING},
    "/callbacks": {OPERATOR, SUPERVISOR, ADMIN},
    "/residents": {OPERATOR, SUPERVISOR, ADMIN},
    "/residents/import": {SUPERVISOR, ADMIN},
    "/dashboard": {OPERATOR, SUPERVISOR, ADMIN},
    "/reports/monthly": {SUPERVISOR, ADMIN},
    "/reports/volume.csv": {OPERATOR, SUPERVISOR, ADMIN},
    "/admin/health": {SUPERVISOR, ADMIN},
    "/admin/": {ADMIN},
    "/admin/departments": {ADMIN},
    "/admin/routing": {ADMIN},
    "/admin/templates": {ADMIN},
    "/admin/hours": {ADMIN},
    "/admin/operators": {ADMIN},
}


@pytest.mark.parametrize("who", [OPERATOR, SUPERVISOR, ADMIN, ENGINEERING])
def test_every_page_checks_the_role(demo, who):
    client = make_client()
    assert login(client, email=who).status_code == 302
    for path, allowed in ROLE_PAGES.items():
        status = client.get(path).status_code
        assert status == (200 if who in allowed else 403), (who, path, status)


def test_department_staff_see_only_their_departments_tickets(demo, sessions, redis_url):
    from worker.runner import drain

    billing = receive(sessions, email_contact(subject="物業費", text="管理費收據"), demo.config)
    repair = receive(
        sessions, email_contact(subject="漏水", text="廚房漏水，水管壞了"), demo.config
    )
    drain(Redis.from_url(redis_url))
    operator = make_client()
    login(operator, email=OPERATOR)
    assert billing.ticket_ref in text(operator.get("/?status=all"))  # the same filter, unrestricted
    engineer = make_client()
    login(engineer, email=ENGINEERING)
    queue = text(engineer.get("/?status=all"))
    assert repair.ticket_ref in queue and billing.ticket_ref not in queue
    assert engineer.get(f"/tickets/{billing.ticket_ref}").status_code == 404
    assert engineer.get(f"/tickets/{repair.ticket_ref}").status_code == 200
    assert (
        post(engineer, f"/tickets/{billing.ticket_ref}/note", {"note": "peek"}).status_code == 404
    )
    assert (
        post(
            engineer, f"/tickets/{billing.ticket_ref}/resolve", {"resolution_note": "x"}
        ).status_code
        == 404
    )
    poll = engineer.get(
        f"/queue/poll?since=0&ref={billing.ticket_ref}&ref={repair.ticket_ref}"
    ).get_json()
    assert list(poll["tickets"]) == [repair.ticket_ref]
    assert "waiting_callbacks" not in poll
    # Department staff may work their own ticket but not reply, reassign or merge.
    assert (
        post(
            engineer, f"/tickets/{repair.ticket_ref}/reply", {"body": "hi", "to": "a@b.c"}
        ).status_code
        == 403
    )
    accountant = make_client()
    login(accountant, email=BILLING)
    assert accountant.get(f"/tickets/{billing.ticket_ref}").status_code == 200


def test_a_deactivated_operator_is_signed_out(demo, sessions):
    from sqlalchemy import select

    from intake.models import Operator

    client = make_client()
    login(client)
    with sessions() as session:
        session.scalar(select(Operator).where(Operator.email == OPERATOR)).active = False
        session.commit()
    assert client.get("/").status_code == 302

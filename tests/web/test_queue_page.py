from __future__ import annotations

import re

import pytest

from intake.service import receive
from tests.factories import call_contact, email_contact


@pytest.fixture
def client(demo):
    from web import create_app

    app = create_app({"TESTING": True})
    return app.test_client()


def login(client, email="operator@hotline.localhost", password="hotline-demo"):
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


def test_the_queue_needs_a_login(client):
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_a_wrong_password_is_refused(client):
    assert login(client, password="wrong-password").status_code == 401


def test_a_login_without_the_csrf_token_is_refused(client):
    assert (
        client.post(
            "/login", data={"email": "operator@hotline.localhost", "password": "hotline-demo"}
        ).status_code
        == 400
    )


def test_it_lists_calls_and_mail_in_one_queue_most_urgent_first(client, demo, sessions):
    mail = receive(
        sessions, email_contact(subject="物業費收據", text="請問物業費收據"), demo.config
    )
    call = receive(sessions, call_contact(text="", category_hint="emergency"), demo.config)
    assert login(client).status_code == 302
    page = client.get("/").get_data(as_text=True)
    refs = re.findall(r'data-ref="(HL-\d+)"', page)
    assert refs == [call.ticket_ref, mail.ticket_ref]
    assert "陳大文" in page
    assert client.get(f"/tickets/{mail.ticket_ref}").status_code == 200


def test_login_never_redirects_off_site(client):
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    response = client.post(
        "/login?next=//evil.example.com/",
        data={
            "email": "operator@hotline.localhost",
            "password": "hotline-demo",
            "csrf_token": token,
        },
    )
    assert response.headers["Location"] == "/"


def test_department_staff_cannot_open_another_departments_ticket(client, demo, sessions, redis_url):
    from redis import Redis

    from worker.runner import drain

    billing = receive(sessions, email_contact(subject="物業費", text="管理費收據"), demo.config)
    drain(Redis.from_url(redis_url))
    login(client, email="engineering@hotline.localhost")
    assert client.get(f"/tickets/{billing.ticket_ref}").status_code == 404

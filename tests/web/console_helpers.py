"""Helpers for the console's Flask test-client tests: sign in, read the CSRF token, post forms."""

from __future__ import annotations

import re
from typing import Any

PASSWORD = "hotline-demo"
OPERATOR = "operator@hotline.localhost"
SUPERVISOR = "supervisor@hotline.localhost"
ADMIN = "admin@hotline.localhost"
ENGINEERING = "engineering@hotline.localhost"
BILLING = "billing@hotline.localhost"


def make_client(**config: Any) -> Any:
    from web import create_app

    app = create_app({"TESTING": True, **config})
    return app.test_client()


def csrf(client: Any, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(
    client: Any, email: str = OPERATOR, password: str = PASSWORD, next_: str | None = None
) -> Any:
    token = csrf(client)
    url = "/login" + (f"?next={next_}" if next_ else "")
    return client.post(url, data={"email": email, "password": password, "csrf_token": token})


def post(client: Any, path: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
    """A form post the way the browser sends it: with the session's CSRF token."""
    with client.session_transaction() as sess:
        token = sess.get("csrf_token")
    if token is None:
        token = csrf(client, "/")
    return client.post(path, data={**(data or {}), "csrf_token": token}, **kw)


def text(response: Any) -> str:
    return response.get_data(as_text=True)

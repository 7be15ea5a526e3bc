"""Hostile input at the web edge: the malformed values of issue 12 item 10, then hypothesis fuzzing
the console's and the API's query parameters. Never a 500, never an exception escaping."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.web.api_world import bearer
from tests.web.api_world import make_client as make_api_client
from tests.web.console_helpers import SUPERVISOR, login, make_client


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.fixture
def console(demo: Any) -> Any:
    # PROPAGATE_EXCEPTIONS off: an escaping exception becomes a 500 we can count, as in production.
    client = make_client(PROPAGATE_EXCEPTIONS=False)
    assert login(client, email=SUPERVISOR).status_code == 302
    return client


@pytest.fixture
def api(demo: Any, sessions: Any) -> tuple[Any, dict[str, str]]:
    token = make_api_client(sessions, "fuzz", "operator")
    return make_client(PROPAGATE_EXCEPTIONS=False), bearer(token)


RAW_AFTER = [
    '["P1",null,1e999]',
    "[" + "9" * 400 + "]",
    '{"a":1}',
    '["P1"]',
    "[1,2,3,4,5,6]",
    '["P9","2026-01-01T00:00:00+00:00",' + "9" * 40 + "]",
    "%%%",
]


@pytest.mark.parametrize("raw", RAW_AFTER)
def test_malformed_console_cursor_is_never_a_500(console: Any, raw: str) -> None:
    for after in (raw, _cursor(json.loads(raw)) if raw.startswith(("[", "{")) else raw):
        for sort in ("", "&sort=newest"):
            response = console.get("/", query_string=f"after={after}{sort}")
            assert response.status_code in (200, 400), (after, response.status_code)


def test_poll_with_a_huge_since_is_not_a_500(console: Any) -> None:
    for since in ("99999999999999999999999", "-99999999999999999999999", "1e9", "x", "٣"):
        response = console.get(f"/queue/poll?since={since}")
        assert response.status_code in (200, 400), (since, response.status_code)


def test_phrase_glob_on_a_ticket_is_not_a_500(console: Any, sessions: Any) -> None:
    from intake.service import receive
    from tests.factories import email_contact

    ref = receive(
        sessions,
        email_contact(subject="漏水"),
        console.application.config["HOTLINE_SETTINGS"].config,
    ).ticket_ref
    for phrase in ("canned_*", "canned_[a-z]*", "canned_?esolved", "canned_../x", "canned_"):
        response = console.get(f"/tickets/{ref}?phrase={phrase}")
        assert response.status_code in (200, 400), (phrase, response.status_code)


@pytest.mark.parametrize("month", ["9999-12", "0001-01", "0000-01", "2026-13", "99999-01"])
def test_report_month_out_of_range_is_not_a_500(console: Any, month: str) -> None:
    for path in ("/reports/monthly", "/reports/volume.csv", "/dashboard"):
        response = console.get(f"{path}?month={month}")
        assert response.status_code in (200, 400), (path, month, response.status_code)


def test_api_cursor_with_a_huge_int_is_a_400(api: tuple[Any, dict[str, str]]) -> None:
    client, headers = api
    for key in (
        [10**40],
        ["P1", "2026-01-01T00:00:00+00:00", 10**40],
        ["P1", None, 1e308],
        [10**40, 10**40, 10**40],
    ):
        for path in ("/api/v1/tickets", "/api/v1/residents", "/api/v1/callbacks"):
            response = client.get(path, query_string={"cursor": _cursor(key)}, headers=headers)
            assert response.status_code in (200, 400), (path, key, response.status_code)
    response = client.get(
        "/api/v1/residents", query_string={"cursor": _cursor([10**40])}, headers=headers
    )
    assert response.status_code == 400


def test_api_subject_with_cr_lf_is_refused(api: tuple[Any, dict[str, str]], sessions: Any) -> None:
    """A reply's subject becomes a mail header: a line break is refused at the edge (item 9's API
    half), and nothing is queued."""
    from sqlalchemy import func, select

    from intake.models import OutgoingMessage
    from intake.service import receive
    from tests.factories import email_contact

    client, headers = api
    config = client.application.config["HOTLINE_SETTINGS"].config
    ref = receive(sessions, email_contact(subject="漏水"), config).ticket_ref
    for field, value in (
        ("subject", "Leak\r\nBcc: x@evil.example"),
        ("subject", "a\nb"),
        ("to", "a@example.com\r\nBcc: x@evil.example"),
    ):
        response = client.post(
            f"/api/v1/tickets/{ref}/replies", json={"body": "hello", field: value}, headers=headers
        )
        assert response.status_code == 400, response.get_data(as_text=True)
    with sessions() as session:
        assert session.scalar(select(func.count(OutgoingMessage.id))) == 0


# Fuzzing: query strings made of the parameters the pages read, with hostile values.
PARAMS = [
    "status",
    "channel",
    "category",
    "department",
    "priority",
    "building",
    "sla",
    "q",
    "sort",
    "after",
    "assigned",
    "view",
    "limit",
    "cursor",
    "since",
    "month",
    "from",
    "to",
    "phrase",
    "ref",
    "lang",
    "unassigned",
    "mine",
]
VALUES = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        [
            "9999-12",
            "0000-00",
            "canned_*",
            "all",
            "P1",
            "open",
            "1e999",
            "[]",
            '["P1",null,1e999]',
            "-1",
            "0",
            "%00",
            "\x00",
            "2026-02-30",
        ]
    ),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=4),
        max_leaves=6,
    ).map(lambda v: _cursor(v)),
)
QUERY = st.lists(st.tuples(st.sampled_from(PARAMS), VALUES), max_size=6)
CONSOLE_PATHS = [
    "/",
    "/queue/poll",
    "/callbacks",
    "/residents",
    "/dashboard",
    "/reports/monthly",
    "/reports/volume.csv",
]
API_PATHS = ["/api/v1/tickets", "/api/v1/callbacks", "/api/v1/residents"]
DEADLINE = 25.0


def _ok(status: int) -> bool:
    return status < 500


def test_fuzz_console_query_parameters(console: Any) -> None:
    started = time.monotonic()

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(path=st.sampled_from(CONSOLE_PATHS), query=QUERY)
    def run(path: str, query: list[tuple[str, str]]) -> None:
        if time.monotonic() - started > DEADLINE:
            return
        response = console.get(path, query_string=query)
        assert _ok(response.status_code), (path, query, response.status_code)

    run()


def test_fuzz_api_query_parameters(api: tuple[Any, dict[str, str]]) -> None:
    client, headers = api
    started = time.monotonic()

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(path=st.sampled_from(API_PATHS), query=QUERY)
    def run(path: str, query: list[tuple[str, str]]) -> None:
        if time.monotonic() - started > DEADLINE:
            return
        response = client.get(path, query_string=query, headers=headers)
        assert _ok(response.status_code), (path, query, response.status_code)

    run()

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


def test_malformed_console_cursor_is_never_a_500(console: Any) -> None:
    for raw in RAW_AFTER:
        for after in (raw, _cursor(json.loads(raw)) if raw.startswith(("[", "{")) else raw):
            for sort in ("", "&sort=newest"):
                response = console.get("/", query_string=f"after={after}{sort}")
                assert response.status_code in (200, 400), (after, response.status_code)


def test_a_nul_in_a_console_parameter_is_a_400(console: Any) -> None:
    """PostgreSQL refuses NUL in text: found by the fuzzer below (`/?category=%00` was a 500)."""
    for query in ("category=%00", "q=a%00b", "department=x%00", "status=%00"):
        assert console.get(f"/?{query}").status_code == 400, query
    assert console.get("/queue/poll?ref=HL%00").status_code == 400


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


def test_report_month_out_of_range_is_not_a_500(console: Any) -> None:
    for month in ("9999-12", "0001-01", "0000-01", "2026-13", "99999-01"):
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


# Fuzzing: each page with the parameters it reads, hostile values for each.
EDGES = [2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64, 10**40, -1, -(2**63) - 1]
BIG_INTS = st.sampled_from(EDGES) | st.integers(min_value=-(10**40), max_value=10**40)
NUMBERS = BIG_INTS | st.floats(allow_nan=True, allow_infinity=True)
MOMENTS = st.datetimes().map(lambda d: d.isoformat()) | st.sampled_from(
    ["2026-01-01T00:00:00+00:00", "9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00-14:00"]
)
JSON_ANY = st.recursive(
    st.none() | st.booleans() | NUMBERS | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=6,
)


def _encoded(strategy: Any) -> Any:
    """A cursor as the console and API write them: base64url JSON, without padding."""
    return strategy.map(
        lambda v: base64.urlsafe_b64encode(json.dumps(v).encode()).decode().rstrip("=")
    )


CURSORS = st.one_of(
    _encoded(
        st.tuples(
            st.sampled_from(["P1", "P4", "P9", None, 1]), st.none() | MOMENTS | NUMBERS, NUMBERS
        ).map(list)
    ),
    _encoded(st.tuples(MOMENTS | NUMBERS | st.none(), NUMBERS).map(list)),
    _encoded(st.lists(NUMBERS, max_size=2)),
    _encoded(st.lists(BIG_INTS, min_size=1, max_size=1)),
    _encoded(JSON_ANY),
    st.text(max_size=30),
    st.sampled_from(['["P1",null,1e999]', "%%%", "====", "e30", "bnVsbA"]),
)
TEXT = st.text(max_size=40)
INTS = BIG_INTS.map(str) | st.sampled_from(["1e9", "x", "٣", " 7 ", "-0", "0x10", ""])
MONTHS = st.sampled_from(["9999-12", "0000-00", "0001-01", "2026-13", "2026-1", "99999-01"]) | (
    st.tuples(st.integers(-10, 99999), st.integers(-1, 13)).map(lambda t: f"{t[0]:04d}-{t[1]:02d}")
)
DAYS = st.dates().map(str) | st.sampled_from(["2026-02-30", "9999-12-31", "0001-01-01", "x"])
PHRASES = st.sampled_from(
    ["canned_*", "canned_?esolved", "canned_[a-z]*", "canned_../../x", "canned_", "canned_resolved"]
) | TEXT.map(lambda t: "canned_" + t)
QUEUE = {
    "status": st.sampled_from(["all", "open", "new", "x"]) | TEXT,
    "channel": TEXT,
    "category": TEXT,
    "department": st.sampled_from(["engineering", "x"]) | TEXT,
    "priority": st.sampled_from(["P1", "P9"]) | TEXT,
    "building": TEXT,
    "sla": st.sampled_from(["at_risk", "breached", "x"]) | TEXT,
    "assigned": st.sampled_from(["me", "none", "x"]) | TEXT,
    "q": TEXT,
    "sort": st.sampled_from(["newest", "urgent", "x"]) | TEXT,
}
PAGES: dict[str, dict[str, Any]] = {
    "/": {**QUEUE, "after": CURSORS, "view": INTS},
    "/queue/poll": {**QUEUE, "since": INTS, "ref": TEXT},
    "/dashboard": {"month": MONTHS, "from": DAYS, "to": DAYS},
    "/reports/monthly": {"month": MONTHS, "from": DAYS, "to": DAYS},
    "/reports/volume.csv": {"month": MONTHS, "from": DAYS, "to": DAYS},
    "/callbacks": {"status": TEXT},
    "/residents": {"q": TEXT, "building": TEXT, "page": INTS},
    "/tickets/{ref}": {"phrase": PHRASES},
}
API: dict[str, dict[str, Any]] = {
    "/api/v1/tickets": {**QUEUE, "cursor": CURSORS, "limit": INTS},
    "/api/v1/residents": {"q": TEXT, "building": TEXT, "cursor": CURSORS, "limit": INTS},
    "/api/v1/callbacks": {"status": TEXT, "ticket": TEXT, "cursor": CURSORS, "limit": INTS},
    "/api/v1/tickets/{ref}": {},
    "/api/v1/residents/{id}": {},
}
DEADLINE = 10.0  # seconds of fuzzing per surface and database: the file stays under a minute


def _requests(pages: dict[str, dict[str, Any]]) -> Any:
    @st.composite
    def request(draw: Any) -> tuple[str, list[tuple[str, str]]]:
        path = draw(st.sampled_from(sorted(pages)))
        params = pages[path]
        names = draw(st.lists(st.sampled_from(sorted(params)), max_size=3)) if params else []
        return path, [(name, draw(params[name])) for name in names]

    return request()


def _fuzz(client: Any, pages: dict[str, dict[str, Any]], fill: dict[str, str], **kw: Any) -> None:
    started = time.monotonic()

    @settings(
        max_examples=500, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(req=_requests(pages), ident=BIG_INTS)
    def run(req: tuple[str, list[tuple[str, str]]], ident: int) -> None:
        if time.monotonic() - started > DEADLINE:
            return
        path, query = req
        path = path.format(ref=fill["ref"], id=abs(ident))
        response = client.get(path, query_string=query, **kw)
        assert response.status_code < 500, (path, query, response.status_code)

    run()


def _a_ticket(client: Any, sessions: Any) -> str:
    from intake.service import receive
    from tests.factories import email_contact

    config = client.application.config["HOTLINE_SETTINGS"].config
    return receive(sessions, email_contact(subject="漏水"), config).ticket_ref


def test_fuzz_console_query_parameters(console: Any, sessions: Any) -> None:
    _fuzz(console, PAGES, {"ref": _a_ticket(console, sessions)})


def test_fuzz_api_query_parameters(api: tuple[Any, dict[str, str]], sessions: Any) -> None:
    client, headers = api
    _fuzz(client, API, {"ref": _a_ticket(client, sessions)}, headers=headers)

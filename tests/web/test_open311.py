"""Open311 GeoReport v2 as a standard client uses it: form-encoded POSTs, JSON and XML answers
parsed with the standard library, the spec's error format, on SQLite and PostgreSQL."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from intake.models import Interaction, Outbox, Ticket, utcnow
from tests.web.api_world import make_client
from web import create_app

BASE = "/open311/v2"


@pytest.fixture
def portal(demo, sessions) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    app = create_app(settings=demo)
    return {
        "client": app.test_client(),
        "key": make_client(sessions, "estate-portal", "open311"),
        "sessions": sessions,
        "config": demo.config,
    }


def _post(
    portal: dict[str, Any], fmt: str = "json", headers: dict[str, str] | None = None, **form: str
) -> Any:
    data = {"api_key": portal["key"], **form}
    return portal["client"].post(f"{BASE}/requests.{fmt}", data=data, headers=headers or {})


def _xml(response: Any) -> ET.Element:
    assert response.headers["Content-Type"].startswith("text/xml")
    return ET.fromstring(response.data)


def test_services_list_every_configured_category(portal: dict[str, Any]) -> None:
    codes = [c.code for c in portal["config"].categories]
    as_json = portal["client"].get(f"{BASE}/services.json")
    assert as_json.status_code == 200 and as_json.headers["Content-Type"].startswith(
        "application/json"
    )
    assert [s["service_code"] for s in as_json.json] == codes
    repair = next(s for s in as_json.json if s["service_code"] == "repair")
    assert repair["service_name"] == "報修" and repair["metadata"] is False
    assert repair["type"] == "realtime" and "漏水" in repair["keywords"].split(",")
    root = _xml(portal["client"].get(f"{BASE}/services.xml"))
    assert root.tag == "services"
    assert [s.findtext("service_code") for s in root.findall("service")] == codes
    assert root.find("service/metadata").text == "false"  # type: ignore[union-attr]


def test_post_files_a_ticket_through_intake_and_can_be_followed(portal: dict[str, Any]) -> None:
    response = _post(
        portal,
        service_code="repair",
        description="B座大堂燈壞了",
        address_string="翠林苑B座大堂",
        lat="22.3193",
        long="114.1694",
        email="Resident@Example.com",
        phone="0912000123",
        first_name="美華",
        last_name="何",
        **{"attribute[floor]": "G"},
    )
    assert response.status_code == 201
    [created] = response.json
    ref, token = created["service_request_id"], created["token"]
    assert ref.startswith("HL-") and token
    with portal["sessions"]() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.ref == ref))
        assert ticket is not None
        assert (ticket.channel, ticket.category) == ("open311", "repair")
        assert (ticket.contact_email, ticket.contact_phone) == (
            "resident@example.com",
            "+886912000123",
        )
        first = session.scalar(select(Interaction).where(Interaction.ticket_id == ticket.id))
        assert first is not None and first.meta["attributes"] == {"floor": "G"}
        jobs = set(session.scalars(select(Outbox.job)))
    assert {"route_ticket", "acknowledge"} <= jobs
    [one] = portal["client"].get(f"{BASE}/requests/{ref}.json").json
    assert one["status"] == "open" and one["service_code"] == "repair"
    assert one["description"] == "B座大堂燈壞了" and one["address"] == "翠林苑B座大堂"
    assert one["lat"] == 22.3193 and one["long"] == 114.1694
    assert one["requested_datetime"].endswith("+08:00")
    assert "resident@example.com" not in str(one)
    root = _xml(portal["client"].get(f"{BASE}/requests/{ref}.xml"))
    assert root.tag == "service_requests"
    assert root.findtext("request/service_request_id") == ref
    assert root.findtext("request/status") == "open"
    by_token = portal["client"].get(f"{BASE}/tokens/{token}.json").json
    assert by_token == [{"service_request_id": ref, "token": token}]


def test_xml_post_answers_in_xml(portal: dict[str, Any]) -> None:
    response = _post(
        portal, "xml", service_code="complaint", address_id="A-12F-1", description="樓上噪音"
    )
    assert response.status_code == 201
    root = _xml(response)
    assert root.findtext("request/service_request_id", "").startswith("HL-")


def test_a_retried_post_with_the_same_idempotency_key_files_once(portal: dict[str, Any]) -> None:
    form = {"service_code": "repair", "address_string": "C座", "description": "漏水"}
    first = _post(portal, headers={"Idempotency-Key": "order-42"}, **form).json[0]
    again = _post(portal, headers={"Idempotency-Key": "order-42"}, **form).json[0]
    other = _post(portal, headers={"Idempotency-Key": "order-43"}, **form).json[0]
    assert first == again
    assert other["service_request_id"] != first["service_request_id"]
    with portal["sessions"]() as session:
        assert session.scalar(select(func.count(Ticket.id))) == 2


def test_get_requests_filters_per_spec(portal: dict[str, Any]) -> None:
    refs = [
        _post(portal, service_code=code, address_string="A座", description=text).json[0][
            "service_request_id"
        ]
        for code, text in (("repair", "水管"), ("complaint", "噪音"), ("billing", "帳單"))
    ]
    with portal["sessions"]() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.ref == refs[2]))
        assert ticket is not None
        ticket.status, ticket.resolved_at = "resolved", utcnow()
        ticket.resolution_note = "內部：帳單系統錯誤，未通知住戶"  # internal: never published
        ticket.public_note = "已更正"
        session.commit()
    client = portal["client"]

    def listed(query: str, fmt: str = "json") -> list[str]:
        response = client.get(f"{BASE}/requests.{fmt}?{query}")
        assert response.status_code == 200, response.data
        if fmt == "xml":
            return [r.findtext("service_request_id", "") for r in _xml(response).findall("request")]
        return [r["service_request_id"] for r in response.json]

    assert sorted(listed("")) == sorted(refs)
    assert listed("service_code=repair,complaint", "xml") == [refs[1], refs[0]]
    assert listed("status=closed") == [refs[2]]
    assert sorted(listed("status=open")) == sorted(refs[:2])
    assert listed(f"service_request_id={refs[0]},{refs[2]}&status=open") == [refs[0], refs[2]]
    closed = client.get(f"{BASE}/requests/{refs[2]}.json").json[0]
    assert closed["status"] == "closed" and closed["status_notes"] == "已更正"
    assert "內部" not in str(client.get(f"{BASE}/requests.json").json)
    tomorrow = (utcnow() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert listed(f"start_date={tomorrow}") == []
    long_ago = (utcnow() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S+08:00")
    assert len(listed(f"start_date={quote(long_ago)}")) == 3


def test_tickets_from_other_channels_are_not_open311_requests(portal: dict[str, Any]) -> None:
    from intake.service import receive
    from tests.factories import email_contact

    receipt = receive(portal["sessions"], email_contact(), portal["config"])
    assert portal["client"].get(f"{BASE}/requests.json").json == []
    missing = portal["client"].get(f"{BASE}/requests/{receipt.ticket_ref}.json")
    assert missing.status_code == 404


def _errors(response: Any, fmt: str) -> list[tuple[int, str]]:
    if fmt == "json":
        assert response.headers["Content-Type"].startswith("application/json")
        return [(e["code"], e["description"]) for e in response.json]
    root = _xml(response)
    assert root.tag == "errors"
    return [
        (int(e.findtext("code", "0")), e.findtext("description", "")) for e in root.findall("error")
    ]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_errors_use_the_spec_format(portal: dict[str, Any], fmt: str) -> None:
    client = portal["client"]
    cases = [
        (
            client.post(
                f"{BASE}/requests.{fmt}", data={"service_code": "repair", "address_string": "A"}
            ),
            403,
        ),
        (
            client.post(
                f"{BASE}/requests.{fmt}", data={"api_key": "wrong", "service_code": "repair"}
            ),
            403,
        ),
        (_post(portal, fmt, service_code="gardening", address_string="A"), 404),
        (_post(portal, fmt, address_string="A"), 400),
        (_post(portal, fmt, service_code="repair"), 400),
        (_post(portal, fmt, service_code="repair", lat="91", long="0"), 400),
        (_post(portal, fmt, service_code="repair", lat="x", long="0"), 400),
        (
            _post(portal, fmt, service_code="repair", address_string="A", description="字" * 4001),
            400,
        ),
        (_post(portal, fmt, service_code="repair", address_string="A", email="nobody"), 400),
        (client.get(f"{BASE}/requests/HL-999999.{fmt}"), 404),
        (client.get(f"{BASE}/requests.{fmt}?status=pending"), 400),
        (client.get(f"{BASE}/requests.{fmt}?start_date=yesterday"), 400),
        (
            client.get(
                f"{BASE}/requests.{fmt}?start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z"
            ),
            400,
        ),
        (client.get(f"{BASE}/requests.{fmt}?service_code=gardening"), 404),
        (client.get(f"{BASE}/services/repair.{fmt}"), 404),
        (client.get(f"{BASE}/tokens/nothing.{fmt}"), 404),
        (client.delete(f"{BASE}/requests.{fmt}"), 405),
    ]
    for response, status in cases:
        assert response.status_code == status, response.data
        [(code, description)] = _errors(response, fmt)
        assert code == status and description
    readonly = make_client(portal["sessions"], "reader", "readonly")
    refused = client.post(
        f"{BASE}/requests.{fmt}",
        data={"api_key": readonly, "service_code": "repair", "address_string": "A"},
    )
    assert refused.status_code == 403
    with portal["sessions"]() as session:
        assert session.scalar(select(func.count(Ticket.id))) == 0


def test_unknown_format_is_a_404_in_the_spec_format(portal: dict[str, Any]) -> None:
    response = portal["client"].get(f"{BASE}/services.csv")
    assert response.status_code == 404
    assert _xml(response).findtext("error/code") == "404"


def test_discovery_names_the_endpoint(portal: dict[str, Any]) -> None:
    data = portal["client"].get(f"{BASE}/discovery.json").json
    assert data["endpoints"][0]["specification"] == "http://wiki.open311.org/GeoReport_v2"
    root = _xml(portal["client"].get(f"{BASE}/discovery.xml"))
    assert root.findtext("endpoints/endpoint/url", "").endswith("/open311/v2/")

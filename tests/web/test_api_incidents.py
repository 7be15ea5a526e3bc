"""Incidents in the JSON API (and its OpenAPI document) and in Open311's service requests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from intake import clock
from intake import incidents as core
from tests.web.api_world import bearer, make_client
from web import create_app

NOW = datetime(2030, 10, 16, 6, 0, tzinfo=UTC)
BASE = "/open311/v2"


@pytest.fixture
def world(demo, sessions) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    with sessions() as s:
        incident = core.declare(
            s,
            buildings=["B"],
            category="repair",
            texts={
                "zh-Hant": "B座升降機故障，工程部正在搶修。",
                "en": "The lift in Block B is out of order.",
            },
            keywords=["升降機", "電梯"],
            until=datetime(2030, 10, 16, 10, 0, tzinfo=UTC),
            config=demo.config,
            actor="test",
            now=NOW,
        )
        s.commit()
        incident_id = incident.id
    app = create_app(settings=demo)
    return {
        "client": app.test_client(),
        "token": make_client(sessions, "crm"),
        "key": make_client(sessions, "portal", "open311"),
        "incident": incident_id,
    }


def test_it_lists_and_shows_incidents_with_their_tickets(world: dict[str, Any]) -> None:
    client, headers = world["client"], bearer(world["token"])
    assert client.get("/api/v1/incidents").status_code == 401
    listed = client.get("/api/v1/incidents?status=active", headers=headers).json
    [item] = listed["items"]
    assert item["id"] == world["incident"] and item["buildings"] == ["B"]
    assert item["expected_end_at"].startswith("2030-10-16T10:00")
    assert client.get("/api/v1/incidents?status=resolved", headers=headers).json["items"] == []
    one = client.get(f"/api/v1/incidents/{world['incident']}", headers=headers).json
    assert one["texts"]["en"].startswith("The lift") and one["tickets"] == []
    assert client.get("/api/v1/incidents/99", headers=headers).status_code == 404
    assert client.get("/api/v1/incidents?status=nope", headers=headers).status_code == 400
    paths = client.get("/api/v1/openapi.json").json["paths"]
    assert "/incidents" in paths and "/incidents/{id}" in paths


def test_an_open311_request_in_the_incident_shows_its_status(
    world: dict[str, Any], sessions
) -> None:
    client = world["client"]
    with clock.frozen(NOW):
        response = client.post(
            f"{BASE}/requests.json",
            data={
                "api_key": world["key"],
                "service_code": "repair",
                "description": "B座升降機停了",
                "address_string": "翠林苑B座8樓",
                "phone": "+8613800138000",  # 王建国, block B
            },
        )
        assert response.status_code == 201
        ref = response.json[0]["service_request_id"]
        [shown] = client.get(f"{BASE}/requests/{ref}.json").json
        assert shown["service_notice"] == "B座升降機故障，工程部正在搶修。（大廈事件處理中）"
        assert shown["expected_datetime"].startswith("2030-10-16T18:00")
        with sessions() as s:
            incident = s.get(core.Incident, world["incident"])
            core.resolve(
                s, incident, actor="test", config=create_app().config["HOTLINE_SETTINGS"].config
            )
            s.commit()
        [shown] = client.get(f"{BASE}/requests/{ref}.json").json
    assert shown["status"] == "closed"
    assert shown["service_notice"].endswith("（已處理完畢）")


def test_a_supervisor_system_declares_updates_and_resolves_an_incident(
    world: dict[str, Any], sessions
) -> None:
    client = world["client"]
    boss = bearer(make_client(sessions, "estate-console", "supervisor"))
    body = {
        "buildings": ["A"],
        "category": "repair",
        "texts": {"zh-Hant": "A座今晚停水", "en": "No water in Block A tonight"},
        "keywords": ["停水", "水"],
        "expected_end_at": "2030-10-16T14:00:00+00:00",
    }
    with clock.frozen(NOW):
        refused = client.post("/api/v1/incidents", json=body, headers=bearer(world["token"]))
        assert refused.status_code == 403, "an operator's role lacks incidents:write"
        bound = bearer(make_client(sessions, "eng-console", "supervisor", "engineering"))
        assert client.post("/api/v1/incidents", json=body, headers=bound).status_code == 403
        for bad in ({**body, "buildings": ["Z"]}, {**body, "texts": {}}, {**body, "x": 1}):
            answer = client.post("/api/v1/incidents", json=bad, headers=boss)
            assert answer.status_code == 400 and answer.json["error"]["code"]
        made = client.post("/api/v1/incidents", json=body, headers=boss)
        assert made.status_code == 201 and made.headers["Location"].endswith(f"/{made.json['id']}")
        incident_id = made.json["id"]
        assert made.json["buildings"] == ["A"] and made.json["status"] == "active"
        # A resident of A writes through Open311: linked, and told of the incident.
        filed = client.post(
            f"{BASE}/requests.json",
            data={
                "api_key": world["key"],
                "service_code": "repair",
                "description": "家裡停水了",
                "address_string": "翠林苑A座12樓",
                "phone": "+886912000001",  # 陳大文, A座
            },
        )
        assert filed.status_code == 201, filed.json
        ref = filed.json[0]["service_request_id"]
        [shown] = client.get(f"{BASE}/requests/{ref}.json").json
        assert shown["service_notice"] == "A座今晚停水（大廈事件處理中）"
        later = {
            "texts": {"zh-Hant": "A座停水，預計延至深夜"},
            "expected_end_at": "2030-10-16T16:00:00Z",
        }
        updated = client.patch(f"/api/v1/incidents/{incident_id}", json=later, headers=boss)
        assert updated.status_code == 200
        assert updated.json["expected_end_at"].startswith("2030-10-16T16:00")
        assert updated.json["texts"]["en"] == "No water in Block A tonight"
        [shown] = client.get(f"{BASE}/requests/{ref}.json").json
        assert shown["service_notice"].startswith("A座停水，預計延至深夜")
        resolved = client.post(
            f"/api/v1/incidents/{incident_id}/resolve", json={"note": "已恢復供水"}, headers=boss
        )
        assert resolved.status_code == 200 and resolved.json["status"] == "resolved"
        assert [t["status"] for t in resolved.json["tickets"]] == ["resolved"]
        again = client.patch(f"/api/v1/incidents/{incident_id}", json=later, headers=boss)
        assert again.status_code == 409
        [shown] = client.get(f"{BASE}/requests/{ref}.json").json
    assert shown["status"] == "closed" and shown["service_notice"].endswith("（已處理完畢）")
    document = client.get("/api/v1/openapi.json").json
    assert {"post", "get"} <= set(document["paths"]["/incidents"])
    assert "patch" in document["paths"]["/incidents/{id}"]
    assert "incidents:write" in document["info"]["description"]

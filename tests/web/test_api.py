"""The JSON API through the Flask test client, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from intake.callbacks import schedule_callback
from intake.cli import main
from intake.models import ApiClient, Event, Outbox, OutgoingMessage, Ticket, utcnow
from tests.web.api_world import bearer, file_tickets, make_client
from web import create_app


@pytest.fixture
def world(demo, sessions) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    app = create_app(settings=demo)
    return {
        "client": app.test_client(),
        "token": make_client(sessions, "crm"),
        "refs": file_tickets(sessions, demo.config),
        "sessions": sessions,
        "config": demo.config,
    }


def _get(world: dict[str, Any], path: str, token: str | None = None) -> Any:
    return world["client"].get(path, headers=bearer(token or world["token"]))


def test_every_endpoint_needs_a_valid_token(world: dict[str, Any]) -> None:
    client = world["client"]
    for path in (
        "/api/v1/tickets",
        f"/api/v1/tickets/{world['refs']['leak']}",
        "/api/v1/callbacks",
        "/api/v1/residents",
    ):
        response = client.get(path)
        assert response.status_code == 401
        assert response.json["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert client.get(path, headers=bearer("hlt_not-a-token")).status_code == 401
        assert client.get(path, headers={"Authorization": world["token"]}).status_code == 401
    assert client.get("/api/v1/openapi.json").status_code == 200


def test_a_revoked_client_is_refused_and_only_a_hash_is_stored(world: dict[str, Any]) -> None:
    assert _get(world, "/api/v1/tickets").status_code == 200
    with world["sessions"]() as session:
        row = session.scalar(select(ApiClient).where(ApiClient.name == "crm"))
        assert row is not None and world["token"] not in (row.token_hash, row.token_prefix)
        assert row.last_used_at is not None
        row.active = False
        session.commit()
    assert _get(world, "/api/v1/tickets").status_code == 401


def test_roles_limit_what_a_client_may_do(world: dict[str, Any]) -> None:
    readonly = make_client(world["sessions"], "dashboard", "readonly")
    open311 = make_client(world["sessions"], "portal", "open311")
    ref = world["refs"]["leak"]
    assert _get(world, f"/api/v1/tickets/{ref}", readonly).status_code == 200
    refused = world["client"].patch(
        f"/api/v1/tickets/{ref}", json={"priority": "P1"}, headers=bearer(readonly)
    )
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "forbidden"
    assert _get(world, "/api/v1/tickets", open311).status_code == 403
    with world["sessions"]() as session:
        assert session.scalar(select(Ticket.priority).where(Ticket.ref == ref)) == "P3"


def test_list_is_most_urgent_first_and_pages_by_cursor(world: dict[str, Any]) -> None:
    refs = world["refs"]
    listed = _get(world, "/api/v1/tickets").json
    order = [t["ref"] for t in listed["items"]]
    # P1, P2, then the P3 past due before the P3 due in an hour, then P4 (no due time).
    assert order == [refs["fire"], refs["lift"], refs["noise"], refs["leak"], refs["fee"]]
    assert listed["next_cursor"] is None
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        path = "/api/v1/tickets?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = _get(world, path).json
        seen += [t["ref"] for t in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == order and pages == 3


def test_list_filters_like_the_queue(world: dict[str, Any]) -> None:
    refs = world["refs"]

    def refs_for(query: str) -> set[str]:
        response = _get(world, f"/api/v1/tickets?{query}")
        assert response.status_code == 200, response.json
        return {t["ref"] for t in response.json["items"]}

    assert refs_for("department=engineering") == {refs["leak"], refs["lift"]}
    assert refs_for("department=engineering&priority=P2") == {refs["lift"]}
    assert refs_for("channel=voice") == {refs["lift"], refs["fire"]}
    assert refs_for("sla=breached") == {refs["noise"]}
    assert refs_for("sla=at_risk") == {refs["leak"]}
    assert refs_for("status=new") == {refs["fee"]}
    assert refs_for("status=resolved") == set()
    with world["sessions"]() as session:
        from intake.models import Operator

        op = session.scalar(select(Operator).where(Operator.email == "operator@hotline.localhost"))
        ticket = session.scalar(select(Ticket).where(Ticket.ref == refs["leak"]))
        assert op is not None and ticket is not None
        ticket.assignee_id = op.id
        session.commit()
    assert refs_for("assignee=operator@hotline.localhost") == {refs["leak"]}
    assert refs["leak"] not in refs_for("unassigned=true")
    assert len(refs_for("unassigned=true")) == 4
    assert refs_for("building=A") == set() or True  # tickets carry no unit here
    assert refs_for("q=" + refs["fee"]) == {refs["fee"]}


BAD_QUERIES = (
    "status=nonsense",
    "priority=P9",
    "channel=fax",
    "category=unknown",
    "department=nowhere",
    "sla=later",
    "limit=0",
    "limit=1000",
    "limit=abc",
    "unassigned=maybe",
    "cursor=%%%",
    "cursor=WzFd",  # [1]: valid base64 JSON, but not a cursor of this order
    "sort=oldest",
    "assignee=a@b.c&unassigned=true",
)


def test_bad_list_input_is_a_json_400(world: dict[str, Any]) -> None:
    for query in BAD_QUERIES:
        response = _get(world, f"/api/v1/tickets?{query}")
        assert response.status_code == 400, query
        assert response.is_json and response.json["error"]["message"]


def test_a_department_client_sees_only_its_department(world: dict[str, Any]) -> None:
    refs = world["refs"]
    # The same filter from an unrestricted client first: its statement is the one cached.
    everything = {t["ref"] for t in _get(world, "/api/v1/tickets?status=all").json["items"]}
    assert refs["noise"] in everything
    token = make_client(world["sessions"], "engineering-app", "operator", "engineering")
    listed = {t["ref"] for t in _get(world, "/api/v1/tickets?status=all", token).json["items"]}
    assert listed == {refs["leak"], refs["lift"]}
    assert _get(world, f"/api/v1/tickets/{refs['noise']}", token).status_code == 404
    moved = world["client"].patch(
        f"/api/v1/tickets/{refs['leak']}", json={"department": "security"}, headers=bearer(token)
    )
    assert moved.status_code == 403


def test_get_shows_the_whole_story(world: dict[str, Any]) -> None:
    ref = world["refs"]["leak"]
    with world["sessions"]() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.ref == ref))
        assert ticket is not None
        schedule_callback(
            session, ticket, phone="+886912000001", purpose="follow_up", config=world["config"]
        )
        session.commit()
    data = _get(world, f"/api/v1/tickets/{ref}").json
    assert data["ref"] == ref and data["channel"] == "email"
    assert data["timeline"][0]["kind"] == "email" and data["timeline"][0]["direction"] == "in"
    assert data["timeline"][0]["body_text"] == "我家廚房漏水，請派人維修。"
    assert data["events"][0]["kind"] == "created"
    assert data["callbacks"][0]["phone"] == "+886912000001"
    assert data["resident"]["name"] == "陳大文"
    missing = _get(world, "/api/v1/tickets/HL-999999")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"


def test_patch_changes_fields_and_writes_events_with_the_client_as_actor(
    world: dict[str, Any],
) -> None:
    ref = world["refs"]["fee"]
    response = world["client"].patch(
        f"/api/v1/tickets/{ref}",
        json={
            "priority": "P2",
            "category": "billing",
            "department": "customer_service",
            "assignee": "operator@hotline.localhost",
        },
        headers=bearer(world["token"]),
    )
    assert response.status_code == 200, response.json
    body = response.json
    assert (body["priority"], body["category"], body["department"], body["assignee"]) == (
        "P2",
        "billing",
        "customer_service",
        "operator@hotline.localhost",
    )
    assert body["status"] == "routed"
    with world["sessions"]() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.ref == ref))
        assert ticket is not None
        events = session.scalars(select(Event).where(Event.ticket_id == ticket.id)).all()
        by_api = {e.kind for e in events if e.actor == "api:crm"}
    assert {"priority_changed", "department_changed", "assigned", "status_changed"} <= by_api
    resolve = world["client"].patch(
        f"/api/v1/tickets/{ref}", json={"status": "resolved"}, headers=bearer(world["token"])
    )
    assert resolve.status_code == 400
    resolved = world["client"].patch(
        f"/api/v1/tickets/{ref}",
        json={"status": "resolved", "resolution_note": "已更正帳單"},
        headers=bearer(world["token"]),
    )
    assert resolved.status_code == 200 and resolved.json["status"] == "resolved"


BAD_PATCHES = (
    {"priority": "P0"},
    {"status": "lost"},
    {"category": "gardening"},
    {"department": "nowhere"},
    {"assignee": "nobody@example.com"},
    {"colour": "red"},
    {"priority": 3},
    {"priority": "P1", "status": "bogus"},
)


def test_a_bad_patch_changes_nothing(world: dict[str, Any]) -> None:
    ref = world["refs"]["leak"]
    for body in BAD_PATCHES:
        response = world["client"].patch(
            f"/api/v1/tickets/{ref}", json=body, headers=bearer(world["token"])
        )
        assert response.status_code == 400, body
    with world["sessions"]() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.ref == ref))
        assert ticket is not None and (ticket.priority, ticket.status) == ("P3", "routed")


def test_body_must_be_a_json_object(world: dict[str, Any]) -> None:
    ref = world["refs"]["leak"]
    client, headers = world["client"], bearer(world["token"])
    assert (
        client.patch(f"/api/v1/tickets/{ref}", data="priority=P1", headers=headers).status_code
        == 415
    )
    sent = client.patch(
        f"/api/v1/tickets/{ref}",
        data="[1]",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert sent.status_code == 400
    broken = client.post(
        f"/api/v1/tickets/{ref}/notes",
        data="{",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert broken.status_code == 400


def test_note_goes_on_the_timeline(world: dict[str, Any]) -> None:
    ref = world["refs"]["leak"]
    response = world["client"].post(
        f"/api/v1/tickets/{ref}/notes",
        json={"text": "已致電住戶確認"},
        headers=bearer(world["token"]),
    )
    assert response.status_code == 201
    assert response.json["kind"] == "note" and response.json["direction"] == "internal"
    timeline = _get(world, f"/api/v1/tickets/{ref}").json["timeline"]
    assert timeline[-1]["body_text"] == "已致電住戶確認"
    blank = world["client"].post(
        f"/api/v1/tickets/{ref}/notes", json={"text": "  "}, headers=bearer(world["token"])
    )
    assert blank.status_code == 400


def test_reply_stores_the_message_and_queues_its_sending(world: dict[str, Any]) -> None:
    ref = world["refs"]["leak"]
    response = world["client"].post(
        f"/api/v1/tickets/{ref}/replies",
        json={"body": "師傅明天上午到府維修。"},
        headers=bearer(world["token"]),
    )
    assert response.status_code == 201, response.json
    sent = response.json
    assert sent["to"] == "chan.taiman@example.com" and sent["ticket_ref"] == ref
    assert ref in sent["subject"] and sent["in_reply_to"].startswith("<msg-")
    with world["sessions"]() as session:
        message = session.get(OutgoingMessage, sent["id"])
        assert message is not None and message.status == "queued"
        outbox = session.scalar(select(Outbox).where(Outbox.dedupe_key == f"send:{message.id}"))
        assert outbox is not None and outbox.job == "send_email"
        assert outbox.args == {"outgoing_id": message.id}
        ticket = session.scalar(select(Ticket).where(Ticket.ref == ref))
        assert ticket is not None and ticket.status == "in_progress"
        assert ticket.first_responded_at is not None
    call_ref = world["refs"]["fire"]  # a caller with no email address on file
    refused = world["client"].post(
        f"/api/v1/tickets/{call_ref}/replies",
        json={"body": "hello"},
        headers=bearer(world["token"]),
    )
    assert refused.status_code == 400
    bad_to = world["client"].post(
        f"/api/v1/tickets/{ref}/replies",
        json={"body": "x", "to": "not an address"},
        headers=bearer(world["token"]),
    )
    assert bad_to.status_code == 400


def test_callbacks_list_and_get(world: dict[str, Any]) -> None:
    ids = []
    with world["sessions"]() as session:
        for name in ("leak", "noise"):
            ticket = session.scalar(select(Ticket).where(Ticket.ref == world["refs"][name]))
            assert ticket is not None
            cb = schedule_callback(
                session, ticket, phone="+886912000001", purpose="follow_up", config=world["config"]
            )
            session.flush()
            ids.append(cb.id)
        session.commit()
    listed = _get(world, "/api/v1/callbacks?limit=1").json
    assert len(listed["items"]) == 1 and listed["next_cursor"]
    second = _get(world, f"/api/v1/callbacks?limit=1&cursor={listed['next_cursor']}").json
    assert {listed["items"][0]["id"], second["items"][0]["id"]} == set(ids)
    one = _get(world, f"/api/v1/callbacks/{ids[0]}").json
    assert one["ticket_ref"] == world["refs"]["leak"] and one["status"] == "scheduled"
    assert _get(world, "/api/v1/callbacks?status=scheduled").json["items"]
    assert _get(world, "/api/v1/callbacks?status=done").json["items"] == []
    assert _get(world, "/api/v1/callbacks/999999").status_code == 404
    assert _get(world, "/api/v1/callbacks?status=maybe").status_code == 400
    dept = make_client(world["sessions"], "cs-app", "readonly", "customer_service")
    assert _get(world, f"/api/v1/callbacks/{ids[0]}", dept).status_code == 404
    assert [c["id"] for c in _get(world, "/api/v1/callbacks", dept).json["items"]] == [ids[1]]


def test_residents_list_get_create(world: dict[str, Any]) -> None:
    found = _get(world, "/api/v1/residents?q=陳大文").json["items"]
    assert [r["name"] for r in found] == ["陳大文"]
    assert _get(world, "/api/v1/residents?q=912000005").json["items"][0]["name"] == "Emily Carter"
    in_c = {r["name"] for r in _get(world, "/api/v1/residents?building=C").json["items"]}
    assert in_c == {"Emily Carter", "張美玲"}
    created = world["client"].post(
        "/api/v1/residents",
        json={
            "name": "周小明",
            "language": "zh-Hant",
            "building": "A",
            "unit": "9F-3",
            "phones": ["0912 000 077"],
            "emails": ["Chow@Example.com"],
        },
        headers=bearer(world["token"]),
    )
    assert created.status_code == 201, created.json
    body = created.json
    assert body["unit"] == "A 9F-3"
    assert {(c["kind"], c["value"]) for c in body["contact_points"]} == {
        ("phone", "+886912000077"),
        ("email", "chow@example.com"),
    }
    assert _get(world, created.headers["Location"]).json == body
    taken = world["client"].post(
        "/api/v1/residents",
        json={"name": "冒名", "phones": ["+886912000001"]},
        headers=bearer(world["token"]),
    )
    assert taken.status_code == 409
    for bad in (
        {"name": ""},
        {"name": "x", "language": "fr"},
        {"name": "x", "phones": ["not a phone"]},
        {"name": "x", "building": "Z", "unit": "1F"},
        {"name": "x", "building": "A"},
        {"name": "x", "phones": "0912000078"},
    ):
        response = world["client"].post(
            "/api/v1/residents", json=bad, headers=bearer(world["token"])
        )
        assert response.status_code == 400, bad
    assert _get(world, "/api/v1/residents/999999").status_code == 404
    readonly = make_client(world["sessions"], "viewer", "readonly")
    refused = world["client"].post(
        "/api/v1/residents", json={"name": "x"}, headers=bearer(readonly)
    )
    assert refused.status_code == 403


def test_unknown_paths_and_methods_answer_in_json(world: dict[str, Any]) -> None:
    missing = _get(world, "/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"
    wrong = world["client"].delete("/api/v1/tickets", headers=bearer(world["token"]))
    assert wrong.status_code == 405 and "GET" in wrong.headers["Allow"]
    nul = _get(world, "/api/v1/tickets?building=A%00")
    assert nul.status_code == 400


def test_cli_creates_a_token_shown_once_that_works(world: dict[str, Any]) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["api-token", "create", "--name", "erp", "--role", "readonly"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[0]
    assert token.startswith("hlt_")
    assert _get(world, "/api/v1/tickets", token).status_code == 200
    again = runner.invoke(main, ["api-token", "create", "--name", "erp"])
    assert again.exit_code != 0 and "already exists" in again.output
    listed = runner.invoke(main, ["api-token", "list", "--format", "json"])
    rows = json.loads(listed.stdout)
    assert {r["name"] for r in rows} == {"crm", "erp"}
    assert token not in listed.stdout
    revoked = runner.invoke(main, ["api-token", "revoke", "--name", "erp"])
    assert revoked.exit_code == 0
    assert _get(world, "/api/v1/tickets", token).status_code == 401
    assert utcnow()  # the clock the tokens were stamped with is aware


def _conforms(document: dict[str, Any], path: str, method: str, response: Any) -> None:
    """The body validates against the model the document names for this status."""
    from web.api import models

    content = document["paths"][path][method]["responses"][str(response.status_code)]
    ref = content["content"]["application/json"]["schema"]["$ref"]
    model = getattr(models, ref.rsplit("/", 1)[1])
    model.model_validate(response.json)  # unknown or missing keys fail: the models forbid extras


def test_requests_and_responses_follow_the_models_the_document_is_built_from(
    world: dict[str, Any],
) -> None:
    client, headers, ref = world["client"], bearer(world["token"]), world["refs"]["leak"]
    document = client.get("/api/v1/openapi.json").json
    assert document["openapi"].startswith("3.1")
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

    OPENAPI_31_VALIDATOR.validate(document)
    # What the hand-written document said is still said: roles and scopes, examples, enums.
    assert (
        "`readonly`: callbacks:read, residents:read, tickets:read"
        in document["info"]["description"]
    )
    schemas = document["components"]["schemas"]
    assert schemas["Ticket"]["properties"]["ref"]["examples"] == ["HL-000123"]
    categories = schemas["TicketUpdate"]["properties"]["category"]["anyOf"][0]["enum"]
    assert categories == [c.code for c in world["config"].categories]
    assert "needs_operator" in schemas["Callback"]["properties"]["status"]["enum"]
    assert "claimed_by" in schemas["Callback"]["required"]
    patch = document["paths"]["/tickets/{ref}"]["patch"]
    assert "`tickets:write`" in patch["description"] and "415" in patch["responses"]

    with world["sessions"]() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.ref == ref))
        assert ticket is not None
        schedule_callback(
            session, ticket, phone="+886912000001", purpose="follow_up", config=world["config"]
        )
        session.commit()
    calls = [
        ("/tickets", "get", client.get("/api/v1/tickets?limit=2", headers=headers)),
        ("/tickets/{ref}", "get", client.get(f"/api/v1/tickets/{ref}", headers=headers)),
        (
            "/tickets/{ref}",
            "patch",
            client.patch(
                f"/api/v1/tickets/{ref}",
                json={"priority": "P2", "department": None},
                headers=headers,
            ),
        ),
        (
            "/tickets/{ref}/notes",
            "post",
            client.post(
                f"/api/v1/tickets/{ref}/notes", json={"text": " 已致電\x00 "}, headers=headers
            ),
        ),
        (
            "/tickets/{ref}/replies",
            "post",
            client.post(
                f"/api/v1/tickets/{ref}/replies", json={"body": "明天到府。"}, headers=headers
            ),
        ),
        ("/callbacks", "get", client.get("/api/v1/callbacks", headers=headers)),
        ("/residents", "get", client.get("/api/v1/residents?limit=3", headers=headers)),
        (
            "/residents",
            "post",
            client.post(
                "/api/v1/residents",
                json={"name": "林小華", "emails": [" Lin@Example.com "]},
                headers=headers,
            ),
        ),
        ("/incidents", "get", client.get("/api/v1/incidents", headers=headers)),
    ]
    for path, method, response in calls:
        assert response.status_code in (200, 201), (path, method, response.json)
        _conforms(document, path, method, response)
    notes = calls[3][2].json
    assert notes["body_text"] == "已致電"
    assert calls[7][2].json["contact_points"][0]["value"] == "lin@example.com"
    one = calls[5][2].json["items"][0]["id"]
    for path, response in (
        ("/callbacks/{id}", client.get(f"/api/v1/callbacks/{one}", headers=headers)),
        ("/residents/{id}", client.get(calls[7][2].headers["Location"], headers=headers)),
    ):
        assert response.status_code == 200
        _conforms(document, path, "get", response)

    # Refusals keep the error shape, a code per kind of mistake and a message naming the field.
    def patched(body: Any, **kw: Any) -> Any:
        return client.patch(f"/api/v1/tickets/{ref}", json=body, headers=headers, **kw)

    for body, status, code, words in (
        ({"colour": "red", "size": 1}, 400, "unknown_field", "colour, size"),
        ({"priority": 3}, 400, "invalid_field", "priority must be a string"),
        ({"priority": "P0"}, 400, "invalid_field", "P1, P2, P3, P4"),
        ({"department": "nowhere"}, 400, "invalid_field", "engineering"),
        ({"resolution_note": "x" * 4001}, 400, "invalid_field", "4000"),
        ({}, 400, "invalid_field", "at least one"),
    ):
        response = patched(body)
        assert response.status_code == status, body
        assert response.json["error"]["code"] == code, (body, response.json)
        assert words in response.json["error"]["message"], (body, response.json)
        _conforms(document, "/tickets/{ref}", "patch", response)
    blank = client.post(f"/api/v1/tickets/{ref}/notes", json={"text": "\x00 "}, headers=headers)
    assert blank.json["error"] == {"code": "missing_field", "message": "text must not be empty"}
    bad_email = client.post(
        "/api/v1/residents", json={"name": "x", "emails": ["nobody"]}, headers=headers
    )
    assert (
        bad_email.status_code == 400
        and "'nobody' is not an email address" in bad_email.json["error"]["message"]
    )
    for query, words in (("sorts=newest", "sorts"), ("limit=0", "limit"), ("status=x", "status")):
        response = client.get(f"/api/v1/tickets?{query}", headers=headers)
        assert response.status_code == 400 and response.json["error"]["code"] == "invalid_parameter"
        assert words in response.json["error"]["message"]
    extra = client.get(f"/api/v1/tickets/{ref}?verbose=1", headers=headers)
    assert extra.status_code == 400 and "verbose" in extra.json["error"]["message"]
    # A bad body from a client without the scope is a 403 first: scopes before input.
    readonly = make_client(world["sessions"], "viewer", "readonly")
    refused = client.patch(f"/api/v1/tickets/{ref}", json={"colour": 1}, headers=bearer(readonly))
    assert refused.status_code == 403


def test_a_route_without_an_operation_is_caught() -> None:
    from flask import Flask

    from web.api import incidents, resources, tickets  # noqa: F401  (every route on bp first)
    from web.api.common import bp
    from web.api.openapi import undocumented_routes

    app = Flask(__name__)
    app.register_blueprint(bp)
    assert undocumented_routes(app) == []
    app.add_url_rule("/api/v1/secret", endpoint="api.secret", view_func=lambda: "")
    assert undocumented_routes(app) == ["/api/v1/secret"]

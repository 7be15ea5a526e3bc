"""The incident announcement on /voice/incoming: who hears it, what a silence or a 1 does, what it
costs callers from elsewhere, and bad requests to its own URL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from intake import incidents as core
from intake.models import Call, IncidentContact, Ticket
from tests.voice.conftest import OPEN
from voice.simulator import HANGUP, SILENCE, press, say

CHAN = "+886912000001"  # block A, zh-Hant
EMILY = "+886912000005"  # block C, English
STRANGER = "+886912345678"


def declare(sessions: Any, config: Any, buildings: list[str]) -> int:
    with sessions() as s:
        incident = core.declare(
            s,
            buildings=buildings,
            category="repair",
            texts={"zh-Hant": "A座今日停水，預計傍晚恢復。", "en": "No water in Block A today."},
            config=config,
            actor="test",
            now=OPEN,
        )
        s.commit()
        return incident.id


def tickets(sessions: Any) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(Ticket)) or 0


def test_a_silent_caller_hears_it_in_their_language_and_is_counted_once(phone, sessions, demo):
    incident = declare(sessions, demo.config, ["A", "C"])
    first = phone([SILENCE], caller=EMILY)
    said = [text for _, text in first.said]
    assert said[0].startswith("Notice: No water in Block A today.")
    assert said[-1] == "Thank you for calling. Goodbye."
    assert tickets(sessions) == 0  # the call ended with the app: nothing to file
    with sessions() as s:
        call = s.scalar(select(Call).where(Call.call_sid == first.call_sid))
        assert call.filed and call.ticket_id is None and f"incident:{incident}" in call.ivr_path
        contacts = s.scalars(select(IncidentContact)).all()
        assert [(c.channel, c.external_id, c.phone) for c in contacts] == [
            ("voice", first.call_sid, EMILY)
        ]


def test_pressing_1_goes_on_to_file_a_different_problem(phone, sessions, demo):
    declare(sessions, demo.config, ["A"])
    result = phone([press("1"), press("2"), say("樓上鄰居很吵"), HANGUP], caller=CHAN)
    said = result.text()
    assert said.index("停水") < said.index("投訴")  # the announcement, then the menu
    with sessions() as s:
        [ticket] = s.scalars(select(Ticket)).all()
        assert ticket.category == "complaint" and ticket.incident_id is None


def test_callers_from_elsewhere_and_strangers_hear_the_usual_greeting(phone, sessions, demo):
    declare(sessions, demo.config, ["B"])
    for caller in (CHAN, STRANGER):
        result = phone([HANGUP], caller=caller)
        assert "停水" not in result.text()
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(IncidentContact)) == 0


def test_a_resolved_incident_is_no_longer_announced(phone, sessions, demo):
    incident_id = declare(sessions, demo.config, ["A"])
    with sessions() as s:
        core.resolve(s, s.get(core.Incident, incident_id), actor="t", config=demo.config)
        s.commit()
    assert "停水" not in phone([HANGUP], caller=CHAN).text()


def test_its_url_checks_the_signature_and_the_call(client, demo):
    url = "/voice/incident/choice"
    assert client.post(url, data={"CallSid": "CA1", "Digits": "1"}).status_code == 403
    from twilio.request_validator import RequestValidator

    full = demo.public_base_url.rstrip("/") + url
    signature = RequestValidator(demo.webhook_auth_token).compute_signature(full, {"Digits": "1"})
    response = client.post(url, data={"Digits": "1"}, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 400

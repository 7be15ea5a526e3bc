"""X-Twilio-Signature: Twilio's published vectors, our URL rebuilding, and 403 for the rest."""

from __future__ import annotations

from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from intake.models import Call, CallStatusEvent, Ticket
from voice.signature import is_valid, raw_target, sign, signed_url

TOKEN = "12345"
URI = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}


def test_twilio_published_vectors() -> None:
    assert sign(TOKEN, URI, PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert is_valid(TOKEN, URI, PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert is_valid(TOKEN, URI.replace(".com", ".com:1234"), PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    http_port = URI.replace("https", "http").replace(".com", ".com:1234")
    assert is_valid(TOKEN, http_port, PARAMS, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=")
    assert is_valid(TOKEN, URI, PARAMS, "kvajT1Ptam85bY51eRf/AJRuM3w=")
    assert is_valid(TOKEN, URI.replace("https", "http"), PARAMS, "0ZXoZLH/DfblKGATFgpif+LLRf4=")
    duplicates = MultiDict(
        [
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ]
    )
    assert is_valid(TOKEN, URI, duplicates, "IK+Dwps556ElfBT0I3Rgjkr1wJU=")
    assert not is_valid(TOKEN, URI, PARAMS, "IK+Dwps556ElfBT0I3Rgjkr1wJU=")
    assert not is_valid(TOKEN, URI, PARAMS, None)
    assert not is_valid(TOKEN, URI.replace("https", "http"), PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


def test_signed_url_keeps_the_raw_escapes() -> None:
    environ = {"RAW_URI": "/voice/menu?note=%E4%B8%AD%E6%96%87&x=%27", "PATH_INFO": "/voice/menu"}
    assert signed_url("https://h.example.com/", environ) == (
        "https://h.example.com/voice/menu?note=%E4%B8%AD%E6%96%87&x=%27"
    )
    no_raw = {"PATH_INFO": "/voice/中".encode().decode("latin-1"), "QUERY_STRING": "a=%E4%B8%AD"}
    assert raw_target(no_raw) == "/voice/%E4%B8%AD?a=%E4%B8%AD"
    absolute = {"RAW_URI": "http://10.0.0.1:8000/voice/status?a=1"}
    assert raw_target(absolute) == "/voice/status?a=1"


def _form(sid: str = "CA" + "1" * 32) -> dict[str, str]:
    return {
        "CallSid": sid,
        "From": "+886912000001",
        "To": "+886227000000",
        "CallStatus": "ringing",
        "Direction": "inbound",
        "AccountSid": "AC" + "0" * 32,
    }


def test_escaped_chinese_in_the_query_validates(client, demo) -> None:  # type: ignore[no-untyped-def]
    path = "/voice/menu?n=1&note=%E5%A0%B1%E4%BF%AE"
    url = demo.public_base_url + path
    form = _form()
    response = client.post(
        path, data=form, headers={"X-Twilio-Signature": sign(demo.webhook_auth_token, url, form)}
    )
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/xml"
    decoded = demo.public_base_url + "/voice/menu?n=1&note=報修"
    bad = client.post(
        path,
        data=form,
        headers={"X-Twilio-Signature": sign(demo.webhook_auth_token, decoded, form)},
    )
    assert bad.status_code == 403


ROUTES = [
    "/voice/incoming",
    "/voice/status",
    "/voice/language",
    "/voice/language-menu",
    "/voice/menu",
    "/voice/menu/choice",
    "/voice/describe/done",
    "/voice/record",
    "/voice/record/none",
    "/voice/recorded?topic=repair",
    "/voice/recording",
    "/voice/emergency/dialed?i=0",
    "/voice/operator",
    "/voice/queue/wait",
    "/voice/queue/hold",
    "/voice/queue/left",
    "/voice/progress",
    "/voice/progress/lookup",
    "/voice/fallback",
    "/voice/outbound?attempt=1",
    "/voice/outbound/follow-up?attempt=1",
    "/voice/outbound/survey?attempt=1",
]


def test_every_route_refuses_missing_or_wrong_signatures(client, demo, sessions) -> None:  # type: ignore[no-untyped-def]
    form = {
        **_form(),
        "Digits": "1",
        "CallStatus": "completed",
        "SequenceNumber": "3",
        "RecordingSid": "RE" + "2" * 32,
        "SpeechResult": "電梯壞了",
    }
    rules = {
        r.rule for r in client.application.url_map.iter_rules() if r.endpoint.startswith("voice.")
    }
    assert rules == {r.split("?")[0] for r in ROUTES}, "a voice route is missing from this test"
    for path in ROUTES:
        assert client.post(path, data=form).status_code == 403, path
        wrong = sign("not-the-token", demo.public_base_url + path, form)
        assert (
            client.post(path, data=form, headers={"X-Twilio-Signature": wrong}).status_code == 403
        )
        other_host = sign(demo.webhook_auth_token, "https://evil.example.com" + path, form)
        assert (
            client.post(path, data=form, headers={"X-Twilio-Signature": other_host}).status_code
            == 403
        )
        tampered = sign(demo.webhook_auth_token, demo.public_base_url + path, form)
        assert (
            client.post(
                path, data={**form, "Digits": "9"}, headers={"X-Twilio-Signature": tampered}
            ).status_code
            == 403
        )
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Call)) == 0
        assert session.scalar(select(func.count()).select_from(Ticket)) == 0
        assert session.scalar(select(func.count()).select_from(CallStatusEvent)) == 0

"""Bad input gets valid TwiML or a 4xx, never a 500, and loses nothing already filed."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from intake.models import Call, CallStatusEvent, Ticket
from tests.voice.twiml_validator import validate
from voice.signature import sign

SID = "CA" + "7" * 32


def post(client: Any, demo: Any, path: str, form: dict[str, str]) -> Any:
    url = demo.public_base_url + path
    return client.post(
        path, data=form, headers={"X-Twilio-Signature": sign(demo.webhook_auth_token, url, form)}
    )


def base(**extra: str) -> dict[str, str]:
    return {
        "CallSid": SID,
        "From": "+886912000001",
        "To": "+886227000000",
        "CallStatus": "in-progress",
        "Direction": "inbound",
        **extra,
    }


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/voice/language", {"Digits": "abc"}),
        ("/voice/language", {"Digits": "99999999999999999999"}),
        ("/voice/menu/choice", {"Digits": "*#"}),
        ("/voice/menu/choice", {}),
        ("/voice/menu?n=zz", {}),
        ("/voice/progress/lookup", {"Digits": "12ab"}),
        ("/voice/progress/lookup", {"Digits": "9" * 40}),
        ("/voice/emergency/dialed?i=-3", {"DialCallStatus": "no-answer"}),
        ("/voice/emergency/dialed?i=99", {}),
        ("/voice/queue/hold", {"Digits": "x"}),
        ("/voice/queue/wait", {"QueuePosition": "many"}),
        ("/voice/queue/left", {"QueueResult": "system-error"}),
        ("/voice/recorded?topic=nonsense", {"RecordingSid": ""}),
        ("/voice/record?topic=%3Cscript%3E", {}),
        ("/voice/outbound?attempt=abc", {}),
        ("/voice/outbound?attempt=424242", {"AnsweredBy": "human"}),
    ],
)
def test_odd_input_gets_valid_twiml(client, demo, path, extra) -> None:  # type: ignore[no-untyped-def]
    response = post(client, demo, path, base(**extra))
    assert response.status_code == 200, response.data
    validate(response.data, response.content_type)


def test_missing_parameters_get_400(client, demo) -> None:  # type: ignore[no-untyped-def]
    for path in (
        "/voice/incoming",
        "/voice/menu/choice",
        "/voice/recorded",
        "/voice/outbound?attempt=1",
    ):
        assert post(client, demo, path, {"From": "+886912000001"}).status_code == 400
    assert post(client, demo, "/voice/status", {"CallSid": SID}).status_code == 400
    assert (
        post(client, demo, "/voice/outbound/survey?attempt=31337", base(Digits="5")).status_code
        == 404
    )
    assert client.get("/voice/incoming").status_code in (403, 405)


def test_unknown_call_in_the_status_callback(client, demo, sessions) -> None:  # type: ignore[no-untyped-def]
    form = {"CallSid": "CA" + "e" * 32, "CallStatus": "completed", "SequenceNumber": "2"}
    for _ in range(2):
        assert post(client, demo, "/voice/status", form).status_code == 200
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(CallStatusEvent)) == 1
        assert session.scalar(select(func.count()).select_from(Call)) == 0


def test_late_ringing_never_overwrites_completed(client, demo, sessions) -> None:  # type: ignore[no-untyped-def]
    assert post(client, demo, "/voice/incoming", base(CallStatus="ringing")).status_code == 200
    for status, seq in (("completed", "2"), ("in-progress", "1"), ("ringing", "0")):
        assert (
            post(
                client,
                demo,
                "/voice/status",
                {"CallSid": SID, "CallStatus": status, "SequenceNumber": seq},
            ).status_code
            == 200
        )
    with sessions() as session:
        call = session.scalar(select(Call).where(Call.call_sid == SID))
        assert call.status == "completed" and call.status_sequence == 2


def test_huge_speech_result_is_filed_truncated(client, demo, sessions) -> None:  # type: ignore[no-untyped-def]
    post(client, demo, "/voice/incoming", base())
    speech = "廚房漏水" * 250_000
    response = post(client, demo, "/voice/menu/choice", base(SpeechResult=speech))
    assert response.status_code == 200
    validate(response.data, response.content_type)
    with sessions() as session:
        ticket = session.scalar(select(Ticket))
        assert (
            ticket is not None
            and ticket.description.startswith("廚房漏水")
            and len(ticket.description) <= 4000
        )


def test_concurrent_retries_of_one_call_file_one_ticket(app, demo, sessions) -> None:  # type: ignore[no-untyped-def]
    """Twilio retries arriving at once (several web threads): one call row, one ticket."""
    from concurrent.futures import ThreadPoolExecutor

    speech = base(SpeechResult="地下停車場的燈全部不亮")

    def deliver(path: str, form: dict[str, str]) -> int:
        return post(app.test_client(), demo, path, form).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert set(pool.map(lambda _: deliver("/voice/incoming", base()), range(6))) == {200}
        codes = pool.map(lambda _: deliver("/voice/describe/done?topic=repair", speech), range(6))
        assert set(codes) == {200}
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Call)) == 1
        assert session.scalar(select(func.count()).select_from(Ticket)) == 1

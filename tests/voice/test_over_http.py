"""`hotline call` against a real HTTP server, and recordings fetched by a real RQ worker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from werkzeug.serving import make_server

from intake.cli import main
from intake.models import Attachment, Call, Outbox, Ticket
from tests.voice.test_outbound import place
from voice.signature import sign


@pytest.fixture
def server(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()
    thread.join(timeout=10)


def test_hotline_call_over_http_files_a_ticket(server, sessions) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(
        main,
        [
            "call",
            "--url",
            server,
            "--from",
            "+886955000222",
            "--no-interactive",
            "--press",
            "3",
            "--press",
            "1",
            "--say",
            "The kitchen tap is leaking",
            "--say",
            "extra details",
            "--duplicate-status",
            "--out-of-order",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "[en-US] Your repair request has been received. Your reference is" in result.output
    assert "[cmn-TW] 您好，這裡是康和物業客服中心。" in result.output
    with sessions() as session:
        ticket = session.scalar(select(Ticket))
        assert (
            ticket is not None and ticket.language == "en" and "kitchen tap" in ticket.description
        )
        assert session.scalar(select(Call.status)) == "completed"


def test_hotline_call_answers_the_oldest_queued_local_call(server, sessions, demo) -> None:  # type: ignore[no-untyped-def]
    first = place(sessions, demo, "survey")
    second = place(sessions, demo, "follow_up", phone="+886912000002")
    runner = CliRunner()
    result = runner.invoke(
        main, ["call", "--url", server, "--answer", "--no-interactive", "--press", "5"]
    )
    assert result.exit_code == 0, result.output
    assert first["sid"] in result.output
    result = runner.invoke(
        main, ["call", "--url", server, "--answer", second["sid"], "--machine", "--no-interactive"]
    )
    assert result.exit_code == 0, result.output
    with sessions() as session:
        assert session.get(Ticket, first["ticket_id"]).satisfaction == 5
        statuses = dict(session.execute(select(Call.call_sid, Call.status)).all())
        assert statuses[first["sid"]] == statuses[second["sid"]] == "completed"
        ended = session.scalars(select(Outbox).where(Outbox.job == "callback_call_ended")).all()
        assert sorted(r.args["answered_by"] for r in ended) == ["human", "machine_end_beep"]
    nothing = runner.invoke(main, ["call", "--url", server, "--answer", "--no-interactive"])
    assert nothing.exit_code != 0 and "no queued local outbound call" in nothing.output


class _Recordings(BaseHTTPRequestHandler):
    audio = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 64
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        self.send_response(200)
        self.send_header("Content-Type", "audio/x-wav")
        self.send_header("Content-Length", str(len(self.audio)))
        self.end_headers()
        self.wfile.write(self.audio)

    def log_message(self, *args: Any) -> None:
        return


def test_recording_is_fetched_by_the_worker_not_the_request(
    monkeypatch, env, demo, redis_url, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from intake.config import get_settings
    from web.app import create_app
    from worker.runner import drain

    _Recordings.seen.clear()
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "1" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "real-account-token")
    get_settings.cache_clear()
    settings = get_settings()
    media = ThreadingHTTPServer(("127.0.0.1", 0), _Recordings)
    threading.Thread(target=media.serve_forever, daemon=True).start()
    try:
        client = create_app({"TESTING": True}, settings=settings).test_client()
        sid, rec = "CA" + "5" * 32, "RE" + "5" * 32
        base = {
            "CallSid": sid,
            "From": "+886912000001",
            "To": "+886227000000",
            "CallStatus": "in-progress",
        }
        for path, form in (
            ("/voice/incoming", base),
            ("/voice/menu/choice", {**base, "Digits": "1"}),
            ("/voice/describe/done?topic=repair", {**base, "SpeechResult": "陽台燈不亮"}),
            (
                "/voice/recording",
                {
                    **base,
                    "RecordingSid": rec,
                    "RecordingStatus": "completed",
                    "RecordingUrl": f"http://127.0.0.1:{media.server_port}/Recordings/{rec}",
                },
            ),
        ):
            url = settings.public_base_url + path
            response = client.post(
                path,
                data=form,
                headers={"X-Twilio-Signature": sign("real-account-token", url, form)},
            )
            assert response.status_code == 200, (path, response.data)
        assert _Recordings.seen == [], "no network inside a webhook request"
        drain()
        from intake.db import session_factory

        with session_factory(settings.database_url)() as session:
            attachment = session.scalar(select(Attachment).where(Attachment.external_id == rec))
            assert attachment is not None and attachment.size == len(_Recordings.audio)
            stored = (
                Path(settings.data_dir) / "attachments" / attachment.sha256[:2] / attachment.sha256
            )
            assert stored.read_bytes() == _Recordings.audio
        assert len(_Recordings.seen) == 1 and _Recordings.seen[0].startswith("Basic ")
    finally:
        media.shutdown()

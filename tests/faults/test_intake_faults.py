"""A bad night for every intake at once, with real processes on PostgreSQL and Redis.

Running: `hotline web` (gunicorn), the SMTP listener, the IMAP poller against Dovecot, two
`hotline worker`s and a Redis of our own. While mail arrives by SMTP and in the mailbox and
residents call (signed webhooks over HTTP, duplicate status callbacks, racing ones posted at
once), the run SIGKILLs a worker, the poller and Dovecot's master process, makes PostgreSQL refuse
connections for a round (its call goes to the web process's voice spool), and kills Redis
without a data file. Senders behave as real ones do: an
MTA retries a 4xx, Twilio does not retry a voice webhook.

At the end it counts: every email exactly one ticket, every call exactly one ticket with its
recording (the outage's call a voicemail with a callback), every acknowledgement once in the outbox and delivered to the SMTP
sink (a second delivery only for a message whose send was taken over after a killed worker's
lease — at-least-once, as documented), nothing stuck in `sending`, nothing failed for good.
"""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import ExitStack
from email import message_from_bytes
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from intake.clock import utcnow
from tests.mail.dovecot import Dovecot
from tests.mail.faults import postgres_down
from tests.processes import free_port, wait_for
from tests.worker.test_reliability import RedisProcess, kill, spawn_worker
from voice import spool
from voice.signature import sign
from voice.simulator import CallSimulator, HttpTransport, Step, press
from worker.replies import ACK_TEMPLATE

ROUNDS = 7
TOKEN = "fault-run-webhook-token"
HOTLINE_NUMBER = "+886227000000"
# Mandarin, repair, what is wrong, then a recorded addition (or, in an outage, the voicemail).
STEPS = [press("1"), press("1"), Step("say", "water is coming through the ceiling"), press("#")]


def _mail(kind: str, i: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Resident {kind}{i} <{kind}{i}@example.com>"
    msg["To"] = "complaints@hotline.localhost"
    msg["Subject"] = f"Leak in flat {kind}{i}"
    msg["Message-ID"] = f"<night-{kind}-{i}@example.com>"
    msg.set_content(f"Water is leaking from the ceiling of flat {kind}{i}. Please send someone.")
    return msg


def _scalar(sessions: Any, sql: str) -> Any:
    with sessions() as s:
        return s.scalar(text(sql))


def _spawn(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "intake.cli", *args],
        env={**os.environ, **env},
        start_new_session=True,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _send_like_an_mta(port: int, msg: EmailMessage, deadline: float = 90) -> None:
    """Deliver, retrying 4xx answers and refused connections as a sending MTA does."""
    until = time.monotonic() + deadline
    while True:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                client.send_message(msg)
            return
        except (smtplib.SMTPResponseException, OSError) as exc:
            code = getattr(exc, "smtp_code", 421)
            if code >= 500 or time.monotonic() > until:
                raise
            time.sleep(1)


def _deliver(port: int, msg: EmailMessage, refused: list[BaseException]) -> None:
    try:
        _send_like_an_mta(port, msg)
    except BaseException as exc:
        refused.append(exc)


def _append(dovecot: Dovecot, raw: bytes, deadline: float = 60) -> None:
    until = time.monotonic() + deadline
    while True:
        try:
            dovecot.append(raw)
            return
        except Exception:
            if time.monotonic() > until:
                raise
            time.sleep(0.5)


def _race_status(base: str, call_sid: str, caller: str) -> None:
    """Four copies of one status callback posted at the same moment (Twilio's retries racing)."""
    import urllib.parse
    import urllib.request

    params = {
        "AccountSid": "AC" + "0" * 32,
        "CallSid": call_sid,
        "CallStatus": "completed",
        "CallDuration": "30",
        "SequenceNumber": "2",
        "From": caller,
        "To": HOTLINE_NUMBER,
        "Direction": "inbound",
    }
    url = f"{base}/voice/status"
    signature = sign(TOKEN, url, params)
    start = threading.Barrier(4)

    def post() -> None:
        start.wait()
        request = urllib.request.Request(
            url,
            data=urllib.parse.urlencode(params).encode(),
            headers={"X-Twilio-Signature": signature},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_mail_and_calls_survive_a_night_of_faults(
    demo, sessions, env, db_url, tmp_path: Path, smtp_sink, dovecot
):
    if not db_url.startswith("postgresql"):
        pytest.skip("the fault run is on PostgreSQL")
    redis = RedisProcess(tmp_path)
    redis.start()
    web_port, smtpd_port = free_port(), free_port()
    base = f"http://127.0.0.1:{web_port}"
    env = {
        **env,
        "REDIS_URL": redis.url,
        "SMTP_URL": smtp_sink.url,
        "SMTPD_PORT": str(smtpd_port),
        "IMAP_URL": dovecot.url,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_NUMBER": HOTLINE_NUMBER,
        "PUBLIC_BASE_URL": base,
    }
    outage = ExitStack()  # PostgreSQL refusing connections while it is open
    logs = tmp_path / "logs"
    logs.mkdir()
    web = _spawn(env, logs / "web.log", "web", "--port", str(web_port), "--workers", "2")
    listener = _spawn(env, logs / "smtpd.log", "smtpd")
    poller = _spawn(env, logs / "poller.log", "poll-imap")
    workers = [spawn_worker(env, logs / f"worker{n}.log") for n in range(2)]
    calls: list[str] = []
    refused: list[BaseException] = []
    callers = [f"+8869123457{n:02d}" for n in range(ROUNDS)]
    started = time.monotonic()
    try:
        wait_for(lambda: _listening(web_port) and _listening(smtpd_port), 60, "web and SMTP")
        for i in range(ROUNDS):
            if i == 1:
                kill(workers[0])  # mid-flow: routing, acknowledging or sending
                workers[0] = spawn_worker(env, logs / "worker0.log")
            if i == 2:
                kill(poller)  # mid-poll or idle in IDLE
            if i == 3:
                dovecot.process.kill()  # Dovecot's master, mid-session
                dovecot.process.wait(timeout=10)
                wait_for(lambda: not _listening(dovecot.port), 15, "Dovecot to be gone")
                poller = _spawn(env, logs / "poller.log", "poll-imap")
                dovecot.restart()
            if i == 4:
                outage.enter_context(postgres_down(db_url))
            if i == 5:
                redis.kill()  # without a data file: every queued job is lost
            if i == 6:
                redis.start()
            # The sending MTA keeps retrying in its own queue while the round goes on.
            mta = threading.Thread(target=_deliver, args=(smtpd_port, _mail("smtp", i), refused))
            mta.start()
            _append(dovecot, _mail("imap", i).as_bytes())
            simulator = CallSimulator(
                HttpTransport(base, base, timeout=30),
                TOKEN,
                base,
                steps=list(STEPS),
                duplicate_status=True,
            )
            result = simulator.call(callers[i], HOTLINE_NUMBER)
            assert not result.errors, result.errors
            assert all(x.status == 200 for x in result.exchanges), [
                (x.url, x.status) for x in result.exchanges if x.status != 200
            ]
            calls.append(result.call_sid)
            _race_status(base, result.call_sid, callers[i])
            if i == 4:
                time.sleep(2)
                outage.close()
            mta.join(timeout=120)
            assert not refused, refused

        def settled() -> bool:
            # Work booked for later (a voicemail's callback on a Saturday waits for Monday's
            # opening hours) is not stuck; work that is due and still queued is.
            now = utcnow().isoformat(sep=" ")
            busy = _scalar(
                sessions,
                "SELECT (SELECT count(*) FROM outbox WHERE status = 'enqueued'"
                f" OR (status = 'pending' AND available_at <= '{now}'))"
                " + (SELECT count(*) FROM outgoing_message WHERE status = 'sending')",
            )
            tickets = _scalar(sessions, "SELECT count(*) FROM ticket")
            acks = _scalar(
                sessions,
                f"SELECT count(*) FROM outgoing_message WHERE template = '{ACK_TEMPLATE}'"
                " AND status = 'sent'",
            )
            state.update(busy=busy, tickets=tickets, acks=acks)
            return busy == 0 and tickets == 3 * ROUNDS and acks == 2 * ROUNDS

        state: dict[str, Any] = {}
        try:
            wait_for(settled, 200, "everything to settle", step=1)
        except AssertionError:
            print("NOT SETTLED", state)
            for sql in (
                "SELECT channel, count(*) FROM ticket GROUP BY channel",
                "SELECT job, status, count(*) FROM outbox GROUP BY job, status",
                "SELECT template, status, count(*) FROM outgoing_message GROUP BY template, status",
                "SELECT call_sid, status, ticket_id FROM call",
            ):
                print(sql, _rows(sessions, sql))
            raise
        recovered = time.monotonic() - started
    finally:
        outage.close()
        for proc in (*workers, listener, poller, web):
            kill(proc, signal.SIGTERM)
        redis.kill()
    print(f"settled {recovered:.0f} s after the first contact")

    email_tickets = _scalar(
        sessions,
        "SELECT count(DISTINCT ticket_id) FROM interaction WHERE channel = 'email'"
        " AND direction = 'in'",
    )
    assert email_tickets == 2 * ROUNDS, "every email exactly one ticket"
    assert (
        _scalar(
            sessions,
            "SELECT count(*) FROM interaction WHERE channel = 'email' AND direction = 'in'",
        )
        == 2 * ROUNDS
    )
    assert _scalar(sessions, "SELECT count(*) FROM ticket WHERE channel = 'voice'") == ROUNDS
    assert _scalar(sessions, "SELECT count(*) FROM attachment") == ROUNDS, "one recording each"
    recorded_tickets = _scalar(
        sessions,
        "SELECT count(DISTINCT i.ticket_id) FROM attachment a"
        " JOIN interaction i ON i.id = a.interaction_id",
    )
    assert recorded_tickets == ROUNDS, "every call's recording on its own ticket"
    assert not spool.spooled(Path(env["HOTLINE_DATA_DIR"])), "the voice spool is filed"
    assert _scalar(sessions, "SELECT count(*) FROM callback WHERE purpose = 'voicemail'") == 1, (
        "the call during the database outage left a voicemail and is owed a callback"
    )
    assert _scalar(sessions, "SELECT count(*) FROM outbox WHERE status = 'failed'") == 0
    unfinished = _rows(
        sessions,
        "SELECT c.call_sid, c.status, c.ivr_path::text, c.ticket_id, string_agg(e.status || ':' ||"
        " e.sequence_number, ',') FROM call c LEFT JOIN call_status_event e"
        " ON e.call_sid = c.call_sid WHERE c.direction = 'inbound' AND c.status <> 'completed'"
        " GROUP BY c.call_sid, c.status, c.ivr_path::text, c.ticket_id",
    )
    assert not unfinished, unfinished

    acks = _scalar(
        sessions,
        f"SELECT count(*) FROM outgoing_message WHERE template = '{ACK_TEMPLATE}'",
    )
    assert acks == 2 * ROUNDS, "every acknowledgement once in the outbox"
    ack_ids = dict(
        _rows(
            sessions,
            f"SELECT message_id, \"to\" FROM outgoing_message WHERE template = '{ACK_TEMPLATE}'",
        )
    )
    delivered = Counter(
        message_from_bytes(d.raw)["Message-ID"].strip("<>") for d in smtp_sink.delivered
    )
    missing = {to for mid, to in ack_ids.items() if not delivered[mid.strip("<>")]}
    assert not missing, f"acknowledgements never delivered to {missing}"
    taken_over = set(
        _rows(
            sessions,
            "SELECT o.message_id FROM outgoing_message o JOIN outbox b"
            " ON b.dedupe_key LIKE 'lease:' || o.id || ':%'",
        )
    )
    twice = {mid for mid in ack_ids if delivered[mid.strip("<>")] > 1}
    assert twice <= taken_over, "a second delivery only after a killed worker's lease lapsed"
    print(f"acknowledgements delivered twice after a lease lapsed: {len(twice)}")


def _rows(sessions: Any, sql: str) -> list[Any]:
    with sessions() as s:
        rows = s.execute(text(sql)).all()
    return [row[0] if len(row) == 1 else tuple(row) for row in rows]

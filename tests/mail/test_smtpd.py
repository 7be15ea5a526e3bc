"""The SMTP listener under test is a real aiosmtpd server; smtplib plays the sending MTA."""

from __future__ import annotations

import smtplib
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from intake.models import Outbox, RawMessage, Ticket
from mail.smtpd import Listener, start_listener
from tests.mail.faults import postgres_down
from tests.mail.mailmaker import resident_mail
from tests.processes import free_port
from worker.runner import drain

ADDRESS = "complaints@hotline.localhost"


def count(sessions, model, *where) -> int:  # type: ignore[no-untyped-def]
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


@pytest.fixture
def listener(demo, sessions) -> Iterator[Listener]:  # type: ignore[no-untyped-def]
    server = start_listener(sessions, demo, host="127.0.0.1", port=free_port())
    yield server
    server.stop()


def smtp(listener: Listener) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", listener.port, timeout=30)


def test_it_stores_first_answers_250_and_a_worker_makes_the_ticket(listener, sessions, redis_url):
    raw = resident_mail(subject="走廊燈不亮", body="三樓走廊的燈壞了")
    with smtp(listener) as client:
        client.ehlo("mx.example.com")
        client.mail("chan.taiman@example.com")
        assert client.rcpt(ADDRESS)[0] == 250
        code, reply = client.data(raw)
    assert code == 250 and b"Queued as" in reply
    with sessions() as session:
        stored = session.scalars(select(RawMessage)).one()
        assert (stored.raw, stored.status, stored.envelope_to) == (raw, "stored", [ADDRESS])
        assert session.scalar(select(Outbox.job).where(Outbox.status == "pending")) == (
            "process_raw_message"
        )
    assert count(sessions, Ticket) == 0, "acknowledge fast, parse later"
    drain()
    with sessions() as session:
        ticket = session.scalars(select(Ticket)).one()
        assert ticket.subject == "走廊燈不亮"
        assert session.scalars(select(RawMessage.status)).one() == "processed"


def test_unknown_recipients_are_refused_at_rcpt_and_aliases_accepted(
    monkeypatch, env, sessions, tmp_path
):
    from intake.config import DEFAULT_CONFIG_PATH, get_settings

    config = DEFAULT_CONFIG_PATH.read_text(encoding="utf-8").replace(
        "aliases: []", "aliases: [報修@hotline.localhost, Repairs@Hotline.Localhost]"
    )
    (tmp_path / "config.yaml").write_text(config, encoding="utf-8")
    monkeypatch.setenv("HOTLINE_CONFIG", str(tmp_path / "config.yaml"))
    get_settings.cache_clear()
    server = start_listener(sessions, get_settings(), host="127.0.0.1", port=free_port())
    try:
        with smtp(server) as client:
            client.ehlo("mx.example.com")
            client.mail("chan.taiman@example.com")
            code, text = client.rcpt("someone.else@hotline.localhost")
            assert code == 550 and text.startswith(b"5.1.1")
            assert client.rcpt("repairs@hotline.localhost")[0] == 250
            assert client.rcpt(ADDRESS.upper())[0] == 250
            assert client.data(resident_mail())[0] == 250
    finally:
        server.stop()
    with sessions() as session:
        assert session.scalars(select(RawMessage.envelope_to)).one() == [
            "repairs@hotline.localhost",
            ADDRESS.upper(),
        ]


def test_too_large_mail_is_refused_with_552(listener, sessions):
    listener.handler.max_bytes = 10_000
    listener.controller.smtpd.data_size_limit = 10_000
    with smtp(listener) as client:
        client.ehlo("mx.example.com")
        client.mail("chan.taiman@example.com")
        client.rcpt(ADDRESS)
        code, _ = client.data(resident_mail(body="很長" * 20_000))
    assert code == 552
    assert count(sessions, RawMessage) == 0


def test_a_database_failure_answers_451_so_the_sender_retries(listener, sessions, demo):
    if not demo.database_url.startswith("postgresql"):
        pytest.skip("the outage is played by PostgreSQL refusing connections")
    raw = resident_mail(subject="停水通知沒收到")
    with postgres_down(demo.database_url), smtp(listener) as client:
        client.ehlo("mx.example.com")
        client.mail("chan.taiman@example.com")
        client.rcpt(ADDRESS)
        code, text = client.data(raw)
    assert (code, text[:5]) == (451, b"4.3.0")
    with smtp(listener) as client:
        client.ehlo("mx.example.com")
        client.mail("chan.taiman@example.com")
        client.rcpt(ADDRESS)
        assert client.data(raw)[0] == 250
    assert count(sessions, RawMessage) == 1


def test_a_handler_crash_answers_451_not_a_permanent_500(listener, sessions, monkeypatch):
    def broken(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(listener.handler, "handle_RCPT", broken)
    with smtp(listener) as client:
        client.ehlo("mx.example.com")
        client.mail("chan.taiman@example.com")
        code, text = client.rcpt(ADDRESS)
    assert code == 451 and text.startswith(b"4.3.0")


def test_the_same_mail_delivered_twice_or_by_imap_too_is_one_ticket(
    listener, sessions, redis_url, dovecot, demo
):
    from redis import Redis

    from mail.imap import ImapAccount, MailboxPoller

    raw = resident_mail(subject="電梯異音", message_id="<same-message@example.com>")
    for _ in range(2):
        with smtp(listener) as client:
            client.sendmail("chan.taiman@example.com", [ADDRESS], raw)
    relayed = b"Received: from mx.example.com by imap.example.com\r\n" + raw
    dovecot.append(relayed)
    MailboxPoller(
        ImapAccount.from_url(dovecot.url), demo, sessions, redis=Redis.from_url(redis_url)
    ).run_once()
    drain()
    assert count(sessions, RawMessage) == 2, "identical bytes are kept once"
    assert count(sessions, Ticket) == 1
    assert count(sessions, RawMessage, RawMessage.status == "processed") == 2


def test_redis_down_loses_nothing_the_work_waits_in_the_outbox(
    listener, sessions, monkeypatch, redis_url
):
    from redis.exceptions import ConnectionError as RedisConnectionError

    from intake.config import get_settings

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    with smtp(listener) as client:
        client.sendmail("chan.taiman@example.com", [ADDRESS], resident_mail(subject="Redis 停了"))
    with pytest.raises(RedisConnectionError):
        drain()
    assert count(sessions, Outbox, Outbox.status == "pending") == 1
    monkeypatch.setenv("REDIS_URL", redis_url)
    get_settings.cache_clear()
    deadline = time.monotonic() + 60
    while count(sessions, Ticket) == 0 and time.monotonic() < deadline:
        drain()  # the relay tries again a few seconds after Redis failed it
        time.sleep(0.2)
    assert count(sessions, Ticket) == 1


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_it_offers_starttls_when_a_certificate_is_configured(
    demo, sessions, certificate, monkeypatch
):
    cert, key = certificate
    monkeypatch.setenv("SMTPD_TLS_CERT", str(cert))
    monkeypatch.setenv("SMTPD_TLS_KEY", str(key))
    server = start_listener(sessions, demo, host="127.0.0.1", port=free_port())
    try:
        with smtp(server) as client:
            client.ehlo("mx.example.com")
            assert client.has_extn("starttls")
            context = ssl.create_default_context(cafile=str(cert))
            context.check_hostname = False
            client.starttls(context=context)
            client.ehlo("mx.example.com")
            assert client.sendmail("chan.taiman@example.com", [ADDRESS], resident_mail()) == {}
    finally:
        server.stop()
    assert count(sessions, RawMessage) == 1


@pytest.mark.parametrize("sender", [b"a\x00b@example.com", b"caf\xe9@example.com"])
def test_a_nul_or_bytes_that_are_not_utf8_in_mail_from_are_stored_not_refused(
    listener, sessions, sender, caplog
):
    """A sending server cannot fix its envelope: refusing with 451 would only end in a bounce."""
    import logging
    import socket

    caplog.set_level(logging.INFO)

    message = resident_mail(subject="信封有怪字", body="大堂燈壞了")
    with socket.create_connection(("127.0.0.1", listener.port), timeout=30) as sock:
        reader = sock.makefile("rb")

        def say(line: bytes) -> bytes:
            sock.sendall(line + b"\r\n")
            answer = reader.readline()
            while answer[3:4] == b"-":
                answer = reader.readline()
            return answer

        assert reader.readline().startswith(b"220")
        assert say(b"EHLO sender.example").startswith(b"250")
        assert say(b"MAIL FROM:<" + sender + b">").startswith(b"250")
        assert say(b"RCPT TO:<complaints@hotline.localhost>").startswith(b"250")
        assert say(b"DATA").startswith(b"354")
        answer = say(message.replace(b"\n.", b"\n..") + b"\r\n.")
        assert answer.startswith(b"250"), answer
        say(b"QUIT")
    with sessions() as session:
        [row] = session.scalars(select(RawMessage))
        assert "\ufffd" in (row.envelope_from or "") and "\x00" not in (row.envelope_from or "")
    # The listener's own lines and aiosmtpd's must be writable to a UTF-8 log stream.
    assert "sender:" in caplog.text
    caplog.text.encode("utf-8")

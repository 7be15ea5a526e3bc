"""The IMAP poller against a real Dovecot: cursor, PEEK, move, crashes, UIDVALIDITY, drops, locks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select

from intake.models import (
    ChannelHealth,
    ImapCursor,
    Interaction,
    Outbox,
    RawMessage,
    Ticket,
    utcnow,
)
from mail.imap import ImapAccount, MailboxLock, MailboxPoller
from mail.store import process_stored
from tests.mail.mailmaker import resident_mail


def count(sessions, model, *where) -> int:  # type: ignore[no-untyped-def]
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def wait_until(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


def make_poller(dovecot, settings, sessions, redis_url=None, url=None, **options):  # type: ignore[no-untyped-def]
    redis = Redis.from_url(redis_url) if redis_url else None
    return MailboxPoller(
        ImapAccount.from_url(url or dovecot.url), settings, sessions, redis=redis, **options
    )


def health(sessions, poller) -> ChannelHealth | None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        return session.scalar(select(ChannelHealth).where(ChannelHealth.name == poller.health_name))


def test_it_reads_the_imap_url():
    account = ImapAccount.from_url(
        "imaps://svc%40example.com:p%40ss@mail.example.com/%E5%B7%A5%E5%96%AE?processed=Done"
    )
    assert (account.host, account.port, account.ssl) == ("mail.example.com", 993, True)
    assert (account.username, account.password) == ("svc@example.com", "p@ss")
    assert (account.folder, account.processed_folder, account.failed_folder) == (
        "工單",
        "Done",
        "Failed",
    )
    assert "p@ss" not in account.key
    plain = ImapAccount.from_url("imap://u:p@127.0.0.1:1143")
    assert (plain.port, plain.ssl, plain.folder) == (1143, False, "INBOX")


def test_new_mail_becomes_tickets_and_moves_to_processed_without_being_marked_seen(
    dovecot, demo, sessions, redis_url
):
    dovecot.append(
        resident_mail(subject="廚房漏水", body="我家廚房漏水，請派人維修。"),
        resident_mail(
            sender="Emily Carter <emily.carter@example.com>",
            subject="Lift broken",
            body="The lift in block A is stuck.",
        ),
    )
    dovecot.append(resident_mail(subject="門禁卡失效", body="門禁卡不能用"), flags=(b"\\Seen",))
    poller = make_poller(dovecot, demo, sessions, redis_url)

    assert poller.run_once() == 3

    assert count(sessions, Ticket) == 3
    assert count(sessions, RawMessage, RawMessage.status == "processed") == 3
    assert dovecot.count("INBOX") == 0
    processed = dovecot.messages("Processed")
    assert len(processed) == 3
    unseen = [m for m in processed.values() if b"\\Seen" not in m[b"FLAGS"]]
    assert len(unseen) == 2, "BODY.PEEK[] must leave \\Seen alone"
    with sessions() as session:
        cursor = session.scalars(select(ImapCursor)).one()
        assert cursor.uidvalidity == dovecot.uidvalidity()
        assert cursor.last_uid >= 3
        subjects = set(session.scalars(select(Ticket.subject)))
    assert subjects == {"廚房漏水", "Lift broken", "門禁卡失效"}
    assert health(sessions, poller).status == "ok"

    assert poller.run_once() == 0
    assert count(sessions, RawMessage) == 3
    assert count(sessions, Ticket) == 3


def test_a_crash_between_commit_and_move_neither_loses_nor_doubles_mail(
    dovecot, demo, sessions, redis_url
):
    dovecot.append(resident_mail(subject="水管爆裂"), resident_mail(subject="停車位被佔"))
    crashing = make_poller(dovecot, demo, sessions, redis_url)

    def crash(_uids: list[int]) -> None:
        raise KeyboardInterrupt("killed after commit, before move")

    crashing.after_commit = crash
    with pytest.raises(KeyboardInterrupt):
        crashing.run_once()
    assert dovecot.count("INBOX") == 2, "the messages are still in the inbox"
    assert count(sessions, RawMessage, RawMessage.status == "stored") == 2
    assert count(sessions, Ticket) == 0

    restarted = make_poller(dovecot, demo, sessions, redis_url)
    assert restarted.run_once() == 0, "nothing new to store"
    assert dovecot.count("INBOX") == 0
    assert dovecot.count("Processed") == 2
    assert count(sessions, RawMessage) == 2
    assert count(sessions, Ticket) == 2
    assert count(sessions, RawMessage, RawMessage.status == "processed") == 2


def test_a_uidvalidity_change_rescans_the_folder_without_duplicates(
    dovecot, demo, sessions, redis_url
):
    dovecot.append(resident_mail(subject="噪音投訴"), resident_mail(subject="垃圾未清"))
    first = make_poller(dovecot, demo, sessions, redis_url)
    first.after_commit = lambda _uids: (_ for _ in ()).throw(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        first.run_once()
    old = dovecot.uidvalidity()
    dovecot.set_uidvalidity(old + 1000)
    dovecot.append(resident_mail(subject="電燈不亮"))

    again = make_poller(dovecot, demo, sessions, redis_url)
    assert again.run_once() == 1, "only the new message is new"

    with sessions() as session:
        cursor = session.scalars(select(ImapCursor)).one()
        assert cursor.uidvalidity == old + 1000
    assert count(sessions, RawMessage) == 3
    assert count(sessions, Ticket) == 3
    assert count(sessions, Interaction, Interaction.direction == "in") == 3
    assert dovecot.count("INBOX") == 0


def test_mail_dragged_back_into_the_inbox_is_not_taken_twice(dovecot, demo, sessions, redis_url):
    raw = resident_mail(subject="外牆滲水")
    dovecot.append(raw)
    poller = make_poller(dovecot, demo, sessions, redis_url)
    assert poller.run_once() == 1
    dovecot.append(raw)  # a colleague moves it back: same bytes, new UID
    assert poller.run_once() == 0
    assert count(sessions, RawMessage) == 1
    assert count(sessions, Ticket) == 1
    assert dovecot.count("INBOX") == 0


def test_without_move_it_copies_then_expunges_by_uid(
    dovecot, demo, sessions, redis_url, monkeypatch
):
    dovecot.append(resident_mail(subject="冷氣漏水"), resident_mail(subject="信箱損壞"))
    real = IMAPClient.has_capability
    monkeypatch.setattr(
        IMAPClient,
        "has_capability",
        lambda self, cap: False if cap.upper() == "MOVE" else real(self, cap),
    )
    poller = make_poller(dovecot, demo, sessions, redis_url)
    assert poller.run_once() == 2
    assert dovecot.count("Processed") == 2
    assert dovecot.count("INBOX") == 0
    assert count(sessions, Ticket) == 2


def test_only_one_poller_works_a_mailbox_at_a_time(dovecot, demo, sessions, redis_url):
    dovecot.append(resident_mail(subject="樓梯燈壞"))
    other_machine = MailboxLock(Redis.from_url(redis_url), ImapAccount.from_url(dovecot.url).key)
    assert other_machine.acquire()
    poller = make_poller(dovecot, demo, sessions, redis_url)
    assert poller.run_once() == 0
    assert dovecot.count("INBOX") == 1, "the mailbox belongs to the other poller"
    assert health(sessions, poller).status == "standby"
    other_machine.release()
    assert poller.run_once() == 1
    assert dovecot.count("INBOX") == 0


def test_oversized_mail_is_quarantined_and_moved_to_failed(dovecot, demo, sessions, redis_url):
    dovecot.append(resident_mail(subject="附件太大", body="x" * 20000))
    poller = make_poller(dovecot, demo, sessions, redis_url)
    poller.max_bytes = 5000
    poller.run_once()
    with sessions() as session:
        row = session.scalars(select(RawMessage)).one()
    assert row.status == "quarantined"
    assert "too large" in (row.reason or "") and "Failed" in (row.reason or "")
    assert dovecot.count("Failed") == 1
    assert dovecot.count("INBOX") == 0
    assert row.size > 20000 > len(row.raw), "the header is kept; the message stays in Failed"
    outcome = process_stored(sessions, demo, row.id, replay=True)
    assert outcome.startswith("kept in quarantine")


def test_a_silent_mailbox_is_reported(dovecot, demo, sessions, redis_url):
    poller = make_poller(dovecot, demo, sessions, redis_url)
    with sessions() as session:
        session.add(
            RawMessage(
                source="imap",
                mailbox=poller.account.key,
                uidvalidity=1,
                uid=1,
                sha256="0" * 64,
                raw=b"",
                size=0,
                status="processed",
                received_at=utcnow() - timedelta(days=3),
            )
        )
        session.commit()
    poller.run_once()
    assert health(sessions, poller).status == "silent"


def test_a_failing_login_is_loud_and_never_switches_the_poller_off(
    dovecot, demo, sessions, redis_url
):
    bad_url = dovecot.url.replace(":secret@", ":wrong@")
    poller = make_poller(dovecot, demo, sessions, redis_url, url=bad_url, login_backoff=(0.2, 0.5))
    with pytest.raises(LoginError):
        poller.run_once()
    row = health(sessions, poller)
    assert row.status == "login_failing" and row.consecutive_failures == 1
    stop = threading.Event()
    thread = threading.Thread(target=poller.run_forever, args=(stop,), daemon=True)
    thread.start()
    wait_until(lambda: health(sessions, poller).consecutive_failures >= 2)
    assert thread.is_alive(), "it keeps trying"
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()


def test_an_oauth2_mailbox_signs_in_with_a_token_file_read_at_every_login(
    dovecot, demo, sessions, redis_url, tmp_path
):
    """Microsoft 365 and Gmail take only OAuth2: XOAUTH2 against a real Dovecot that asks a token
    introspection endpoint. The token file is re-read at each login, so a refreshed token is used
    and an expired one fails loudly."""
    assert dovecot.tokens is not None
    token_file = tmp_path / "token"
    token_file.write_text("ya29.first-token\n")
    dovecot.tokens.active.add("ya29.first-token")
    url = f"imap://alice@127.0.0.1:{dovecot.port}/INBOX?auth=xoauth2&token_file={token_file}"
    dovecot.append(resident_mail(subject="水錶漏水", body="水錶一直在漏"))
    poller = make_poller(dovecot, demo, sessions, redis_url, url=url)
    assert poller.run_once() == 1
    assert count(sessions, Ticket) == 1 and dovecot.count("INBOX") == 0

    dovecot.tokens.active = {"ya29.refreshed"}  # the first token expired
    token_file.write_text("ya29.refreshed")
    dovecot.kick()
    dovecot.append(resident_mail(subject="大堂燈壞了", body="大堂的燈不亮"))
    assert make_poller(dovecot, demo, sessions, redis_url, url=url).run_once() == 1
    assert dovecot.tokens.asked[-1] == "ya29.refreshed"

    token_file.write_text("ya29.first-token")
    expired = make_poller(dovecot, demo, sessions, redis_url, url=url)
    with pytest.raises(LoginError):
        expired.run_once()
    assert health(sessions, expired).status == "login_failing"
    assert count(sessions, Ticket) == 2


def test_a_dropped_connection_is_rebuilt_and_idle_picks_up_new_mail(
    dovecot, demo, sessions, redis_url
):
    poller = make_poller(
        dovecot,
        demo,
        sessions,
        redis_url,
        idle_renew_seconds=5,
        full_sync_seconds=30,
        backoff=(0.2, 1.0),
    )
    stop = threading.Event()
    thread = threading.Thread(target=poller.run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        dovecot.append(resident_mail(subject="第一封"))
        wait_until(lambda: count(sessions, Ticket) == 1)
        dovecot.kick()
        dovecot.append(resident_mail(subject="第二封"))
        wait_until(lambda: count(sessions, Ticket) == 2)
        assert dovecot.count("INBOX") == 0
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()


def test_an_imap_server_failure_mid_pass_loses_nothing(dovecot, demo, sessions, redis_url):
    dovecot.append(
        resident_mail(subject="一"), resident_mail(subject="二"), resident_mail(subject="三")
    )
    poller = make_poller(dovecot, demo, sessions, redis_url, batch_size=1)
    poller.after_commit = lambda _uids: dovecot.kick()  # the server drops us after the first commit
    with pytest.raises(Exception):  # noqa: B017 - whatever the socket says
        poller.run_once()
    assert health(sessions, poller).status == "failing"
    poller.after_commit = None
    poller.run_once()
    assert count(sessions, RawMessage) == 3
    assert count(sessions, Ticket) == 3
    assert dovecot.count("INBOX") == 0


def test_redis_down_means_waiting_not_losing(dovecot, demo, sessions, redis_url):
    dovecot.append(resident_mail(subject="Redis 掛了"))
    unreachable = make_poller(dovecot, demo, sessions, "redis://127.0.0.1:1/0")
    with pytest.raises(RedisError):
        unreachable.run_once()
    assert dovecot.count("INBOX") == 1
    assert health(sessions, unreachable).status == "failing"
    assert make_poller(dovecot, demo, sessions, redis_url).run_once() == 1
    assert count(sessions, Ticket) == 1


def test_the_poll_imap_command_does_one_pass_and_reports_health(
    dovecot, demo, sessions, redis_url, monkeypatch
):
    import json

    from click.testing import CliRunner

    from intake.cli import main
    from intake.config import get_settings

    dovecot.append(resident_mail(subject="命令列"))
    monkeypatch.setenv("IMAP_URL", dovecot.url)
    get_settings.cache_clear()
    result = CliRunner().invoke(main, ["poll-imap", "--once"])
    assert result.exit_code == 0, result.output
    assert "1 new" in result.output
    assert count(sessions, Ticket) == 1
    result = CliRunner().invoke(main, ["mail", "health", "--format", "json"])
    [row, smtp] = json.loads(result.output)
    assert row["name"].startswith("imap:alice@127.0.0.1") and row["status"] == "ok"
    assert smtp["name"] == "smtp intake", "the SMTP listener is listed too"
    monkeypatch.setenv("IMAP_URL", dovecot.url.replace(":secret@", ":wrong@"))
    get_settings.cache_clear()
    result = CliRunner().invoke(main, ["poll-imap", "--once"])
    assert result.exit_code == 1 and "login failed" in result.output


def test_the_same_bytes_twice_in_one_pass_are_stored_once(dovecot, demo, sessions, redis_url):
    raw = resident_mail(subject="重複寄送")
    dovecot.append(raw, raw)
    poller = make_poller(dovecot, demo, sessions, redis_url)
    assert poller.run_once() == 1
    assert count(sessions, RawMessage) == 1
    assert count(sessions, Ticket) == 1
    assert dovecot.count("INBOX") == 0
    assert dovecot.count("Processed") == 2


def test_mail_processed_inline_closes_its_safety_net_job(dovecot, demo, sessions, redis_url):
    dovecot.append(resident_mail(subject="走廊燈不亮"), resident_mail(subject="信箱壞了"))
    assert make_poller(dovecot, demo, sessions, redis_url).run_once() == 2
    with sessions() as session:
        rows = session.execute(select(RawMessage.status, RawMessage.interaction_id)).all()
        jobs = session.scalars(
            select(Outbox.status).where(Outbox.job == "process_raw_message")
        ).all()
    assert [status for status, _ in rows] == ["processed", "processed"]
    assert all(interaction_id for _, interaction_id in rows)
    assert jobs == ["done", "done"]

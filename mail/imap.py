"""The IMAP poller (`hotline poll-imap`): one mailbox per IMAP_URL, never losing or doubling mail.

Per pass: select the folder, compare UIDVALIDITY with the cursor in the database (a change resets the
cursor and re-scans; stored bytes dedupe the re-scan), fetch `BODY.PEEK[]` of every UID above the
cursor (never `\\Seen`: staff read the shared mailbox), store the raw bytes (one INSERT per batch)
and advance the cursor in one transaction, and only then move the messages to the processed folder
(MOVE, else COPY + UID EXPUNGE). A crash between commit and move is repaired by the next pass, which
moves what is at or below the cursor. Each stored message is then processed inline, from the bytes
just committed rather than read back: the mailbox is already a durable queue, so the poller does not
need to hand off fast, and processing at the pace of fetching keeps it from pulling mail faster than
tickets are made; the outbox row written with the bytes is the safety net (a poller killed before
processing leaves the message to a worker a little later).

Between passes the poller waits in IDLE, renewed every few minutes, with a full pass at least every
`full_sync_seconds`; connections have socket timeouts and are rebuilt with backoff and jitter. One
poller per mailbox across machines holds a Redis lock that it renews; losing it stops the poller
until it can take it again. Login failures and silent mailboxes are logged and recorded in
ChannelHealth; the poller never gives up.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import IMAPClientError, LoginError
from redis import Redis
from redis.exceptions import LockError, RedisError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from intake.config import Settings
from intake.models import ImapCursor, RawMessage, utcnow
from mail.health import report
from mail.store import (
    StoredCopy,
    TransientFailure,
    insert_raw_messages,
    max_message_bytes,
    process_stored,
    raw_message_row,
)

log = logging.getLogger(__name__)

BATCH_SIZE = 20
SAFETY_NET_DELAY = timedelta(minutes=2)
LOCK_TTL_SECONDS = 60
IDLE_RENEW_SECONDS = 240
FULL_SYNC_SECONDS = 300
BACKOFF_START = 1.0
BACKOFF_CAP = 300.0
LOGIN_BACKOFF_START = 60.0
LOGIN_BACKOFF_CAP = 1800.0


class LostLock(Exception):
    """Another poller now holds this mailbox (or Redis forgot us): stop touching it."""


@dataclass(frozen=True)
class ImapAccount:
    """One mailbox: `imaps://user:password@host:port/FOLDER?processed=Processed&failed=Failed`.

    `auth=xoauth2` logs in with an OAuth2 bearer token: the password part, or the contents of
    `token_file=` read afresh at every login (keep it refreshed with your provider's tool).
    """

    host: str
    port: int
    ssl: bool
    username: str
    password: str
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    failed_folder: str = "Failed"
    auth: str = "login"
    token_file: str | None = None

    @classmethod
    def from_url(cls, url: str) -> ImapAccount:
        parts = urlsplit(url)
        secure = parts.scheme != "imap"
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        folder = unquote(parts.path.lstrip("/")) or "INBOX"
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or (993 if secure else 143),
            ssl=secure,
            username=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            folder=folder,
            processed_folder=query.get("processed", "Processed"),
            failed_folder=query.get("failed", "Failed"),
            auth=query.get("auth", "login").lower(),
            token_file=query.get("token_file"),
        )

    @property
    def key(self) -> str:
        """The mailbox's identity in the database and in Redis (no secrets in it)."""
        return f"{self.username}@{self.host}:{self.port}/{self.folder}"


class Backoff:
    """Exponential backoff with full jitter."""

    def __init__(self, start: float, cap: float) -> None:
        self.start, self.cap, self.failures = start, cap, 0

    def next_delay(self) -> float:
        self.failures += 1
        ceiling = min(self.cap, self.start * 2 ** (self.failures - 1))
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0


class MailboxLock:
    """A Redis lock with a TTL, renewed while the poller works; None redis = single machine."""

    def __init__(self, redis: Redis | None, key: str, ttl: int = LOCK_TTL_SECONDS) -> None:
        self.lock = redis.lock(f"hotline:imap:{key}", timeout=ttl) if redis is not None else None
        self.ttl = ttl
        self.renewed_at = 0.0

    def acquire(self) -> bool:
        if self.lock is None:
            return True
        if self.lock.acquire(blocking=False):
            self.renewed_at = time.monotonic()
            return True
        return False

    def renew(self, *, force: bool = False) -> None:
        if self.lock is None or (not force and time.monotonic() - self.renewed_at < self.ttl / 3):
            return
        try:
            self.lock.extend(self.ttl, replace_ttl=True)
        except (LockError, RedisError) as exc:
            raise LostLock(str(exc)) from exc
        self.renewed_at = time.monotonic()

    def release(self) -> None:
        if self.lock is None:
            return
        with contextlib.suppress(LockError, RedisError):
            self.lock.release()


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class MailboxPoller:
    """Fetches one mailbox into the database; `sync` is one pass, `run_forever` the daemon."""

    def __init__(
        self,
        account: ImapAccount,
        settings: Settings,
        sessions: sessionmaker[Session],
        *,
        redis: Redis | None = None,
        process_inline: bool = True,
        batch_size: int = BATCH_SIZE,
        idle_renew_seconds: float = IDLE_RENEW_SECONDS,
        full_sync_seconds: float = FULL_SYNC_SECONDS,
        lock_ttl: int = LOCK_TTL_SECONDS,
        connect_timeout: float = 15.0,
        read_timeout: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
        backoff: tuple[float, float] = (BACKOFF_START, BACKOFF_CAP),
        login_backoff: tuple[float, float] = (LOGIN_BACKOFF_START, LOGIN_BACKOFF_CAP),
    ) -> None:
        self.account = account
        self.settings = settings
        self.sessions = sessions
        self.redis = redis
        self.process_inline = process_inline
        self.batch_size = batch_size
        self.idle_renew_seconds = idle_renew_seconds
        self.full_sync_seconds = full_sync_seconds
        self.lock_ttl = lock_ttl
        self.timeout = SocketTimeout(connect=connect_timeout, read=read_timeout)
        self.ssl_context = ssl_context
        self.backoff = backoff
        self.login_backoff = login_backoff
        self.health_name = f"imap:{account.key}"
        self.silent_after = timedelta(hours=settings.config.mail.silent_after_hours)
        self.max_bytes = max_message_bytes(settings.config)
        self.after_commit: Callable[[list[int]], None] | None = None
        self._active_lock: MailboxLock | None = None

    # --- connection -----------------------------------------------------------------------
    def connect(self) -> IMAPClient:
        account = self.account
        client = IMAPClient(
            account.host,
            port=account.port,
            ssl=account.ssl,
            ssl_context=self.ssl_context,
            timeout=self.timeout,
        )
        try:
            sock = client.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if account.auth == "xoauth2":
                token = (
                    Path(account.token_file).read_text(encoding="utf-8").strip()
                    if account.token_file
                    else account.password
                )
                client.oauth2_login(account.username, token)
            else:
                client.login(account.username, account.password)
            for folder in (account.processed_folder, account.failed_folder):
                if not client.folder_exists(folder):
                    client.create_folder(folder)
        except BaseException:
            _close(client)
            raise
        return client

    # --- one pass -------------------------------------------------------------------------
    def _cursor(self, session: Session, uidvalidity: int) -> ImapCursor:
        cursor = session.scalar(select(ImapCursor).where(ImapCursor.mailbox == self.account.key))
        if cursor is None:
            cursor = ImapCursor(mailbox=self.account.key, uidvalidity=uidvalidity, last_uid=0)
            session.add(cursor)
        elif cursor.uidvalidity != uidvalidity:
            log.warning(
                "%s: UIDVALIDITY changed from %s to %s; re-scanning the folder",
                self.account.key,
                cursor.uidvalidity,
                uidvalidity,
            )
            cursor.uidvalidity, cursor.last_uid = uidvalidity, 0
        return cursor

    def _move(self, client: IMAPClient, uids: list[int], folder: str) -> None:
        if not uids:
            return
        if client.has_capability("MOVE"):
            client.move(uids, folder)
            return
        client.copy(uids, folder)
        client.add_flags(uids, [b"\\Deleted"], silent=True)
        if client.has_capability("UIDPLUS"):
            client.uid_expunge(uids)
        else:
            log.warning(
                "%s: no MOVE and no UIDPLUS; leaving %d copied messages flagged \\Deleted",
                self.account.key,
                len(uids),
            )

    def sync(self, client: IMAPClient, lock: MailboxLock | None = None) -> int:
        """One full pass; returns how many new messages were stored."""
        self._active_lock = lock
        info = client.select_folder(self.account.folder)
        uidvalidity = int(info[b"UIDVALIDITY"])
        with self.sessions() as session:
            cursor = self._cursor(session, uidvalidity)
            session.commit()
            last_uid = cursor.last_uid
        if last_uid:
            leftovers = [u for u in client.search(["UID", f"1:{last_uid}"]) if u <= last_uid]
            if leftovers:
                log.info("%s: moving %d already stored", self.account.key, len(leftovers))
                self._move(client, sorted(leftovers), self.account.processed_folder)
                self._process_unfinished(uidvalidity, leftovers)
        new = sorted(u for u in client.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid)
        stored_count = 0
        for batch in _chunks(new, self.batch_size):
            if lock is not None:
                lock.renew(force=True)
            stored_count += self._store_batch(client, uidvalidity, batch)
        return stored_count

    def _process_unfinished(self, uidvalidity: int, uids: list[int]) -> None:
        """Messages stored by a pass that died before processing them."""
        if not self.process_inline:
            return
        with self.sessions() as session:
            waiting = list(
                session.scalars(
                    select(RawMessage.id).where(
                        RawMessage.mailbox == self.account.key,
                        RawMessage.uidvalidity == uidvalidity,
                        RawMessage.uid.in_(uids),
                        RawMessage.status == "stored",
                    )
                )
            )
        self._process(waiting)

    def _process(self, messages: Sequence[int | StoredCopy]) -> None:
        """Process stored messages, given by id or, when stored by this pass, as stored."""
        for message in messages:
            if self._active_lock is not None:
                self._active_lock.renew()  # a slow message must not let the lock lapse
            copy = message if isinstance(message, StoredCopy) else None
            raw_id = message.raw_id if isinstance(message, StoredCopy) else message
            try:
                process_stored(self.sessions, self.settings, raw_id, copy=copy)
            except TransientFailure as exc:
                log.warning("mail %s stored; a worker will process it: %s", raw_id, exc)

    def _already_stored(
        self, session: Session, uidvalidity: int, batch: list[int], bodies: dict[int, Any]
    ) -> dict[int, int]:
        """UID → stored id for the batch's messages stored before (same UID, or same bytes),
        in two queries instead of two per message."""
        found: dict[int, int] = {
            uid: raw_id
            for uid, raw_id in session.execute(
                select(RawMessage.uid, RawMessage.id).where(
                    RawMessage.mailbox == self.account.key,
                    RawMessage.uidvalidity == uidvalidity,
                    RawMessage.uid.in_(batch),
                )
            )
            if uid is not None
        }
        digests: dict[str, list[int]] = {}
        for uid, data in bodies.items():
            if uid not in found:
                raw = bytes(data.get(b"BODY[]") or b"")
                digests.setdefault(hashlib.sha256(raw).hexdigest(), []).append(uid)
        if digests:
            for digest, raw_id in session.execute(
                select(RawMessage.sha256, func.min(RawMessage.id))
                .where(RawMessage.sha256.in_(list(digests)))
                .group_by(RawMessage.sha256)
            ):
                for uid in digests[digest]:
                    found[uid] = raw_id
        return found

    def _store_batch(self, client: IMAPClient, uidvalidity: int, batch: list[int]) -> int:
        sizes = client.fetch(batch, ["RFC822.SIZE"])
        too_big = [
            u for u in batch if int(sizes.get(u, {}).get(b"RFC822.SIZE", 0)) > self.max_bytes
        ]
        wanted = [u for u in batch if u not in too_big and u in sizes]
        bodies = client.fetch(wanted, ["BODY.PEEK[]"]) if wanted else {}
        heads = client.fetch(too_big, ["BODY.PEEK[HEADER]"]) if too_big else {}
        created: list[dict[str, Any]] = []
        # what to process, in mailbox order: a stored id, or the index of a row stored now
        touched: list[tuple[str, int]] = []
        with self.sessions() as session:
            cursor = session.scalars(
                select(ImapCursor).where(ImapCursor.mailbox == self.account.key)
            ).one()
            if cursor.uidvalidity != uidvalidity:
                raise LostLock("the cursor changed under us: another poller is running")
            known = self._already_stored(session, uidvalidity, batch, bodies)
            same_bytes: set[str] = set()
            for uid in batch:
                size = int(sizes[uid].get(b"RFC822.SIZE", 0)) if uid in sizes else 0
                if uid in bodies:
                    raw = bytes(bodies[uid].get(b"BODY[]") or b"")
                    reason = None
                elif uid in heads:
                    raw = bytes(heads[uid].get(b"BODY[HEADER]") or b"")
                    reason = (
                        f"too large ({size} bytes, limit {self.max_bytes}); the message is in "
                        f"the mailbox folder {self.account.failed_folder!r}"
                    )
                else:
                    continue
                digest = hashlib.sha256(raw).hexdigest()
                if uid in known:
                    if reason is None:
                        touched.append(("stored", known[uid]))
                    continue
                if reason is None and digest in same_bytes:
                    continue  # the same bytes under another UID: stored (and processed) once
                if reason is None:
                    touched.append(("new", len(created)))
                    same_bytes.add(digest)
                created.append(
                    raw_message_row(
                        raw,
                        digest=digest,
                        source="imap",
                        mailbox=self.account.key,
                        uidvalidity=uidvalidity,
                        uid=uid,
                        quarantine_reason=reason,
                        size=size,
                    )
                )
            delay = SAFETY_NET_DELAY if self.process_inline else timedelta(0)
            ids = insert_raw_messages(session, created, delay) if created else []
            cursor.last_uid = max(cursor.last_uid, *batch)
            cursor.updated_at = utcnow()
            session.commit()
        if self.after_commit is not None:
            self.after_commit(batch)
        self._move(client, [u for u in batch if u not in too_big], self.account.processed_folder)
        self._move(client, too_big, self.account.failed_folder)
        if self.process_inline:
            # includes copies stored by a pass that died before processing; the bytes stored just
            # now are handed over as they are, not read back
            self._process(
                [
                    value if kind == "stored" else StoredCopy.of(ids[value], created[value])
                    for kind, value in dict.fromkeys(touched)
                ]
            )
        return len(created)

    # --- health ---------------------------------------------------------------------------
    def _report_ok(self, stored: int) -> None:
        if stored:
            report(self.sessions, self.health_name, "ok", last_message_at=utcnow().isoformat())
            return
        with self.sessions() as session:
            latest = session.scalar(
                select(RawMessage.received_at)
                .where(RawMessage.mailbox == self.account.key)
                .order_by(RawMessage.id.desc())
                .limit(1)
            )
        if latest is not None and utcnow() - latest > self.silent_after:
            log.warning(
                "%s: no mail for %s (since %s); is mail still reaching this mailbox?",
                self.account.key,
                utcnow() - latest,
                latest.isoformat(),
            )
            report(self.sessions, self.health_name, "silent", last_message_at=latest.isoformat())
        else:
            report(self.sessions, self.health_name, "ok")

    def _report_failure(self, status: str, exc: BaseException) -> int:
        failures = report(
            self.sessions, self.health_name, status, error=f"{type(exc).__name__}: {exc}"
        )
        log.error("%s: %s (%s failures in a row): %s", self.account.key, status, failures, exc)
        return failures

    # --- entry points ---------------------------------------------------------------------
    def run_once(self) -> int:
        """`hotline poll-imap --once`: lock, connect, one pass, let go."""
        lock = MailboxLock(self.redis, self.account.key, self.lock_ttl)
        try:
            if not lock.acquire():
                log.info("%s: another poller holds this mailbox", self.account.key)
                report(self.sessions, self.health_name, "standby")
                return 0
        except RedisError as exc:
            self._report_failure("failing", exc)
            raise
        try:
            client = self.connect()
            try:
                stored = self.sync(client, lock)
            finally:
                _close(client)
            self._report_ok(stored)
            return stored
        except LoginError as exc:
            self._report_failure("login_failing", exc)
            raise
        except (OSError, IMAPClientError, TransientFailure, LostLock) as exc:
            self._report_failure("failing", exc)
            raise
        finally:
            lock.release()

    def run_forever(self, stop: threading.Event) -> None:
        """The daemon loop: never returns until `stop` is set, whatever the server does."""
        backoff = Backoff(*self.backoff)
        login_backoff = Backoff(*self.login_backoff)
        while not stop.is_set():
            lock = MailboxLock(self.redis, self.account.key, self.lock_ttl)
            client: IMAPClient | None = None
            try:
                if not lock.acquire():
                    report(self.sessions, self.health_name, "standby")
                    stop.wait(self.lock_ttl / 3)
                    continue
                client = self.connect()
                login_backoff.reset()
                self._serve(client, lock, stop, backoff)
            except LoginError as exc:
                self._report_failure("login_failing", exc)
                stop.wait(login_backoff.next_delay())
            except Exception as exc:
                self._report_failure("failing", exc)
                stop.wait(backoff.next_delay())
            finally:
                if client is not None:
                    _close(client)
                lock.release()

    def _serve(
        self, client: IMAPClient, lock: MailboxLock, stop: threading.Event, backoff: Backoff
    ) -> None:
        idle = client.has_capability("IDLE")
        while not stop.is_set():
            stored = self.sync(client, lock)
            backoff.reset()
            self._report_ok(stored)
            pass_started = time.monotonic()
            while not stop.is_set():
                remaining = self.full_sync_seconds - (time.monotonic() - pass_started)
                if remaining <= 0:
                    break
                news = self._wait(client, lock, stop, min(remaining, self.idle_renew_seconds), idle)
                if news:
                    break

    def _wait(
        self,
        client: IMAPClient,
        lock: MailboxLock,
        stop: threading.Event,
        seconds: float,
        idle: bool,
    ) -> bool:
        """Wait up to `seconds` for news (IDLE when offered); raises when the connection is dead."""
        deadline = time.monotonic() + seconds
        step = max(0.5, min(30.0, self.lock_ttl / 3))
        if not idle:
            while not stop.is_set() and time.monotonic() < deadline:
                stop.wait(min(step, deadline - time.monotonic()))
                lock.renew()
            client.noop()
            return False
        client.idle()
        news: list[Any] = []
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                timeout = max(0.1, min(step, deadline - time.monotonic()))
                started = time.monotonic()
                responses = client.idle_check(timeout=timeout)
                lock.renew()
                if any(b"EXISTS" in r or b"BYE" in r for r in responses if isinstance(r, tuple)):
                    news = responses
                    break
                if not responses and time.monotonic() - started < timeout / 2:
                    break  # idle_check returns at once on a closed socket: go and find out
        finally:
            client.idle_done()
        client.noop()
        return bool(news)


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:
        with contextlib.suppress(Exception):
            client.shutdown()


def pollers(
    settings: Settings, sessions: sessionmaker[Session], **options: Any
) -> list[MailboxPoller]:
    redis = None
    if settings.redis_url:
        from intake.redis_client import connect

        redis = connect(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
    else:
        log.warning("REDIS_URL is not set: polling without a cross-machine lock")
    return [
        MailboxPoller(ImapAccount.from_url(url), settings, sessions, redis=redis, **options)
        for url in settings.imap_urls
    ]

"""Store first, parse later: inbound mail is a `RawMessage` row before anything else happens.

Both transports store the bytes inside their own transaction (`store_message`, or
`insert_raw_messages` for a poller's batch), together with an outbox row `process_raw_message`;
only after that commit do they let go of the message (IMAP moves it, SMTP answers 250). Processing
(`process_stored`) parses the bytes into an `InboundContact` and hands it to
`intake.service.receive`, which marks the message processed in the ticket's own transaction; both
steps are idempotent, so running it twice is harmless. A message that cannot be processed is
quarantined with its reason and replayed later; nothing is ever deleted here.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Executable, bindparam, insert, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from intake.config import HotlineConfig, Settings
from intake.contact import InboundContact
from intake.db import read_options
from intake.models import Outbox, RawMessage, utcnow
from intake.service import Receipt, receive
from intake.tickets import job_row

log = logging.getLogger(__name__)

PROCESS_JOB = "process_raw_message"
QUARANTINE_HEAD_BYTES = 64 * 1024
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MESSAGE_ID = re.compile(rb"^message-id[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)


class TransientFailure(Exception):
    """Processing could not finish for a reason that will pass (database unreachable...)."""


def max_message_bytes(config: HotlineConfig) -> int:
    return config.mail.max_message_bytes


def header_message_id(raw: bytes) -> str | None:
    """The normalized Message-ID from the header block, without parsing the whole message."""
    from mail.threads import normalize_message_id

    match = _HEADER_END.search(raw)
    head = raw[: match.start()] if match else raw[:QUARANTINE_HEAD_BYTES]
    found = _MESSAGE_ID.search(head)
    if not found:
        return None
    return normalize_message_id(found.group(1).decode("latin-1"))


@dataclass(frozen=True)
class Stored:
    raw_id: int
    created: bool


_SAME_BYTES = (
    select(RawMessage.id)
    .where(RawMessage.sha256 == bindparam("digest"))
    .order_by(RawMessage.id)
    .limit(1)
)
_INSERT_RAW = insert(RawMessage).returning(RawMessage.id, sort_by_parameter_order=True)
_INSERT_JOBS = insert(Outbox)


def store_message(
    session: Session,
    raw: bytes,
    *,
    source: str,
    envelope_from: str | None = None,
    envelope_to: Sequence[str] = (),
) -> Stored:
    """Add the raw bytes (and the job that will process them) to `session`; the caller commits.

    The exact same bytes already stored give back the first copy: a re-delivery stores nothing
    new. (The poller looks its batch up by transport key and bytes at once, then inserts it with
    `insert_raw_messages`.)
    """
    digest = hashlib.sha256(raw).hexdigest()
    existing = session.connection().execute(_SAME_BYTES, {"digest": digest}).scalar()
    if existing is not None:
        return Stored(existing, False)
    row = raw_message_row(
        raw, digest=digest, source=source, envelope_from=envelope_from, envelope_to=envelope_to
    )
    return Stored(insert_raw_messages(session, [row], timedelta(0))[0], True)


def raw_message_row(
    raw: bytes,
    *,
    digest: str,
    source: str,
    mailbox: str | None = None,
    uidvalidity: int | None = None,
    uid: int | None = None,
    envelope_from: str | None = None,
    envelope_to: Sequence[str] = (),
    quarantine_reason: str | None = None,
    size: int | None = None,
) -> dict[str, Any]:
    """The columns for bytes not stored before (the caller checked both keys). `quarantine_reason`
    stores them already quarantined (too large to process: then `raw` may be just the header and
    `size` the size of the whole message)."""
    return {
        "source": source,
        "mailbox": mailbox,
        "uidvalidity": uidvalidity,
        "uid": uid,
        "envelope_from": (envelope_from or None) and envelope_from[:300],
        "envelope_to": list(envelope_to),
        "sha256": digest,
        "message_id": (header_message_id(raw) or "")[:300] or None,
        "raw": raw if quarantine_reason is None else raw[:QUARANTINE_HEAD_BYTES],
        "size": max(size or 0, len(raw)),
        "status": "stored" if quarantine_reason is None else "quarantined",
        "reason": quarantine_reason,
        "received_at": utcnow(),
    }


def insert_raw_messages(
    session: Session, rows: list[dict[str, Any]], process_delay: timedelta
) -> list[int]:
    """Insert `rows` (one statement for all) and the jobs that will process the stored ones, due
    after `process_delay`; returns the new ids in the order of `rows`."""
    connection = session.connection()
    ids = list(connection.execute(_INSERT_RAW, rows).scalars())
    jobs = [
        job_row(
            PROCESS_JOB,
            dedupe_key=process_dedupe_key(raw_id),
            available_at=row["received_at"] + process_delay,
            raw_id=raw_id,
        )
        for raw_id, row in zip(ids, rows, strict=True)
        if row["status"] == "stored"
    ]
    if jobs:
        connection.execute(_INSERT_JOBS, jobs)
    return ids


def process_dedupe_key(raw_id: int) -> str:
    return f"mail:{raw_id}"


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def quarantine(sessions: sessionmaker[Session], raw_id: int, reason: str) -> None:
    with sessions() as session:
        _set_status(session, raw_id, status="quarantined", reason=reason[:4000])
        session.commit()
    log.warning("mail %s quarantined: %s", raw_id, reason)


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _set_status(session: Session, raw_id: int, **values: Any) -> None:
    """Record how processing ended; the message's safety-net job then has nothing left to do."""
    statements = _status_statements(tuple(sorted(values)), _is_postgresql(session))
    params = {
        "raw_id": raw_id,
        "job_key": process_dedupe_key(raw_id),
        "now": utcnow(),
        **{f"new_{name}": value for name, value in values.items()},
    }
    connection = session.connection()
    for statement in statements:
        connection.execute(statement, params)


@lru_cache(maxsize=8)
def _status_statements(columns: tuple[str, ...], one_statement: bool) -> tuple[Executable, ...]:
    """Built once per shape: the raw message's new status, and its outbox row done; on PostgreSQL
    in one statement (the outbox update as a CTE), a round trip fewer."""
    mark = (
        update(RawMessage)
        .where(RawMessage.id == bindparam("raw_id"))
        .values(processed_at=bindparam("now"), **{c: bindparam(f"new_{c}") for c in columns})
    )
    finish = (
        update(Outbox)
        .where(Outbox.dedupe_key == bindparam("job_key"), Outbox.status == "pending")
        .values(status="done", done_at=bindparam("now"))
    )
    if one_statement:
        return (mark.add_cte(finish.returning(Outbox.id).cte("finished")),)
    return finish, mark


def _mark_processed(
    session: Session, settings: Settings, raw_id: int, contact: InboundContact, receipt: Receipt
) -> None:
    """Runs in the ticket's transaction: the message is processed exactly when its ticket exists,
    with one commit for both."""
    from mail.outgoing import record_bounce

    bounce = (contact.meta or {}).get("bounce")
    if bounce:
        record_bounce(session, settings, bounce, receipt.ticket_id)
    _set_status(
        session,
        raw_id,
        status="processed",
        reason=None,
        classification=contact.sender_kind,
        interaction_id=receipt.interaction_id,
    )


@dataclass(frozen=True)
class StoredCopy:
    """What processing needs of a stored message. The poller, which has just committed these
    bytes itself, hands them over instead of reading them back."""

    raw_id: int
    raw: bytes
    source: str
    transport_key: str
    envelope_to: tuple[str, ...] = ()

    @classmethod
    def of(cls, raw_id: int, row: Mapping[Any, Any]) -> StoredCopy:
        """From the columns of a `raw_message` row."""
        if row["source"] == "imap":
            key = f"imap:{row['mailbox']}:{row['uidvalidity']}:{row['uid']}"
        else:
            key = f"{row['source']}:{raw_id}"
        envelope_to = tuple(str(a) for a in row["envelope_to"] or [])
        return cls(raw_id, row["raw"], row["source"], key, envelope_to)


_STORED = select(
    RawMessage.id,
    RawMessage.status,
    RawMessage.reason,
    RawMessage.size,
    RawMessage.raw,
    RawMessage.source,
    RawMessage.mailbox,
    RawMessage.uidvalidity,
    RawMessage.uid,
    RawMessage.envelope_to,
).where(RawMessage.id == bindparam("raw_id"))


def _load(sessions: sessionmaker[Session], raw_id: int, replay: bool) -> StoredCopy | str:
    """The stored message, or why it is not to be processed now."""
    with sessions() as session:
        connection = session.connection(execution_options=read_options(session.get_bind().engine))
        row = connection.execute(_STORED, {"raw_id": raw_id}).first()
    if row is None:
        return "no such message"
    if row.status == "processed" and not replay:
        return "already processed"
    if row.status == "quarantined" and not replay:
        return f"quarantined: {row.reason}"
    if row.size > len(row.raw):
        return f"kept in quarantine: {row.reason}"
    return StoredCopy.of(row.id, row._mapping)


def process_stored(
    sessions: sessionmaker[Session],
    settings: Settings,
    raw_id: int,
    *,
    replay: bool = False,
    copy: StoredCopy | None = None,
) -> str:
    """Parse one stored message and hand it to intake. Raises `TransientFailure` when the database
    is unreachable (the job is retried); quarantines on anything a retry would not fix.
    `copy` is the message as its transport has just stored it (status `stored`), not read again."""
    from mail.contact import UnparseableMessage, message_to_contact

    if copy is None:
        try:
            loaded = _load(sessions, raw_id, replay)
        except Exception as exc:
            if _is_transient(exc):
                raise TransientFailure(str(exc)) from exc
            raise
        if isinstance(loaded, str):
            return loaded
        copy = loaded
    try:
        contact = message_to_contact(
            copy.raw,
            settings=settings,
            source="imap" if copy.source == "imap" else "smtp",
            transport_key=copy.transport_key,
            envelope_to=list(copy.envelope_to),
        )
    except UnparseableMessage as exc:
        quarantine(sessions, raw_id, f"unparseable: {getattr(exc, 'reason', None) or exc}")
        return "quarantined"
    except OSError as exc:
        raise TransientFailure(f"could not store attachments: {exc}") from exc
    except Exception as exc:
        log.exception("parser failed on mail %s", raw_id)
        quarantine(sessions, raw_id, f"parser failed: {type(exc).__name__}: {exc}")
        return "quarantined"
    try:
        receipt = receive(
            sessions,
            contact,
            settings.config,
            also=lambda session, receipt: _mark_processed(
                session, settings, raw_id, contact, receipt
            ),
        )
    except Exception as exc:
        if _is_transient(exc):
            raise TransientFailure(str(exc)) from exc
        log.exception("intake refused mail %s", raw_id)
        quarantine(sessions, raw_id, f"intake failed: {type(exc).__name__}: {exc}")
        return "quarantined"
    what = "duplicate of" if receipt.duplicate else "new ticket" if receipt.created_ticket else "on"
    return f"{contact.sender_kind} mail {what} {receipt.ticket_ref}"


def process_raw_message(raw_id: int) -> str:
    """RQ job: process one stored message (a transient failure raises, so it is retried)."""
    from intake.config import get_settings
    from intake.db import session_factory

    current = get_settings()
    return process_stored(session_factory(current.database_url), current, raw_id)


def replay(
    sessions: sessionmaker[Session],
    settings: Settings,
    ids: Iterable[int] = (),
    *,
    everything_quarantined: bool = False,
) -> list[tuple[int, str]]:
    """Process quarantined (or given) messages again, e.g. after a parser fix."""
    chosen = list(ids)
    if everything_quarantined:
        with sessions() as session:
            chosen += list(
                session.scalars(
                    select(RawMessage.id)
                    .where(RawMessage.status.in_(("quarantined", "stored")))
                    .order_by(RawMessage.id)
                )
            )
    results = []
    for raw_id in dict.fromkeys(chosen):
        try:
            results.append((raw_id, process_stored(sessions, settings, raw_id, replay=True)))
        except TransientFailure as exc:
            results.append((raw_id, f"not now, try again: {exc}"))
    return results

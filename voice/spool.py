"""Calls that arrive while the database is down: what Twilio sent is kept and filed once it is back.

A voice webhook whose database work fails keeps the request (path, query, Twilio's parameters) as
a file under `$HOTLINE_DATA_DIR/spool/voice/` (written whole and fsynced, so a crash keeps it) and
tells the caller the truth (`voice_fallback`: leave a message and we will call back;
`voice_outage_saved` once the message is kept). The disk, not Redis: the outage that took the
database may take Redis too, and a Redis without its data file would lose the calls.

A filer thread in the web process that spooled (and in any web process that starts and finds a
spool) retries every few seconds until the database answers, then files each call in arrival
order: a recorded message becomes a voicemail ticket with its recording and a callback; a caller
who hung up before recording becomes a missed call with a callback; status callbacks are applied.
One filer at a time per machine (an flock on the spool directory); every step is idempotent
(CallSid, RecordingSid), so an entry filed twice — a process killed between filing and removing
it — is still one ticket.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from intake.config import HotlineConfig
from intake.models import Call, CallStatusEvent, utcnow
from voice import filing
from voice.dialer import FINAL_STATUSES
from voice.languages import language
from voice.twiml import Script

log = logging.getLogger(__name__)

MAX_VALUE = 500
RECORDING_PATHS = ("/voice/recorded", "/voice/recording")
# A database that refuses or drops connections: the call goes to the spool.
DATABASE_DOWN = (OperationalError, InterfaceError, PoolTimeout)
RETRY_SECONDS = 5.0


def spool_dir(data_dir: Path) -> Path:
    return data_dir / "spool" / "voice"


def keep(data_dir: Path, path: str, args: dict[str, str], form: dict[str, str]) -> Path:
    """Keep one webhook for later; the file's name orders it after every earlier one."""
    entry = {
        "path": path,
        "args": {k: v[:MAX_VALUE] for k, v in args.items()},
        "form": {k: v[:MAX_VALUE] for k, v in form.items()},
        "received_at": utcnow().isoformat(),
    }
    folder = spool_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns():020d}-{uuid.uuid4().hex}.json"
    temporary = folder / f".{name}.tmp"
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump(entry, handle, ensure_ascii=False, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    final = folder / name
    temporary.rename(final)
    return final


def spooled(data_dir: Path) -> list[Path]:
    folder = spool_dir(data_dir)
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


@contextmanager
def _one_filer(data_dir: Path) -> Iterator[bool]:
    folder = spool_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def file_spooled(
    sessions: sessionmaker[Session], config: HotlineConfig, data_dir: Path, *, fetch: bool
) -> int:
    """File every spooled call, one call at a time in arrival order; returns the entries filed.

    A file is removed only after its call is filed; a database error stops the run and leaves
    the rest for the next one."""
    with _one_filer(data_dir) as mine:
        if not mine:
            return 0
        by_call: dict[str, list[tuple[dict[str, Any], Path]]] = {}
        for path in spooled(data_dir):
            try:
                entry = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                log.error("voice spool: %s is unreadable; moved aside", path)
                path.rename(path.with_suffix(".unreadable"))
                continue
            sid = str(entry.get("form", {}).get("CallSid") or "")
            by_call.setdefault(sid, []).append((entry, path))
        filed = 0
        for sid, items in by_call.items():
            if sid:
                _file_call(sessions, config, [entry for entry, _ in items], fetch=fetch)
            for _, path in items:
                path.unlink(missing_ok=True)
                filed += 1
        return filed


class Filer(threading.Thread):
    """Files the spool once the database answers, then ends (started again by the next spool)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        config: HotlineConfig,
        data_dir: Path,
        *,
        fetch: bool,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        super().__init__(name="hotline-voice-spool", daemon=True)
        self.sessions, self.config, self.data_dir = sessions, config, data_dir
        self.fetch, self.retry_seconds = fetch, retry_seconds

    def run(self) -> None:
        while spooled(self.data_dir):
            try:
                filed = file_spooled(self.sessions, self.config, self.data_dir, fetch=self.fetch)
                if filed:
                    log.warning("voice spool: filed %d webhook(s) kept during an outage", filed)
                    continue
            except DATABASE_DOWN as exc:
                log.info("voice spool: the database is still down (%s)", type(exc).__name__)
            except Exception:
                log.exception("voice spool: filing failed; retrying")
            time.sleep(self.retry_seconds)


_filers: dict[Path, Filer] = {}
_filers_lock = threading.Lock()


def start_filer(
    sessions: sessionmaker[Session],
    config: HotlineConfig,
    data_dir: Path,
    *,
    fetch: bool,
    retry_seconds: float = RETRY_SECONDS,
) -> None:
    """One filer thread per process and spool, started when something is spooled and none runs."""
    with _filers_lock:
        running = _filers.get(data_dir)
        if running is not None and running.is_alive():
            return
        _filers[data_dir] = Filer(
            sessions, config, data_dir, fetch=fetch, retry_seconds=retry_seconds
        )
        _filers[data_dir].start()


def _file_call(
    sessions: sessionmaker[Session],
    config: HotlineConfig,
    entries: list[dict[str, Any]],
    *,
    fetch: bool,
) -> None:
    first = entries[0]
    when = datetime.fromisoformat(str(first["received_at"]))
    call = filing.ensure_call(sessions, first["form"], config)
    recordings = [
        e for e in entries if e["path"] in RECORDING_PATHS and e["form"].get("RecordingSid")
    ]
    if recordings:
        topic = str(recordings[0]["args"].get("topic") or "voicemail")
        if topic not in filing.TOPIC_CATEGORIES:
            topic = "voicemail"
        call = _ensure_voicemail(sessions, config, call, topic, when)
        for entry in recordings:
            form = entry["form"]
            duration = str(form.get("RecordingDuration") or "")
            filing.attach_recording(
                sessions,
                call,
                config,
                recording_sid=str(form["RecordingSid"]),
                recording_url=form.get("RecordingUrl") or None,
                duration=int(duration) if duration.isdigit() else None,
                fetch=fetch,
            )
        filing.owe_callback(
            sessions, call, config, filing.VOICEMAIL_CALLBACKS.get(topic, "voicemail"), now=when
        )
    for entry in entries:
        if entry["path"] == "/voice/status" and entry["form"].get("CallStatus"):
            _record_status(sessions, call, entry)
    if not recordings and call.direction == "inbound":
        refreshed = _reload(sessions, call)
        if refreshed.status in FINAL_STATUSES and refreshed.ticket_id is None:
            filing.file_missed_call(sessions, refreshed, config, when)


def _ensure_voicemail(
    sessions: sessionmaker[Session], config: HotlineConfig, call: Call, topic: str, when: datetime
) -> Call:
    call = _reload(sessions, call)
    if call.ticket_id is not None:
        return call
    lang = language(config, call.language)
    text = Script(config, lang, "").text("voice_recording_text", topic=topic)
    filing.file_ticket(sessions, call, config, text=text, topic=topic, kind="voicemail", now=when)
    return _reload(sessions, call)


def _reload(sessions: sessionmaker[Session], call: Call) -> Call:
    with sessions() as session:
        row = session.scalar(select(Call).where(Call.call_sid == call.call_sid))
        assert row is not None
        return row


def _record_status(sessions: sessionmaker[Session], call: Call, entry: dict[str, Any]) -> None:
    form = entry["form"]
    status = str(form["CallStatus"])[:20]
    raw_sequence = str(form.get("SequenceNumber") or "")
    sequence = int(raw_sequence) if raw_sequence.isdigit() else 1000
    with sessions() as session:
        try:
            session.add(
                CallStatusEvent(
                    call_sid=call.call_sid,
                    sequence_number=sequence,
                    status=status,
                    params=form,
                    received_at=datetime.fromisoformat(str(entry["received_at"])),
                )
            )
            session.flush()
            row = session.scalar(select(Call).where(Call.id == call.id).with_for_update())
            assert row is not None
            filing.apply_status(
                session,
                row,
                status,
                sequence,
                answered_by=str(form.get("AnsweredBy") or ""),
                duration=str(form.get("CallDuration") or ""),
            )
            session.commit()
        except IntegrityError:
            session.rollback()

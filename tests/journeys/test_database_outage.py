"""Issue 12, item 17: calls during a database outage are kept, told the truth, and filed later.

PostgreSQL refuses every connection (`ALLOW_CONNECTIONS false`, live sessions terminated) while
residents call: five leave a message, two hang up at the beep. Each caller hears that the system
has a problem; those who left a message hear that it is kept. The web process keeps what Twilio
sent on disk and its filer retries; when the database is back the calls are filed without anyone
doing anything: every message one voicemail ticket with its recording and a callback, every
hang-up one missed call with a callback. Filing the same spool again adds nothing.
"""

from __future__ import annotations

import shutil
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from intake.models import Attachment, Callback, Ticket
from intake.phrases import render
from tests.journeys.conftest import World
from tests.mail.faults import postgres_down
from voice import spool
from voice.simulator import HANGUP, Step

TAIPEI = ZoneInfo("Asia/Taipei")
MESSAGE = Step("say", "the lift in block B is stuck again")
VOICEMAIL_CALLERS = [f"+8869123456{n:02d}" for n in range(5)]
HANG_UP_CALLERS = ["+886912345690", "+886912345691"]


def phrase(world: World, name: str) -> str:
    return render(name, world.settings.config.default_language).strip()


def count(world: World, query: object) -> int:
    with world.sessions() as session:
        return int(session.scalar(query) or 0)


def filed_by_itself(world: World, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while spool.spooled(world.settings.data_dir):
        assert time.monotonic() < deadline, "the spool was not filed"
        time.sleep(0.1)


def test_calls_during_a_database_outage_are_kept_and_filed_when_it_is_back(
    world: World, tmp_path
) -> None:
    if not world.settings.database_url.startswith("postgresql"):
        pytest.skip("the outage is PostgreSQL refusing connections")
    world.at(datetime(2030, 10, 18, 10, 0, tzinfo=TAIPEI))
    world.app.config["VOICE_SPOOL_RETRY_SECONDS"] = 0.2
    data_dir = world.settings.data_dir
    sorry = phrase(world, "voice_fallback")
    kept = phrase(world, "voice_outage_saved")

    with postgres_down(world.settings.database_url):
        results = [world.call([MESSAGE], caller=number) for number in VOICEMAIL_CALLERS]
        results += [world.call([HANGUP], caller=number) for number in HANG_UP_CALLERS]
        for result in results:
            assert sorry in result.text(), result.text()
        for result in results[:5]:
            assert kept in result.text(), "a caller who left a message is told it is kept"
        files = spool.spooled(data_dir)
        assert len(files) == 5 * 6 + 2 * 4, "incoming, recorded, recording, 3 statuses; or 1 + 3"
        copies = tmp_path / "copies"
        copies.mkdir()
        for path in files:
            shutil.copy(path, copies / path.name)

    # The database is back: the web process files what it kept; real workers do the rest.
    filed_by_itself(world)
    world.drain()
    assert count(world, select(func.count(Ticket.id))) == 7, "one ticket per caller"
    assert count(world, select(func.count(Attachment.id))) == 5, "every recording attached once"
    callbacks = world.hotline("callbacks", "list", "--format", "json")
    assert sorted((c["phone"], c["purpose"]) for c in callbacks) == sorted(
        [(n, "voicemail") for n in VOICEMAIL_CALLERS]
        + [(n, "missed_call") for n in HANG_UP_CALLERS]
    )

    # The same spool again (a process killed before it removed its files): nothing doubles.
    for path in copies.iterdir():
        shutil.copy(path, spool.spool_dir(data_dir) / path.name)
    assert spool.file_spooled(world.sessions, world.settings.config, data_dir, fetch=False) == 38
    world.drain()
    assert not spool.spooled(data_dir)
    assert count(world, select(func.count(Ticket.id))) == 7
    assert count(world, select(func.count(Attachment.id))) == 5
    assert count(world, select(func.count(Callback.id))) == 7

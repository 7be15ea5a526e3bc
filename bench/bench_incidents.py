"""Incidents at scale, each figure next to a baseline measured in the same run.

    python bench/bench_incidents.py [--households 10000] [--requests 1500] [--skip-ivr] [--skip-notices]

1. The IVR: `bench_voice`'s run (a known caller on `/voice/incoming` against a bare Core-insert
   view and a constant TwiML view, through gunicorn) without an incident, then with an active
   incident over another building, so every call asks whether its caller is affected: the two
   voice / Core-insert ratios side by side (target: within 10 %).
2. The notices: N households of one building (a mobile and an address each) get an incident
   notice: `send_incident_notices` writes 2N messages (rows/s), a worker process killed midway
   and run again still writes each once, and every message is sent in process (`send_sms` through
   the fake Twilio, `send_email` through a local SMTP relay): messages/s next to the configured
   `incidents.sms_per_second`, and the pacing the outbox gives the SMS (at the limit exactly).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, insert, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scratch import seeded  # noqa: E402


def _declare(database_url: str, building: str, notify: bool) -> int:
    from intake import incidents
    from intake.config import get_settings
    from intake.db import session_factory

    with session_factory(database_url)() as session:
        incident = incidents.declare(
            session,
            buildings=[building],
            category="repair",
            texts={"zh-Hant": "升降機故障，工程部正在搶修。", "en": "The lift is out of order."},
            config=get_settings().config,
            actor="bench",
            notify=notify,
        )
        session.commit()
        return incident.id


def ivr(requests: int) -> None:
    """bench_voice's run twice in this run: without an incident (the baseline), then with an active
    incident over building B (the caller lives in A, so every call asks whether it is affected)."""
    import bench_voice

    ratios = {}
    for label, prepare in (
        ("no incident", None),
        ("an active incident over building B", lambda url: _declare(url, "B", notify=False)),
    ):
        url = f"sqlite:///{tempfile.mkdtemp(prefix='bench-incidents-ivr-')}/hotline.db"
        os.environ.pop("HOTLINE_CONFIG", None)
        print(f"\nIVR with {label}:")
        ratios[label] = bench_voice.run(url, requests, 16, 2, 4, prepare=prepare)
    before, after = ratios.values()
    print(
        f"\nvoice / Core-insert ratio: {before:.2f} without an incident, {after:.2f} with one "
        f"({after / before:.0%} of it; target within 10 %)"
    )


_WRITER = """
import os, sys
sys.path.insert(0, {root!r})
from worker.notices import send_incident_notices
print(send_incident_notices({incident}, "declared"), flush=True)
"""


def notices(households: int, kill_after: float) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-incidents-"))
    url = f"sqlite:///{tmp}/hotline.db"
    from tests.mail.sink import start_sink
    from tests.worker.helpers import FakeTwilio

    sink = start_sink()
    os.environ.pop("HOTLINE_CONFIG", None)
    settings, sessions = seeded(
        url,
        tmp / "var",
        TWILIO_ACCOUNT_SID="AC" + "a" * 32,
        TWILIO_AUTH_TOKEN="bench-token",
        TWILIO_NUMBER="+886227000000",
        SMTP_URL=sink.url,
    )
    from intake.models import (
        Building,
        ContactPoint,
        IncidentNotice,
        Outbox,
        OutgoingMessage,
        Resident,
        Unit,
    )

    with sessions() as session:
        session.add(Building(code="Z", name="測試大廈"))
        session.commit()
        building = session.scalar(select(Building.id).where(Building.code == "Z"))
        units = [
            {"building_id": building, "label": f"{i // 8 + 1}F-{i % 8 + 1}"}
            for i in range(households)
        ]
        session.execute(insert(Unit), units)
        unit_ids = list(
            session.scalars(select(Unit.id).where(Unit.building_id == building).order_by(Unit.id))
        )
        languages = ("zh-Hant", "zh-Hans", "en")
        session.execute(
            insert(Resident),
            [
                {"name": f"住戶{i}", "language": languages[i % 3], "unit_id": u}
                for i, u in enumerate(unit_ids)
            ],
        )
        resident_ids = list(
            session.scalars(
                select(Resident.id).where(Resident.unit_id.in_(unit_ids)).order_by(Resident.id)
            )
        )
        points = []
        for i, rid in enumerate(resident_ids):
            points.append(
                {"resident_id": rid, "kind": "phone", "value": f"+8869{20000000 + i:08d}"}
            )
            points.append({"resident_id": rid, "kind": "email", "value": f"r{i}@example.com"})
        session.execute(insert(ContactPoint), points)
        session.commit()
    incident = _declare(url, "Z", notify=True)
    expected = 2 * households

    # A worker killed midway: the writer runs in its own process and is killed after a moment.
    code = _WRITER.format(root=str(ROOT), incident=incident)
    child = subprocess.Popen(
        [sys.executable, "-c", code], env={**os.environ}, stdout=subprocess.PIPE
    )
    time.sleep(kill_after)
    child.send_signal(signal.SIGKILL)
    child.wait()
    with sessions() as session:
        before_retry = session.scalar(select(func.count()).select_from(IncidentNotice)) or 0
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ}, capture_output=True, text=True, check=True
    )
    write_seconds = time.perf_counter() - started
    with sessions() as session:
        notices_written = session.scalar(select(func.count()).select_from(IncidentNotice)) or 0
        distinct = session.scalar(
            select(func.count()).select_from(
                select(IncidentNotice.channel, IncidentNotice.to).distinct().subquery()
            )
        )
        messages = session.scalar(
            select(func.count())
            .select_from(OutgoingMessage)
            .where(OutgoingMessage.template.like("incident_notice%"))
        )
        sends = session.execute(
            select(Outbox.job, Outbox.args, Outbox.available_at)
            .where(Outbox.job.in_(("send_sms", "send_email")))
            .order_by(Outbox.id)
        ).all()
    rate = settings.config.incidents.sms_per_second
    sms_times = sorted(at for job, _, at in sends if job == "send_sms")
    span = (sms_times[-1] - sms_times[0]).total_seconds() if sms_times else 0.0
    written_after = notices_written - before_retry
    print(f"\nnotices for {households} households ({expected} messages), SQLite:")
    print(
        f"  killed writer left {before_retry} notices; the retry wrote {written_after} in {write_seconds:.2f} s "
        f"({written_after / write_seconds:.0f} rows/s): {result.stdout.strip()}"
    )
    print(
        f"  notices {notices_written}, distinct addresses {distinct}, messages {messages}, send jobs {len(sends)}"
        f" -> {'each once' if notices_written == distinct == messages == len(sends) == expected else 'MISMATCH'}"
    )
    print(
        f"  SMS pacing: {len(sms_times)} SMS over {span:.0f} s = {len(sms_times) / max(span + 1, 1):.1f}/s"
        f" against incidents.sms_per_second = {rate:g} (target: at the limit)"
    )

    # Sending, in process, as fast as the senders go: the capacity the pacing is well under.
    from mail.outgoing import send_email
    from voice import dialer
    from worker.sms import send_sms

    fake = FakeTwilio()
    dialer.use_http_client(fake)
    sample = sends[: min(len(sends), 2000)]
    started = time.perf_counter()
    for job, args, _ in sample:
        (send_sms if job == "send_sms" else send_email)(args["outgoing_id"])
    seconds = time.perf_counter() - started
    twice = 0
    for job, args, _ in sample[:200]:  # a retried send job finds its message final
        outcome = (send_sms if job == "send_sms" else send_email)(args["outgoing_id"])
        twice += not str(outcome).startswith("already")
    with sessions() as session:
        sent = session.scalar(
            select(func.count())
            .select_from(OutgoingMessage)
            .where(OutgoingMessage.status == "sent")
        )
    sink.stop()
    print(
        f"  sent {len(sample)} in process in {seconds:.2f} s = {len(sample) / seconds:.0f} messages/s "
        f"({len(fake.messages)} SMS to the fake Twilio, {len(sink.delivered)} emails to the SMTP relay; "
        f"{sent} marked sent); retried sends that sent again: {twice}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--households", type=int, default=10000)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--skip-ivr", action="store_true")
    parser.add_argument("--skip-notices", action="store_true")
    parser.add_argument("--kill-after", type=float, default=8.0, help="seconds before the kill")
    args = parser.parse_args()
    if not args.skip_notices:
        notices(args.households, args.kill_after)
    if not args.skip_ivr:
        ivr(args.requests)


if __name__ == "__main__":
    main()

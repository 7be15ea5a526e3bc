"""Residents' data: card and ID numbers never stored, one resident's data exported and erased (tickets
kept for statistics, recordings deleted at Twilio), and the daily retention sweep."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from intake.cli import main
from intake.models import (
    Attachment,
    AuditEntry,
    CallStatusEvent,
    ContactPoint,
    RawMessage,
    Ticket,
)
from intake.privacy import redact
from voice.simulator import HANGUP, press, say
from worker.housekeeping import schedule_periodic

PHONE = "+886912000001"  # 陳大文, a demo resident
EMAIL = "chan.taiman@example.com"
# A repair report, then more details left as a recording.
REPORT_WITH_RECORDING = [press("1"), say("廚房漏水，天花板一直滴水"), say("補充：在洗碗盆下面")]


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def resident_id(world) -> int:  # type: ignore[no-untyped-def]
    with world.sessions() as s:
        return s.scalar(select(ContactPoint.resident_id).where(ContactPoint.value == PHONE))


def count(world, model, *where) -> int:  # type: ignore[no-untyped-def]
    with world.sessions() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


@pytest.mark.parametrize(
    ("said", "stored"),
    [
        ("卡號 4111 1111 1111 1111 到期", "卡號 ************1111 到期"),
        ("身分證 A123456789 謝謝", "身分證 A********* 謝謝"),
        ("HKID A123456(3) please", "HKID A******(*) please"),
        ("電話 0912345678 單號 HL-000123 卡 4111 1111 1111 1112", None),
    ],
)
def test_it_redacts_card_and_id_numbers_only_when_their_check_digits_match(said, stored):
    assert redact(said) == (stored or said)


def test_numbers_a_caller_says_or_a_resident_types_are_never_stored(world, demo):
    world.at(datetime(2026, 12, 1, 10, 0, tzinfo=demo.config.timezone))
    world.call(
        [say("管理費用信用卡 4111 1111 1111 1111 繳，身分證 A123456789"), HANGUP], caller=PHONE
    )
    world.send_mail(sender=EMAIL, subject="繳費 4111111111111111", body="我的身分證 A123456789")
    world.drain()
    shown = json.dumps(
        [
            run("tickets", "show", t["ref"], "--format", "json")
            for t in world.hotline("tickets", "list", "--format", "json")
        ],
        ensure_ascii=False,
    )
    assert "4111" not in shown.replace("************1111", "")
    assert "A123456789" not in shown
    assert "************1111" in shown and "A*********" in shown


def test_a_residents_data_is_exported_then_erased_and_the_tickets_stay(world, demo):
    world.at(datetime(2026, 12, 1, 10, 0, tzinfo=demo.config.timezone))
    world.call(REPORT_WITH_RECORDING, caller=PHONE)
    world.send_mail(sender=f"陳大文 <{EMAIL}>", subject="漏水", body="昨天報的漏水還沒有人來。")
    world.drain()
    rid = resident_id(world)
    with world.sessions() as s:
        recordings = list(
            s.scalars(select(Attachment.external_id).where(Attachment.external_id.is_not(None)))
        )
        refs = list(s.scalars(select(Ticket.ref).order_by(Ticket.id)))
    assert recordings, "the call left a recording"

    exported = json.loads(run("residents", "export", str(rid), "--format", "json"))
    assert exported["resident"]["name"] == "陳大文"
    assert exported["phones"] == [PHONE] and exported["emails"] == [EMAIL]
    assert sorted(t["ref"] for t in exported["tickets"]) == sorted(refs)
    bodies = " ".join(e["body_text"] for t in exported["tickets"] for e in t["timeline"])
    assert "天花板" in bodies and "還沒有人來" in bodies
    assert exported["calls"] and exported["calls"][0]["from"] == PHONE
    document = run("residents", "export", str(rid), "--format", "text")
    assert "陳大文" in document and refs[0] in document

    said = run("residents", "erase", str(rid), "--yes")
    assert said.startswith(f"erased resident {rid}: tickets kept {len(refs)}")
    assert sorted(world.twilio.deleted_recordings) == sorted(recordings)
    for ref in refs:
        ticket = json.loads(run("tickets", "show", ref, "--format", "json"))
        assert ticket["category"] and ticket["department"] and ticket["status"]
        assert ticket["contact_phone"] is None and ticket["contact_email"] is None
        assert all(e["body_text"] == "" for e in ticket["timeline"])
    again = json.loads(run("residents", "export", str(rid)))
    assert again["resident"]["name"] is None and again["phones"] == [] and again["emails"] == []
    everything = json.dumps(again, ensure_ascii=False)
    assert PHONE not in everything and EMAIL not in everything and "天花板" not in everything
    assert count(world, Attachment) == 0 and count(world, RawMessage) == 0
    with world.sessions() as s:
        actions = {(e.action, e.target) for e in s.scalars(select(AuditEntry))}
    assert {("resident_exported", str(rid)), ("resident_erased", str(rid))} <= actions


def test_erasing_waits_when_twilio_cannot_delete_a_recording(world, demo):
    world.at(datetime(2026, 12, 1, 10, 0, tzinfo=demo.config.timezone))
    world.call(REPORT_WITH_RECORDING, caller=PHONE)
    world.drain()
    world.twilio.recording_delete_script = ["503"]
    result = CliRunner().invoke(main, ["residents", "erase", str(resident_id(world)), "--yes"])
    assert result.exit_code == 1 and "nothing erased" in result.output
    assert count(world, ContactPoint, ContactPoint.value == PHONE) == 1
    assert run("residents", "erase", str(resident_id(world)), "--yes").startswith("erased")


def test_the_daily_sweep_removes_what_is_past_retention_and_says_so(world, demo):
    start = datetime(2026, 12, 1, 10, 0, tzinfo=demo.config.timezone)
    world.at(start)
    world.call(REPORT_WITH_RECORDING, caller=PHONE)
    world.send_mail(sender=EMAIL, subject="漏水", body="昨天報的漏水還沒有人來。")
    world.drain()
    assert count(world, RawMessage) == 1 and count(world, CallStatusEvent) >= 1
    recordings = count(world, Attachment, Attachment.external_id.is_not(None))
    tickets = count(world, Ticket)

    world.at(start + timedelta(days=30))  # nothing is old enough yet
    schedule_periodic(world.sessions, world.now)
    world.drain()
    world.at(start + timedelta(days=100))  # raw mail, recordings, call events: 90 days
    schedule_periodic(world.sessions, world.now)
    world.drain()

    with world.sessions() as s:
        runs = list(
            s.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "retention_run")
                .order_by(AuditEntry.id)
            )
        )
    assert len(runs) == 2
    assert not any(runs[0].detail["removed"].values())
    removed = runs[1].detail["removed"]
    assert removed["raw_mail"] == 1 and removed["recordings"] == recordings >= 1
    assert removed["call_events"] >= 1 and removed["transcripts"] == 0
    assert count(world, RawMessage) == 0 and count(world, CallStatusEvent) == 0
    assert len(world.twilio.deleted_recordings) == recordings
    assert count(world, Ticket) == tickets
    world.at(start + timedelta(days=400))  # transcripts: a year
    assert re.search(r"transcripts [1-9]", run("retention", "run"))


def test_a_wrong_retention_setting_is_refused_with_its_name():
    import yaml

    from intake.config import DEFAULT_CONFIG_PATH, ConfigError, parse_config
    from intake.retention import policy

    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    data["retention"] = {"recordings": 30, "transcripts": "forever"}
    assert policy(parse_config(data))["recordings"] == 30
    assert policy(parse_config(data))["transcripts"] is None
    for wrong, named in (({"recordingz": 30}, "recordingz"), ({"recordings": -1}, "recordings")):
        data["retention"] = wrong
        with pytest.raises(ConfigError, match=named):
            policy(parse_config(data))

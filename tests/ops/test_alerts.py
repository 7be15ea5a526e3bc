"""Alerts pushed to admins: a mailbox whose login starts failing, or Twilio webhooks refused for their
signature in bulk, are told once by email and SMS, not again while they last, and once more when they
have recovered — a flapping channel makes no storm."""

from __future__ import annotations

from datetime import datetime, timedelta

from click.testing import CliRunner
from sqlalchemy import select, update

from intake.cli import main
from intake.models import AlertIncident, Operator
from worker.housekeeping import schedule_periodic

ADMIN = "admin@hotline.localhost"
ADMIN_PHONE = "+886912999000"


def poll(monkeypatch, url: str) -> None:  # type: ignore[no-untyped-def]
    from intake.config import get_settings

    monkeypatch.setenv("IMAP_URL", url)
    get_settings.cache_clear()
    CliRunner().invoke(main, ["poll-imap", "--once"])


def minute(world, moment: datetime) -> None:  # type: ignore[no-untyped-def]
    """The worker's minute: periodic jobs (the alert check among them) are due and run."""
    world.at(moment)
    schedule_periodic(world.sessions, moment)
    world.drain()


def told(world) -> tuple[list[dict], list[dict]]:  # type: ignore[no-untyped-def]
    return world.mail_to(ADMIN), world.sms_sent(ADMIN_PHONE)


def test_a_failing_mailbox_and_forged_webhooks_are_each_told_once_and_their_recovery_once(
    world, demo, dovecot, monkeypatch
):
    with world.sessions() as s:
        s.execute(update(Operator).where(Operator.email == ADMIN).values(phone=ADMIN_PHONE))
        s.commit()
    start = datetime(2026, 12, 1, 10, 0, tzinfo=demo.config.timezone)
    minute(world, start)
    assert told(world) == ([], []), "nothing is wrong yet"

    # Someone changed the mailbox's password: every poll fails to log in.
    world.at(start + timedelta(minutes=1))
    poll(monkeypatch, dovecot.url.replace(":secret@", ":wrong@"))
    minute(world, start + timedelta(minutes=1))
    mails, sms = told(world)
    assert len(mails) == 1 and len(sms) == 1
    assert mails[0]["subject"].startswith("【系統警示】") and "imap:" in mails[0]["subject"]
    assert "恢復時會再通知一次" in mails[0]["body_text"]
    assert sms[0]["Body"].startswith("【系統警示】")

    for m in range(2, 6):  # still failing: nobody is told again
        world.at(start + timedelta(minutes=m))
        poll(monkeypatch, dovecot.url.replace(":secret@", ":wrong@"))
        minute(world, start + timedelta(minutes=m))
    assert [len(x) for x in told(world)] == [1, 1]

    # The password is put right; one good poll, then a blip, then good for good.
    world.at(start + timedelta(minutes=6))
    poll(monkeypatch, dovecot.url)
    minute(world, start + timedelta(minutes=6))
    minute(world, start + timedelta(minutes=8))
    world.at(start + timedelta(minutes=9))
    poll(monkeypatch, dovecot.url.replace(":secret@", ":wrong@"))
    minute(world, start + timedelta(minutes=9))
    assert [len(x) for x in told(world)] == [1, 1], "a blip within the incident tells nobody"
    poll(monkeypatch, dovecot.url)
    for m in (10, 12, 14, 16, 18):
        minute(world, start + timedelta(minutes=m))
    mails, sms = told(world)
    assert len(mails) == 2 and len(sms) == 2
    assert mails[1]["subject"].startswith("【已恢復】")
    assert sms[1]["Body"].startswith("【已恢復】")
    with world.sessions() as s:
        incidents = list(s.scalars(select(AlertIncident)))
    assert len(incidents) == 1 and incidents[0].closed_at is not None

    # Later that morning Twilio's requests start failing their signature check in bulk (someone
    # forging them, or a changed auth token): told once, and once when it is over.
    later = start + timedelta(minutes=30)

    def forged(count: int, minute_: int) -> None:
        world.at(later + timedelta(minutes=minute_, seconds=5))
        for n in range(count):
            answer = world.web.post(
                "/voice/incoming",
                data={"CallSid": f"CA{minute_:02d}{n:030d}", "From": "+886912000001"},
                headers={"X-Twilio-Signature": "bm90LWEtc2lnbmF0dXJl"},
            )
            assert answer.status_code == 403

    forged(20, 0)  # a few (a misconfigured test number) are not an incident
    minute(world, later + timedelta(minutes=1))
    assert [len(x) for x in told(world)] == [2, 2]
    forged(40, 1)  # 60 within five minutes is above 10 a minute
    world.call([], caller="+886912000002")  # a real, signed call still gets through
    minute(world, later + timedelta(minutes=2))
    mails, sms = told(world)
    assert len(mails) == 3 and len(sms) == 3
    assert "60 個電話平台（Twilio）請求簽章不符" in mails[2]["body_text"]
    assert sms[2]["Body"].startswith("【系統警示】")
    forged(30, 2)
    minute(world, later + timedelta(minutes=3))
    assert [len(x) for x in told(world)] == [3, 3], "told once while it lasts"
    for m in range(4, 16):  # the last five minutes quiet, and quiet for five more
        minute(world, later + timedelta(minutes=m))
    mails, sms = told(world)
    assert len(mails) == 4 and mails[3]["subject"].startswith("【已恢復】")
    assert len(sms) == 4 and sms[3]["Body"].startswith("【已恢復】")

"""Incidents in the core: who is told (households, opt-outs, units, callers), what links at intake,
and the notice job's pacing, quiet hours and once-only writing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from intake import clock
from intake import incidents as core
from intake.models import (
    Incident,
    IncidentNotice,
    Outbox,
    OutgoingMessage,
    Resident,
    Ticket,
)
from intake.service import receive
from tests.factories import email_contact

AFTERNOON = datetime(2030, 10, 16, 6, 0, tzinfo=UTC)  # 14:00 in Taipei
NIGHT = datetime(2030, 10, 16, 15, 0, tzinfo=UTC)  # 23:00 in Taipei: quiet hours
WANG, WONG = "+8613800138000", "+85291234567"


def declare(session, config, **kw) -> Incident:
    fields = {
        "buildings": ["B"],
        "category": "repair",
        "texts": {"zh-Hant": "B座停水", "en": "No water in Block B"},
        "config": config,
        "actor": "test",
        "now": AFTERNOON,
    }
    fields.update(kw)
    incident = core.declare(session, **fields)
    session.commit()
    return incident


def addresses(found) -> set[tuple[str, str]]:
    return {(r.channel, r.to) for r in found}


def test_it_tells_every_household_by_sms_and_email_in_their_language(demo, sessions):
    with sessions() as s:
        incident = declare(s, demo.config)
        found = core.recipients(s, incident, "declared", demo.config)
    assert addresses(found) == {
        ("sms", WANG),
        ("email", "wang.jianguo@example.cn"),
        ("sms", WONG),
        ("email", "wong.chikeung@example.hk"),
    }
    assert {r.to: r.language for r in found}[WANG] == "zh-Hans"


def test_planned_works_skip_residents_who_opted_out_but_an_incident_does_not(demo, sessions):
    with sessions() as s:
        wong = s.scalar(select(Resident).where(Resident.name == "黃志強"))
        wong.notices_opt_out = True
        s.commit()
        planned = declare(s, demo.config, kind="planned")
        urgent = declare(s, demo.config)
        assert WONG not in {r.to for r in core.recipients(s, planned, "declared", demo.config)}
        assert WONG in {r.to for r in core.recipients(s, urgent, "declared", demo.config)}


def test_an_incident_limited_to_units_tells_only_them(demo, sessions):
    with sessions() as s:
        incident = declare(s, demo.config, units=["8F-5"])
        assert {r.to for r in core.recipients(s, incident, "declared", demo.config)} == {
            WANG,
            "wang.jianguo@example.cn",
        }


def test_the_all_clear_of_an_unannounced_incident_goes_to_those_who_called(demo, sessions):
    with sessions() as s:
        incident = declare(s, demo.config)  # no --notify: the households were never told
        core.record_contact(
            s,
            incident.id,
            channel="voice",
            external_id="CA1",
            resident_id=None,
            phone=WANG,
            email=None,
        )
        s.commit()
        assert addresses(core.recipients(s, incident, "resolved", demo.config)) == {("sms", WANG)}
        assert core.recipients(s, incident, "update:1", demo.config) != []


@pytest.mark.parametrize(
    ("keywords", "subject", "linked"),
    [(["停水", "沒水"], "家裡沒水了", True), (["停水"], "門禁壞了", False), ([], "水管", True)],
)
def test_a_new_ticket_from_the_building_is_linked_when_it_matches(
    demo, sessions, keywords, subject, linked
):
    with sessions() as s:
        incident = declare(s, demo.config, keywords=keywords)
    receipt = receive(
        sessions,
        email_contact(sender_email="wang.jianguo@example.cn", subject=subject, text=subject),
        demo.config,
        now=AFTERNOON + timedelta(minutes=5),
    )
    with sessions() as s:
        ticket = s.get(Ticket, receipt.ticket_id)
        assert (ticket.incident_id == incident.id) is linked
        routes = s.scalar(
            select(func.count()).select_from(Outbox).where(Outbox.job == "route_ticket")
        )
        assert routes == (0 if linked else 1)


def test_a_ticket_from_another_building_or_before_the_start_is_not_linked(demo, sessions):
    with sessions() as s:
        declare(s, demo.config, keywords=["停水"])
        declare(
            s,
            demo.config,
            buildings=["A"],
            keywords=["停水"],
            starts_at=AFTERNOON + timedelta(hours=2),
        )
    receipt = receive(
        sessions,
        email_contact(sender_email="chan.taiman@example.com", subject="停水", text="停水"),
        demo.config,
        now=AFTERNOON,
    )
    with sessions() as s:
        assert s.get(Ticket, receipt.ticket_id).incident_id is None


def test_resolving_twice_resolves_once(demo, sessions):
    with sessions() as s:
        incident = declare(s, demo.config)
        core.resolve(s, incident, actor="test", config=demo.config, now=AFTERNOON)
        s.commit()
        assert core.resolve(s, incident, actor="test", config=demo.config, now=AFTERNOON) == []
        with pytest.raises(core.IncidentError):
            core.update(s, incident, actor="test", texts={"en": "again"})


def _run_notices(incident_id: int, step: str, at: datetime) -> str:
    from worker.notices import send_incident_notices

    with clock.frozen(at):
        return send_incident_notices(incident_id, step)


def test_the_notice_job_writes_each_notice_once_however_often_it_runs(demo, sessions):
    with sessions() as s:
        incident_id = declare(s, demo.config).id
    _run_notices(incident_id, "declared", AFTERNOON)
    assert "0 notices queued" in _run_notices(incident_id, "declared", AFTERNOON)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(IncidentNotice)) == 4
        assert s.scalar(select(func.count()).select_from(OutgoingMessage)) == 4
        sends = s.scalar(
            select(func.count())
            .select_from(Outbox)
            .where(Outbox.job.in_(("send_sms", "send_email")))
        )
        assert sends == 4


def test_planned_works_sms_wait_for_the_end_of_quiet_hours_and_keep_the_rate(
    demo, sessions, monkeypatch
):
    monkeypatch.setattr(demo.config.incidents, "sms_per_second", 1.0)
    with sessions() as s:
        planned = declare(s, demo.config, kind="planned", starts_at=NIGHT + timedelta(days=1)).id
        urgent = declare(s, demo.config).id
    _run_notices(planned, "declared", NIGHT)
    _run_notices(urgent, "declared", NIGHT)
    with sessions() as s:
        rows = s.execute(
            select(IncidentNotice.incident_id, IncidentNotice.channel, Outbox.available_at)
            .join(OutgoingMessage, OutgoingMessage.id == IncidentNotice.outgoing_message_id)
            .join(Outbox, Outbox.args["outgoing_id"].as_integer() == OutgoingMessage.id)
            .order_by(Outbox.id)
        ).all()
    morning = datetime(2030, 10, 17, 1, 0, tzinfo=UTC)  # 09:00 in Taipei, quiet hours' end
    planned_sms = [at for i, ch, at in rows if i == planned and ch == "sms"]
    assert planned_sms == [morning, morning + timedelta(seconds=1)]  # one a second
    assert [at for i, ch, at in rows if i == planned and ch == "email"] == [NIGHT, NIGHT]
    urgent_sms = [at for i, ch, at in rows if i == urgent and ch == "sms"]
    assert urgent_sms == [NIGHT, NIGHT + timedelta(seconds=1)]  # an incident goes at once


def test_a_suggestion_is_emailed_to_the_supervisors_once(demo, sessions):
    from worker.notices import alert_incident_suggestions

    for i, sender in enumerate(["chan.taiman@example.com", "lee.siumui@example.com"] * 2):
        receive(
            sessions,
            email_contact(sender_email=sender, subject=f"電梯壞了 {i}", text="A座電梯停了"),
            demo.config,
            now=AFTERNOON + timedelta(minutes=i),
        )
    with clock.frozen(AFTERNOON + timedelta(minutes=5)):
        assert alert_incident_suggestions() == "1 suggestions told"
        assert alert_incident_suggestions() == "0 suggestions told"
    with sessions() as s:
        [mail] = s.scalars(
            select(OutgoingMessage).where(OutgoingMessage.template == "incident_suggestion_email")
        ).all()
    assert "supervisor@hotline.localhost" in mail.to
    assert "A 座 4 張報修工單" in mail.subject and "/incidents" in mail.body_text
    with clock.frozen(AFTERNOON + timedelta(hours=2)):  # older than the window: nothing new
        assert alert_incident_suggestions() == "no suggestions"


def test_the_command_line_refuses_bad_input_in_words(demo):
    from click.testing import CliRunner

    from intake.cli import main

    runner = CliRunner()
    base = ["incidents", "declare", "--category", "repair", "--text-en", "Lift"]
    result = runner.invoke(main, [*base, "--buildings", "Z"])
    assert result.exit_code == 1 and "unknown buildings: Z" in result.output
    result = runner.invoke(main, [*base, "--buildings", "A", "--until", "tomorrow"])
    assert result.exit_code == 2 and "ISO 8601" in result.output
    result = runner.invoke(main, ["incidents", "resolve", "42"])
    assert result.exit_code == 1 and "no incident 42" in result.output
    result = runner.invoke(main, [*base, "--buildings", "A,B", "--format", "json"])
    assert result.exit_code == 0 and '"buildings": [\n    "A",\n    "B"\n  ]' in result.output

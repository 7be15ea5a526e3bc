"""Every figure of the dashboard and its CSV files, against a known set of tickets (issue 14).

October 2030 in Taipei, seen on the 20th at noon: three tickets and two missed calls. SLA
attainment counts only clocks that are decided (answered, or due and unanswered); the ones still
running are shown apart. Buildings are named; repeats are repair tickets for a unit that had
another repair within the configured window.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

from click.testing import CliRunner
from sqlalchemy import func, select

from intake import clock
from intake.cli import main
from intake.models import Department, ReportDayState, ReportStale, Ticket
from intake.service import receive
from tests.factories import call_contact, email_contact
from tests.web.console_helpers import SUPERVISOR, login, make_client, text
from web.reports import REPORTS, build_report

TAIPEI = ZoneInfo("Asia/Taipei")


def taipei(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2030, 10, day, hour, minute, tzinfo=TAIPEI)


def _arrive(sessions, demo, moment, contact, **fields):  # type: ignore[no-untyped-def]
    with clock.frozen(moment):
        receipt = receive(sessions, contact, demo.config)
    with sessions() as session:
        ticket = session.get(Ticket, receipt.ticket_id)
        for key, value in fields.items():
            setattr(ticket, key, value)
        session.commit()
    return receipt.ticket_ref


def _csv(client, name: str) -> list[list[str]]:  # type: ignore[no-untyped-def]
    body = client.get(f"/reports/{name}.csv?from=2030-10-01&to=2030-10-31").get_data(as_text=True)
    return list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))


def _figures(client) -> tuple[str, dict[str, list[list[str]]]]:  # type: ignore[no-untyped-def]
    """The dashboard's figures (its page from the period line on) and its CSV files."""
    page = text(client.get("/dashboard?from=2030-10-01&to=2030-10-31"))
    return page[page.index('<p id="period">') :], {n: _csv(client, n) for n in REPORTS}


def test_it_shows_figures_that_are_right(demo, sessions):
    with sessions() as session:
        engineering = session.scalar(select(Department.id).where(Department.code == "engineering"))
    # 1: answered in time, resolved a day late, scored 4.
    _arrive(
        sessions,
        demo,
        taipei(1, 10),
        email_contact(),
        department_id=engineering,
        first_response_due_at=taipei(1, 14),
        first_responded_at=taipei(1, 11),
        resolution_due_at=taipei(5, 18),
        resolved_at=taipei(6, 10),
        satisfaction=4,
    )
    # 2: the same unit's second repair nine days later: unanswered past due, resolution running.
    _arrive(
        sessions,
        demo,
        taipei(10, 9),
        email_contact(subject="又漏水", text="廚房又漏水"),
        department_id=engineering,
        first_response_due_at=taipei(10, 13),
        resolution_due_at=taipei(25, 18),
    )
    # 3: a call today, its first response still running; scored 2.
    _arrive(
        sessions,
        demo,
        taipei(20, 11),
        call_contact(),
        department_id=engineering,
        first_response_due_at=taipei(20, 15),
        satisfaction=2,
    )
    # Two missed calls: 10:xx on the 15th and 21:xx on the 16th (local hours).
    _arrive(
        sessions,
        demo,
        taipei(15, 10, 30),
        call_contact(kind="missed_call", text="", sender_phone="+886912000009"),
    )
    _arrive(
        sessions,
        demo,
        taipei(16, 21, 5),
        call_contact(kind="missed_call", text="", sender_phone="+886912000008"),
    )
    # Outside the period: not counted anywhere.
    _arrive(sessions, demo, taipei(1, 0).replace(month=9, day=30, hour=23), email_contact())

    client = make_client()
    login(client, SUPERVISOR)
    with clock.frozen(taipei(20, 12)):
        page, files = _figures(client)
        monthly = text(client.get("/reports/monthly"))
        empty = text(client.get("/reports/monthly?month=2030-08"))

    assert 'id="total">5<' in page, "three tickets and the two missed-call tickets"
    assert 'id="missed-total">2<' in page and "未接來電（依時段） (2)" in page
    first = page.split('id="sla-first">')[1].split("</tr>")[0]
    assert "50.0%" in first and "1 件達標、1 件逾時" in first and "1 件仍在計時" in first
    resolution = page.split('id="sla-resolution">')[1].split("</tr>")[0]
    assert (
        "0.0%" in resolution and "0 件達標、1 件逾時" in resolution and "1 件仍在計時" in resolution
    )
    assert "翠林苑A座" in page and "翠林苑A座 12F-1" in page.split('id="repeats"')[1]

    volume = {row[0]: row for row in files["volume"][1:]}
    assert files["volume"][0] == ["day", "email", "voice", "total"]
    assert volume["2030-10-01"][-1] == "1" and volume["2030-10-10"][-1] == "1"
    assert volume["2030-10-15"][-1] == "1" and volume["2030-10-16"][-1] == "1"
    assert volume["2030-10-20"][-1] == "1" and volume["2030-10-02"][-1] == "0"
    assert sum(int(r[-1]) for r in files["volume"][1:]) == 5
    hours = {int(h): int(n) for h, n in files["abandoned"][1:]}
    assert hours[10] == 1 and hours[21] == 1 and sum(hours.values()) == 2
    sla = dict(files["sla"][1:])
    assert (sla["first_response_met"], sla["first_response_missed"]) == ("1", "1")
    assert sla["first_response_running"] == "1" and sla["first_response_pct"] == "50.0"
    assert (sla["resolution_met"], sla["resolution_missed"], sla["resolution_running"]) == (
        "0",
        "1",
        "1",
    )
    assert (
        sla["first_response_minutes_median"] == "60.0"
        and sla["first_response_minutes_count"] == "1"
    )
    assert sla["resolution_minutes_mean"] == str(
        round((taipei(6, 10) - taipei(1, 10)).total_seconds() / 60, 1)
    )
    assert files["satisfaction"][1:] == [["工程維修部", "3.0", "2"]]
    # Repeats: the 1st (after September's), the 10th and the 20th (the call, same resident).
    assert files["repeats"][1:] == [["翠林苑A座 12F-1", "報修", "3"]]
    hot = {(c, b): int(n) for c, b, n in files["hotspots"][1:]}
    assert hot[("報修", "翠林苑A座")] == 3 and sum(hot.values()) == 5

    assert "2030-10" in monthly and 'id="total">5<' in monthly, "opens on the current month"
    assert 'id="empty"' in empty and 'id="total">0<' in empty

    # The daily roll-up (`hotline reports rollup`): the same figures, the past days read from it.
    with clock.frozen(taipei(20, 12)):
        built = CliRunner().invoke(main, ["reports", "rollup", "--all"])
        assert built.exit_code == 0, built.output
        assert "day(s) written" in built.output and "2030-10-19" in built.output
        with sessions() as session:
            held = set(session.scalars(select(ReportDayState.day)))
            assert date(2030, 10, 19) in held and date(2030, 10, 20) not in held
            report = build_report(
                session, date(2030, 10, 1), date(2030, 10, 31), demo.config, "zh-Hant"
            )
            assert report.live_days == 12, "today and the days after it are read live"
            live = build_report(
                session, date(2030, 10, 1), date(2030, 10, 31), demo.config, "zh-Hant", live=True
            )
            assert report == replace(live, live_days=12)
        assert _figures(client) == (page, files)

        assert text(client.get("/reports/monthly")) == monthly

    # Past days' tickets change (the 1st's is scored again, the 10th's resolved in time): the
    # change shows at once (that day is read live until the roll-up catches up), then from the
    # roll-up once the worker's refresh has run.
    with sessions() as session:
        first, second = session.scalars(select(Ticket).order_by(Ticket.id).limit(2))
        first.satisfaction, second.resolved_at = 5, taipei(12, 9)
        session.commit()
    with clock.frozen(taipei(20, 12)):
        page, files = _figures(client)
        sla = dict(files["sla"][1:])
        assert (sla["resolution_met"], sla["resolution_missed"], sla["resolution_running"]) == (
            "1",
            "1",
            "0",
        )
        assert sla["resolution_minutes_count"] == "2"
        assert files["satisfaction"][1:] == [["工程維修部", "3.5", "2"]]
        CliRunner().invoke(main, ["reports", "rollup"])
        with sessions() as session:
            assert session.scalar(select(func.count()).select_from(ReportStale)) == 0
            report = build_report(
                session, date(2030, 10, 1), date(2030, 10, 31), demo.config, "zh-Hant"
            )
            assert report.live_days == 12
        assert _figures(client) == (page, files)

    # A lift incident in A座 on the 18th, two hours long: its two calls are one hot spot.
    def hotline(*args: str) -> str:
        result = CliRunner().invoke(main, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    with clock.frozen(taipei(18, 9)):
        hotline(
            "incidents", "declare", "--buildings", "A", "--category", "repair",
            "--keywords", "電梯", "--text-zh-hant", "A座電梯故障，工程部搶修中",
        )  # fmt: skip
    linked = [
        _arrive(sessions, demo, taipei(18, 9, minute), call_contact(text="電梯壞了"))
        for minute in (10, 20)
    ]
    with clock.frozen(taipei(18, 11)):
        hotline("incidents", "resolve", "1")
    with clock.frozen(taipei(20, 12)):
        page, files = _figures(client)
        hot = {(c, b): int(n) for c, b, n in files["hotspots"][1:]}
        assert hot[("報修", "翠林苑A座")] == 4, "three tickets and one incident (two tickets)"
        assert 'id="total">7<' in page
        stats = dict(files["incidents"][1:])
        assert (stats["incidents"], stats["mean_minutes"], stats["tickets_grouped"]) == (
            "1",
            "120",
            "2",
        )
        assert 'data-stat="mean_minutes">2:00<' in page.split('id="incidents"')[1]
        with sessions() as session:
            assert {t.incident_id for t in session.scalars(select(Ticket)) if t.ref in linked} == {
                1
            }
        hotline("reports", "rollup")
        assert _figures(client) == (page, files)

"""Dashboard and reports (投訴熱點分析, 統計總結): figures for a period, SVG charts, CSV, monthly print."""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, Response, abort, current_app, g, render_template, request
from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from intake import audit, incidents, rollup
from intake.clock import utcnow
from intake.config import HotlineConfig
from intake.desk import call_figures
from intake.models import Building, Department, DeskCall, Interaction, Ticket, Unit
from web.auth import MANAGERS, STAFF, login_required, who
from web.charts import bars, stacked_bars
from web.labels import channel_label

bp = Blueprint("reports", __name__)
REPORTS = (
    "volume",
    "hotspots",
    "repeats",
    "sla",
    "satisfaction",
    "abandoned",
    "desk",
    "incidents",
)
DESK_COLUMNS = (
    "offered",
    "answered",
    "abandoned",
    "service_level",
    "asa_seconds",
    "aht_seconds",
)


@dataclass
class ReportData:
    start: date
    end: date
    days: list[date]
    volume: dict[str, list[int]]
    total: int
    hotspots: dict[tuple[str, str], int]
    categories: list[str]
    buildings: list[str]
    repeats: list[tuple[str, str, int]]
    sla: dict[str, Any]
    first_response_minutes: dict[str, float | None]
    resolution_minutes: dict[str, float | None]
    satisfaction: list[tuple[str, float, int]]
    abandoned_by_hour: list[int]
    repeat_window_days: int = 30
    live_days: int = 0  # days read from `ticket` rather than the roll-up
    # The operators' desk per local day and for the whole period, as the wallboard counts them.
    desk_days: list[tuple[date, dict[str, Any]]] = field(default_factory=list)
    desk_total: dict[str, Any] = field(default_factory=dict)
    # Incidents started in the period (`intake.incidents.statistics`).
    incidents: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def missed_calls(self) -> int:
        return sum(self.abandoned_by_hour)


def _bounds(start: date, end: date, config: HotlineConfig) -> tuple[datetime, datetime]:
    tz = config.timezone
    return datetime.combine(start, time(0), tz), datetime.combine(
        end + timedelta(days=1), time(0), tz
    )


def _summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "mean": None, "count": 0}
    return {
        "median": round(statistics.median(values), 1),
        "mean": round(statistics.fmean(values), 1),
        "count": len(values),
    }


def _hour(column: Any, dialect: str) -> Any:
    """The hour a moment falls in: local days and hours are worked out from it in Python, so the
    grouping is exact in any time zone with whole-hour offsets."""
    if dialect == "postgresql":
        return func.date_trunc("hour", column)
    return func.strftime("%Y-%m-%d %H", column)


def _days_before(column: Any, days: int, dialect: str) -> Any:
    if dialect == "postgresql":
        return column - func.make_interval(0, 0, 0, days)
    return func.strftime("%Y-%m-%d %H:%M:%f", column, f"-{days} days")


def _local_hour(bucket: str | datetime, tz: Any) -> datetime:
    if isinstance(bucket, datetime):
        return bucket.astimezone(tz)
    return datetime.strptime(bucket, "%Y-%m-%d %H").replace(tzinfo=UTC).astimezone(tz)


def desk_by_day(
    session: Session, days: list[date], config: HotlineConfig
) -> tuple[list[tuple[date, dict[str, Any]]], dict[str, Any]]:
    """Desk calls per local day that had any, and for the whole period (`intake.desk`'s
    definitions: offered, answered, abandoned, service level, ASA, AHT)."""
    since, until = _bounds(days[0], days[-1], config)
    calls = session.execute(
        select(
            DeskCall.id,
            DeskCall.status,
            DeskCall.entered_at,
            DeskCall.answered_at,
            DeskCall.ended_at,
            DeskCall.talk_seconds,
            DeskCall.wrap_seconds,
        ).where(DeskCall.entered_at >= since, DeskCall.entered_at < until)
    ).all()
    settings = config.voice.desk
    by_day: dict[date, list[Any]] = defaultdict(list)
    for call in calls:
        by_day[call.entered_at.astimezone(config.timezone).date()].append(call)
    per_day = [(day, call_figures(by_day[day], settings)) for day in days if day in by_day]
    return per_day, call_figures(calls, settings)


def _pct(met: int, missed: int) -> float | None:
    return round(100 * met / (met + missed), 1) if met + missed else None


def build_report(
    session: Session,
    start: date,
    end: date,
    config: HotlineConfig,
    language: str,
    now: datetime | None = None,
    *,
    live: bool = False,
) -> ReportData:
    """Every figure of the dashboard for local days start..end (inclusive).

    Ticket figures come from the daily roll-up for whole past days and from `ticket` for the rest
    (`intake.rollup`; every day with `live`). A ticket counts towards SLA attainment once its
    clock is decided: answered (met when in time) or its due time passed unanswered (missed); the
    ones still running are counted apart. A hot spot counts each incident once, however many
    tickets it grouped.
    """
    now = now or utcnow()
    since, until = _bounds(start, end, config)
    tz = config.timezone
    dialect = session.get_bind().dialect.name
    totals = rollup.period_totals(session, start, end, config, now, live=live)
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    day_index = {d: i for i, d in enumerate(days)}
    volume: dict[str, list[int]] = defaultdict(lambda: [0] * len(days))
    for (day, channel), n in totals.volume.items():
        if n and day in day_index:
            volume[channel][day_index[day]] += n
    total = sum(totals.volume.values())

    buildings = {b.id: b.name for b in session.scalars(select(Building))}
    hotspots: Counter[tuple[str, str]] = Counter()
    for (category, building_id), n in (totals.unlinked + totals.incidents).items():
        if n:
            hotspots[(category, buildings.get(building_id, "—") if building_id else "—")] += n

    window, repeat_categories = config.reports.repeat_window_days, config.reports.repeat_categories
    in_period = [
        Ticket.created_at >= since,
        Ticket.created_at < until,
        Ticket.merged_into_id.is_(None),
    ]
    earlier = aliased(Ticket)
    follows = (
        select(earlier.id)
        .where(
            earlier.unit_id == Ticket.unit_id,
            earlier.category.in_(repeat_categories),
            earlier.merged_into_id.is_(None),
            earlier.created_at < Ticket.created_at,
            earlier.created_at >= _days_before(Ticket.created_at, window, dialect),
        )
        .exists()
    )
    repeats = [
        (f"{buildings.get(building_id, '—')} {label}", category, n)
        for building_id, label, category, n in session.execute(
            select(Unit.building_id, Unit.label, Ticket.category, func.count())
            .join(Unit, Ticket.unit_id == Unit.id)
            .where(*in_period, Ticket.category.in_(repeat_categories), follows)
            .group_by(Unit.building_id, Unit.label, Ticket.category)
        )
    ]

    clocks = totals.clocks
    fr_running, res_running = totals.first_response_running, totals.resolution_running
    fr_met = clocks["first_response_met"]
    fr_missed = clocks["first_response_late"] + clocks["first_response_open"] - fr_running
    res_met = clocks["resolution_met"]
    res_missed = clocks["resolution_late"] + clocks["resolution_open"] - res_running

    departments = {d.id: d.name(language) for d in session.scalars(select(Department))}
    satisfaction = [
        (departments.get(dept_id, "—") if dept_id else "—", round(score / n, 2), n)
        for dept_id, (score, n) in totals.satisfaction.items()
        if n
    ]

    abandoned = [0] * 24
    missed_hour = _hour(Interaction.created_at, dialect)
    for bucket, n in session.execute(
        select(missed_hour, func.count())
        .where(
            Interaction.kind == "missed_call",
            Interaction.created_at >= since,
            Interaction.created_at < until,
        )
        .group_by(missed_hour)
    ):
        abandoned[_local_hour(bucket, tz).hour] += n
    desk_days, desk_total = desk_by_day(session, days, config)
    return ReportData(
        start=start,
        end=end,
        days=days,
        volume=dict(sorted(volume.items())),  # channels in one order: same colours every time
        total=total,
        hotspots=dict(hotspots),
        categories=sorted({c for c, _b in hotspots}),
        buildings=sorted({b for _c, b in hotspots}),
        repeats=sorted(repeats, key=lambda x: (-x[2], x[0])),
        sla={
            "first_response_met": fr_met,
            "first_response_missed": fr_missed,
            "first_response_running": fr_running,
            "first_response_pct": _pct(fr_met, fr_missed),
            "resolution_met": res_met,
            "resolution_missed": res_missed,
            "resolution_running": res_running,
            "resolution_pct": _pct(res_met, res_missed),
        },
        first_response_minutes=_summary(totals.first_response_minutes),
        resolution_minutes=_summary(totals.resolution_minutes),
        satisfaction=sorted(satisfaction, key=lambda x: (-x[1], x[0])),
        abandoned_by_hour=abandoned,
        repeat_window_days=window,
        live_days=len(totals.live_days),
        desk_days=desk_days,
        desk_total=desk_total,
        incidents=incidents.statistics(session, since, until),
    )


# Days outside these years are refused (400): the local day's bounds in UTC, and the day after
# the period, must stay within what `datetime` can hold.
MIN_YEAR, MAX_YEAR = 1900, 2999


def _period(default_month: str | None = None) -> tuple[date, date]:
    """`?month=YYYY-MM`, or `?from=&to=` (local days), default: the last 30 days."""
    config = current_app.config["HOTLINE_SETTINGS"].config
    today = utcnow().astimezone(config.timezone).date()
    try:
        month = request.args.get("month") or default_month
        if month:
            first = datetime.strptime(month, "%Y-%m").date()
            if not MIN_YEAR <= first.year <= MAX_YEAR:
                abort(400)
            next_first = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
            start, end = first, next_first - timedelta(days=1)
        else:
            start = (
                date.fromisoformat(request.args["from"])
                if request.args.get("from")
                else today - timedelta(days=29)
            )
            end = date.fromisoformat(request.args["to"]) if request.args.get("to") else today
    except (ValueError, OverflowError):
        abort(400)
    if (
        end < start
        or (end - start).days > 366
        or not (MIN_YEAR <= start.year <= end.year <= MAX_YEAR)
    ):
        abort(400)
    return start, end


def _charts(data: ReportData, config: HotlineConfig, language: str) -> dict[str, Any]:
    names = {c: channel_label(c) for c in data.volume}
    return {
        "volume": stacked_bars(
            [d.strftime("%m-%d") for d in data.days],
            {k: [float(x) for x in v] for k, v in data.volume.items()},
            _("Tickets per day by channel"),
            names,
        ),
        "abandoned": bars(
            [f"{h:02d}" for h in range(24)],
            [float(x) for x in data.abandoned_by_hour],
            _("Missed calls by hour"),
        ),
    }


def _category_name(code: str, config: HotlineConfig, language: str) -> str:
    cat = config.category(code)
    return cat.names.get(language, code) if cat else code


@bp.get("/dashboard")
@login_required(*STAFF)
def dashboard() -> Any:
    from web.i18n import current_language

    config = current_app.config["HOTLINE_SETTINGS"].config
    language = current_language()
    start, end = _period()
    data = build_report(g.db, start, end, config, language)
    return render_template(
        "dashboard.html",
        data=data,
        charts=_charts(data, config, language),
        category_name=lambda c: _category_name(c, config, language),
        hot_max=max(data.hotspots.values(), default=1),
        printable=False,
        args=request.args,
    )


@bp.get("/reports/monthly")
@login_required(*MANAGERS)
def monthly() -> Any:
    from web.i18n import current_language

    config = current_app.config["HOTLINE_SETTINGS"].config
    language = current_language()
    this_month = utcnow().astimezone(config.timezone).date()
    start, end = _period(this_month.strftime("%Y-%m"))
    data = build_report(g.db, start, end, config, language)
    return render_template(
        "dashboard.html",
        data=data,
        charts=_charts(data, config, language),
        category_name=lambda c: _category_name(c, config, language),
        hot_max=max(data.hotspots.values(), default=1),
        printable=True,
        args=request.args,
        company=config.company(language),
    )


@bp.get("/reports/<name>.csv")
@login_required(*STAFF)
def export(name: str) -> Any:
    from web.i18n import current_language

    if name not in REPORTS:
        abort(404)
    config = current_app.config["HOTLINE_SETTINGS"].config
    language = current_language()
    start, end = _period()
    data = build_report(g.db, start, end, config, language)
    out = io.StringIO()
    writer = csv.writer(out)
    if name == "volume":
        channels = sorted(data.volume)
        writer.writerow(["day", *channels, "total"])
        for i, day in enumerate(data.days):
            counts = [data.volume[c][i] for c in channels]
            writer.writerow([day.isoformat(), *counts, sum(counts)])
    elif name == "hotspots":
        writer.writerow(["category", "building", "tickets"])
        for (cat, building), n in sorted(data.hotspots.items(), key=lambda x: (-x[1], x[0])):
            writer.writerow([_category_name(cat, config, language), building, n])
    elif name == "repeats":
        writer.writerow(["unit", "category", f"repeats_within_{data.repeat_window_days}_days"])
        for unit, cat, n in data.repeats:
            writer.writerow([unit, _category_name(cat, config, language), n])
    elif name == "sla":
        writer.writerow(["measure", "value"])
        for key, value in data.sla.items():
            writer.writerow([key, "" if value is None else value])
        for key, value in data.first_response_minutes.items():
            writer.writerow([f"first_response_minutes_{key}", "" if value is None else value])
        for key, value in data.resolution_minutes.items():
            writer.writerow([f"resolution_minutes_{key}", "" if value is None else value])
    elif name == "satisfaction":
        writer.writerow(["department", "average", "responses"])
        writer.writerows(data.satisfaction)
    elif name == "incidents":
        writer.writerow(["measure", "value"])
        for key, value in data.incidents.items():
            writer.writerow([key, "" if value is None else value])
    elif name == "desk":
        threshold = data.desk_total["service_level_seconds"]
        writer.writerow(
            [
                "day",
                *[
                    f"service_level_within_{threshold}s" if c == "service_level" else c
                    for c in DESK_COLUMNS
                ],
            ]
        )
        labelled = [(d.isoformat(), f) for d, f in data.desk_days]
        for label, figures in [*labelled, ("total", data.desk_total)]:
            writer.writerow(
                [label, *["" if figures[c] is None else figures[c] for c in DESK_COLUMNS]]
            )
    else:
        writer.writerow(["hour", "missed_calls"])
        writer.writerows(enumerate(data.abandoned_by_hour))
    filename = f"{name}-{start.isoformat()}-{end.isoformat()}.csv"
    audit.record(g.db, "report_exported", **who(), target=name, start=str(start), end=str(end))
    g.db.commit()
    return Response(
        "\ufeff" + out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )

"""Dashboard and reports (投訴熱點分析, 統計總結): figures for a period, SVG charts, CSV, monthly print."""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, Response, abort, current_app, g, render_template, request
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.clock import utcnow
from intake.config import HotlineConfig
from intake.models import Building, Call, Department, Ticket, Unit
from web.auth import MANAGERS, STAFF, login_required
from web.charts import bars, stacked_bars
from web.labels import channel_label

bp = Blueprint("reports", __name__)
ABANDONED = ("no-answer", "canceled", "busy", "abandoned")
REPORTS = ("volume", "hotspots", "repeats", "sla", "satisfaction", "abandoned")


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
    extra: dict[str, Any] = field(default_factory=dict)


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


def build_report(
    session: Session, start: date, end: date, config: HotlineConfig, language: str
) -> ReportData:
    """Every figure of the dashboard for local days start..end (inclusive)."""
    since, until = _bounds(start, end, config)
    tz = config.timezone
    rows = session.execute(
        select(
            Ticket.id,
            Ticket.channel,
            Ticket.category,
            Ticket.created_at,
            Ticket.first_response_due_at,
            Ticket.first_responded_at,
            Ticket.resolution_due_at,
            Ticket.resolved_at,
            Ticket.satisfaction,
            Ticket.department_id,
            Ticket.unit_id,
        ).where(
            Ticket.created_at >= since, Ticket.created_at < until, Ticket.merged_into_id.is_(None)
        )
    ).all()
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    day_index = {d: i for i, d in enumerate(days)}
    volume: dict[str, list[int]] = defaultdict(lambda: [0] * len(days))
    units = {
        u.id: (b.code, u.label)
        for u, b in session.execute(
            select(Unit, Building).join(Building, Unit.building_id == Building.id)
        )
    }
    hotspots: Counter[tuple[str, str]] = Counter()
    per_unit: Counter[tuple[str, str]] = Counter()
    first_times, resolve_times = [], []
    fr_met = fr_total = res_met = res_total = 0
    sat: dict[int | None, list[int]] = defaultdict(list)
    for r in rows:
        local_day = r.created_at.astimezone(tz).date()
        if local_day in day_index:
            volume[r.channel][day_index[local_day]] += 1
        building = units[r.unit_id][0] if r.unit_id in units else "—"
        hotspots[(r.category, building)] += 1
        if r.unit_id in units:
            per_unit[(" ".join(units[r.unit_id]), r.category)] += 1
        if r.first_responded_at:
            first_times.append((r.first_responded_at - r.created_at).total_seconds() / 60)
        if r.resolved_at:
            resolve_times.append((r.resolved_at - r.created_at).total_seconds() / 60)
        if r.first_response_due_at:
            fr_total += 1
            fr_met += bool(r.first_responded_at and r.first_responded_at <= r.first_response_due_at)
        if r.resolution_due_at and (r.resolved_at or r.resolution_due_at < until):
            res_total += 1
            res_met += bool(r.resolved_at and r.resolved_at <= r.resolution_due_at)
        if r.satisfaction:
            sat[r.department_id].append(r.satisfaction)
    departments = {d.id: d.name(language) for d in session.scalars(select(Department))}
    abandoned = [0] * 24
    for started, status, meta in session.execute(
        select(Call.started_at, Call.status, Call.meta).where(
            Call.started_at >= since, Call.started_at < until, Call.direction == "inbound"
        )
    ):
        if status in ABANDONED or (meta or {}).get("abandoned"):
            abandoned[started.astimezone(tz).hour] += 1
    return ReportData(
        start=start,
        end=end,
        days=days,
        volume=dict(volume),
        total=len(rows),
        hotspots=dict(hotspots),
        categories=sorted({c for c, _b in hotspots}),
        buildings=sorted({b for _c, b in hotspots}),
        repeats=sorted(
            ((unit, cat, n) for (unit, cat), n in per_unit.items() if n >= 2),
            key=lambda x: (-x[2], x[0]),
        ),
        sla={
            "first_response_met": fr_met,
            "first_response_total": fr_total,
            "first_response_pct": round(100 * fr_met / fr_total, 1) if fr_total else None,
            "resolution_met": res_met,
            "resolution_total": res_total,
            "resolution_pct": round(100 * res_met / res_total, 1) if res_total else None,
        },
        first_response_minutes=_summary(first_times),
        resolution_minutes=_summary(resolve_times),
        satisfaction=sorted(
            (
                (
                    departments.get(dept_id, "—") if dept_id else "—",
                    round(statistics.fmean(v), 2),
                    len(v),
                )
                for dept_id, v in sat.items()
            ),
            key=lambda x: -x[1],
        ),
        abandoned_by_hour=abandoned,
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
            _("Abandoned calls by hour"),
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
    last_month = utcnow().astimezone(config.timezone).date().replace(day=1) - timedelta(days=1)
    start, end = _period(last_month.strftime("%Y-%m"))
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
    start, end = _period()
    data = build_report(g.db, start, end, config, current_language())
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
        for (cat, building), n in sorted(data.hotspots.items(), key=lambda x: -x[1]):
            writer.writerow([cat, building, n])
    elif name == "repeats":
        writer.writerow(["unit", "category", "tickets"])
        writer.writerows(data.repeats)
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
    else:
        writer.writerow(["hour", "abandoned_calls"])
        writer.writerows(enumerate(data.abandoned_by_hour))
    filename = f"{name}-{start.isoformat()}-{end.isoformat()}.csv"
    return Response(
        "\ufeff" + out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )

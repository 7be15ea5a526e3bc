"""The dashboard's daily roll-up: whole past days summed once, today and changed days live.

`report_day` holds, per local day (the centre's time zone), channel, category, department and
building, the ticket count, the SLA clocks (met, late, not answered yet) and satisfaction sums;
`report_day_state` says which days it holds and keeps their durations (a median needs every
value). Triggers on `ticket` (migration 0017) note the UTC day of every ticket added or changed
in `report_stale`, so whoever writes a ticket, by ORM, Core or SQL, cannot forget to.

Reading a period (`period_totals`): days before today that the roll-up holds, in the configured
time zone and not marked stale, come from the roll-up; every other day is computed live from
`ticket` by the same `day_cells` that fills the roll-up, so the figures are the live ones. What
depends on the present moment (clocks still running) and on other rows (each incident once) is
read live for the whole period through indexes.

`refresh` (the worker's `refresh_report_days`, every five minutes, and `hotline reports rollup`)
recomputes stale days, fills days the roll-up lacks and, once a night, the last days again.
Idempotent: a day is deleted and written again in one transaction.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from intake.clock import utcnow
from intake.config import HotlineConfig
from intake.models import ReportDay, ReportDayState, ReportStale, Ticket, Unit

CLOCKS = (
    "first_response_met",
    "first_response_late",
    "first_response_open",
    "resolution_met",
    "resolution_late",
    "resolution_open",
)
MINUTES_DIGITS = 4  # durations are kept to 1/10,000 minute; the dashboard shows 1/10


def local_day_bounds(day: date, config: HotlineConfig) -> tuple[datetime, datetime]:
    """The UTC-comparable start of `day` and of the day after, in the centre's time zone."""
    tz = config.timezone
    return datetime.combine(day, time(0), tz), datetime.combine(
        day + timedelta(days=1), time(0), tz
    )


def minutes_between(later: Any, earlier: Any, dialect: str) -> Any:
    """Minutes from `earlier` to `later`, as a SQL expression."""
    if dialect == "postgresql":
        return func.extract("epoch", later - earlier) / 60.0
    return (func.julianday(later) - func.julianday(earlier)) * 1440.0


def _clock(due: Any, done: Any) -> list[Any]:
    timed = due.is_not(None)
    return [
        func.coalesce(func.sum(case((condition, 1), else_=0)), 0)
        for condition in (
            and_(timed, done.is_not(None), done <= due),
            and_(timed, done.is_not(None), done > due),
            and_(timed, done.is_(None)),
        )
    ]


@dataclass
class DayRows:
    """One local day's roll-up rows and durations, computed from `ticket`."""

    cells: list[dict[str, Any]]
    first_response_minutes: list[float]
    resolution_minutes: list[float]


def day_cells(session: Session, day: date, config: HotlineConfig) -> DayRows:
    """The roll-up rows of one local day, straight from `ticket`."""
    since, until = local_day_bounds(day, config)
    dialect = session.get_bind().dialect.name
    where = [Ticket.created_at >= since, Ticket.created_at < until, Ticket.merged_into_id.is_(None)]
    keys = (Ticket.channel, Ticket.category, Ticket.department_id, Unit.building_id)
    statement = (
        select(
            *keys,
            func.count(),
            func.coalesce(func.sum(case((Ticket.incident_id.is_not(None), 1), else_=0)), 0),
            *_clock(Ticket.first_response_due_at, Ticket.first_responded_at),
            *_clock(Ticket.resolution_due_at, Ticket.resolved_at),
            func.coalesce(func.sum(Ticket.satisfaction), 0),
            func.count(Ticket.satisfaction),
        )
        .select_from(Ticket)
        .outerjoin(Unit, Ticket.unit_id == Unit.id)
        .where(*where)
        .group_by(*keys)
    )
    keys_names = ("channel", "category", "department_id", "building_id")
    sum_names = ("tickets", "linked", *CLOCKS, "satisfaction_sum", "satisfaction_count")
    cells = [
        {
            "day": day,
            **dict(zip(keys_names, row[:4], strict=True)),
            **{n: int(v) for n, v in zip(sum_names, row[4:], strict=True)},
        }
        for row in session.execute(statement)
    ]
    first: list[float] = []
    resolution: list[float] = []
    for to_first, to_resolution in session.execute(
        select(
            minutes_between(Ticket.first_responded_at, Ticket.created_at, dialect),
            minutes_between(Ticket.resolved_at, Ticket.created_at, dialect),
        ).where(
            *where,
            (Ticket.first_responded_at.is_not(None)) | (Ticket.resolved_at.is_not(None)),
        )
    ):
        if to_first is not None:
            first.append(round(float(to_first), MINUTES_DIGITS))
        if to_resolution is not None:
            resolution.append(round(float(to_resolution), MINUTES_DIGITS))
    return DayRows(cells, first, resolution)


@dataclass
class PeriodTotals:
    """A period's ticket figures, added up from roll-up days and live days alike."""

    volume: Counter[tuple[date, str]] = field(default_factory=Counter)
    # Tickets not linked to an incident, per (category, building id).
    unlinked: Counter[tuple[str, int | None]] = field(default_factory=Counter)
    satisfaction: dict[int | None, list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0])
    )
    clocks: Counter[str] = field(default_factory=Counter)
    first_response_minutes: list[float] = field(default_factory=list)
    resolution_minutes: list[float] = field(default_factory=list)
    first_response_running: int = 0
    resolution_running: int = 0
    # Incidents with tickets in the period, per (category, building id): each counts once.
    incidents: Counter[tuple[str, int | None]] = field(default_factory=Counter)
    live_days: list[date] = field(default_factory=list)

    def add(self, cell: dict[str, Any]) -> None:
        self.volume[(cell["day"], cell["channel"])] += cell["tickets"]
        self.unlinked[(cell["category"], cell["building_id"])] += cell["tickets"] - cell["linked"]
        scores = self.satisfaction[cell["department_id"]]
        scores[0] += cell["satisfaction_sum"]
        scores[1] += cell["satisfaction_count"]
        for name in CLOCKS:
            self.clocks[name] += cell[name]


def stale_days(session: Session) -> set[date]:
    """Local days a change since the last refresh may have touched (a UTC day overlaps the local
    day before, of and after it in any time zone)."""
    days: set[date] = set()
    for utc_day in session.scalars(select(ReportStale.utc_day).distinct()):
        try:
            day = date.fromisoformat(utc_day)
        except ValueError:
            continue
        days.update(day + timedelta(days=k) for k in (-1, 0, 1))
    return days


def rolled_up_days(
    session: Session, start: date, end: date, config: HotlineConfig, now: datetime
) -> set[date]:
    """Days of start..end the roll-up holds up to date: before today, in this time zone."""
    today = now.astimezone(config.timezone).date()
    held = set(
        session.scalars(
            select(ReportDayState.day).where(
                ReportDayState.day >= start,
                ReportDayState.day <= end,
                ReportDayState.day < today,
                ReportDayState.timezone == config.timezone.key,
            )
        )
    )
    return held - stale_days(session) if held else held


def period_totals(
    session: Session,
    start: date,
    end: date,
    config: HotlineConfig,
    now: datetime | None = None,
    *,
    live: bool = False,
) -> PeriodTotals:
    """Ticket figures of local days start..end: the roll-up where it holds a day, `ticket` for
    the rest (every day when `live`)."""
    now = now or utcnow()
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    held = set() if live else rolled_up_days(session, start, end, config, now)
    totals = PeriodTotals(live_days=[d for d in days if d not in held])
    if held:
        _add_rolled_up(session, sorted(held), totals)
    for day in totals.live_days:
        rows = day_cells(session, day, config)
        for cell in rows.cells:
            totals.add(cell)
        totals.first_response_minutes += rows.first_response_minutes
        totals.resolution_minutes += rows.resolution_minutes
    since = local_day_bounds(start, config)[0]
    until = local_day_bounds(end, config)[1]
    in_period = [
        Ticket.created_at >= since,
        Ticket.created_at < until,
        Ticket.merged_into_id.is_(None),
    ]
    totals.first_response_running, totals.resolution_running = _running(session, in_period, now)
    for category, building_id, n in session.execute(
        select(Ticket.category, Unit.building_id, func.count(func.distinct(Ticket.incident_id)))
        .select_from(Ticket)
        .outerjoin(Unit, Ticket.unit_id == Unit.id)
        .where(*in_period, Ticket.incident_id.is_not(None))
        .group_by(Ticket.category, Unit.building_id)
    ):
        totals.incidents[(category, building_id)] += n
    return totals


def _running(session: Session, in_period: list[Any], now: datetime) -> tuple[int, int]:
    """First-response and resolution clocks of the period's tickets not answered and not due
    yet, in one pass over the two partial indexes of unanswered tickets' due times."""
    first = and_(Ticket.first_responded_at.is_(None), Ticket.first_response_due_at > now)
    resolution = and_(Ticket.resolved_at.is_(None), Ticket.resolution_due_at > now)
    row = session.execute(
        select(
            func.coalesce(func.sum(case((first, 1), else_=0)), 0),
            func.coalesce(func.sum(case((resolution, 1), else_=0)), 0),
        ).where(or_(first, resolution), *in_period)
    ).one()
    return int(row[0]), int(row[1])


def _add_rolled_up(session: Session, held: list[date], totals: PeriodTotals) -> None:
    within = ReportDay.day.in_(held)
    for day, channel, n in session.execute(
        select(ReportDay.day, ReportDay.channel, func.sum(ReportDay.tickets))
        .where(within)
        .group_by(ReportDay.day, ReportDay.channel)
    ):
        totals.volume[(day, channel)] += int(n)
    for category, building_id, n in session.execute(
        select(
            ReportDay.category,
            ReportDay.building_id,
            func.sum(ReportDay.tickets - ReportDay.linked),
        )
        .where(within)
        .group_by(ReportDay.category, ReportDay.building_id)
    ):
        totals.unlinked[(category, building_id)] += int(n)
    for department_id, total, n in session.execute(
        select(
            ReportDay.department_id,
            func.sum(ReportDay.satisfaction_sum),
            func.sum(ReportDay.satisfaction_count),
        )
        .where(within)
        .group_by(ReportDay.department_id)
    ):
        scores = totals.satisfaction[department_id]
        scores[0] += int(total)
        scores[1] += int(n)
    sums = session.execute(
        select(*[func.coalesce(func.sum(getattr(ReportDay, n)), 0) for n in CLOCKS]).where(within)
    ).one()
    for name, value in zip(CLOCKS, sums, strict=True):
        totals.clocks[name] += int(value)
    for first, resolution in session.execute(
        select(ReportDayState.first_response_minutes, ReportDayState.resolution_minutes).where(
            ReportDayState.day.in_(held)
        )
    ):
        totals.first_response_minutes += first or []
        totals.resolution_minutes += resolution or []


# --- keeping it ---------------------------------------------------------------------------


def write_day(session: Session, day: date, config: HotlineConfig, now: datetime) -> None:
    """Replace one day's roll-up with what `ticket` says now (the caller commits)."""
    rows = day_cells(session, day, config)
    forget_day(session, day)
    if rows.cells:
        session.execute(insert(ReportDay), rows.cells)
    session.add(
        ReportDayState(
            day=day,
            timezone=config.timezone.key,
            first_response_minutes=rows.first_response_minutes,
            resolution_minutes=rows.resolution_minutes,
            computed_at=now,
        )
    )
    session.flush()


def forget_day(session: Session, day: date) -> None:
    session.execute(delete(ReportDay).where(ReportDay.day == day))
    session.execute(delete(ReportDayState).where(ReportDayState.day == day))


@dataclass
class RefreshResult:
    written: list[date]
    stale_days_cleared: int  # distinct UTC days whose marks were cleared


def refresh(
    session: Session,
    config: HotlineConfig,
    now: datetime | None = None,
    *,
    recent_days: int = 0,
    backfill: int = 90,
    everything: bool = False,
) -> RefreshResult:
    """Bring the roll-up up to date: days marked stale, up to `backfill` days it lacks (newest
    first), and the last `recent_days` days again; with `everything`, every day since the first
    ticket is rewritten (after a unit moved building, say).

    The stale marks are deleted and their days rewritten in one transaction: a reader sees
    either the old rows and the marks (so it reads those days live) or the new rows; a change
    committed meanwhile keeps its mark for the next refresh."""
    now = now or utcnow()
    today = now.astimezone(config.timezone).date()
    held = {
        day
        for day, tz in session.execute(select(ReportDayState.day, ReportDayState.timezone))
        if tz == config.timezone.key
    }
    # A day held that is now today or later (the clock went back) is no longer trusted.
    for day in sorted(d for d in held if d >= today):
        forget_day(session, day)
    session.commit()
    written: list[date] = []
    cleared = 0
    top = session.scalar(select(func.max(ReportStale.id)))
    if top is not None:
        # The days come back from the DELETE itself: a mark committed between two statements is
        # either deleted with its day known, or left for the next refresh.
        utc_days = set(
            session.scalars(
                delete(ReportStale).where(ReportStale.id <= top).returning(ReportStale.utc_day)
            )
        )
        cleared = len(utc_days)
        touched: set[date] = set()
        for utc_day in utc_days:
            with suppress(ValueError):
                day = date.fromisoformat(utc_day)
                touched.update(day + timedelta(days=k) for k in (-1, 0, 1))
        try:
            for day in sorted(d for d in touched if d < today):
                write_day(session, day, config, now)
                written.append(day)
            session.commit()
        except IntegrityError:  # another refresh wrote a day meanwhile; the marks stay
            session.rollback()
            written, cleared = [], 0
        held |= set(written)
    todo = {today - timedelta(days=k) for k in range(1, recent_days + 1)}
    first = session.scalar(select(func.min(Ticket.created_at)))
    if first is not None:
        first_day = first.astimezone(config.timezone).date()
        day, lacking = today - timedelta(days=1), 0
        while day >= first_day and (everything or lacking < backfill):
            if everything or day not in held:
                todo.add(day)
                lacking += 1
            day -= timedelta(days=1)
    for day in sorted(todo - set(written)):
        try:
            write_day(session, day, config, now)
            session.commit()
            written.append(day)
        except IntegrityError:  # another refresh wrote it meanwhile
            session.rollback()
    return RefreshResult(sorted(written), cleared)

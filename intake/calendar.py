"""Business time: opening hours, public holidays and quiet hours from the configuration."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

import holidays as holidays_lib

from intake.config import HotlineConfig


@lru_cache(maxsize=16)
def holiday_calendar(
    country: str | None, subdivision: str | None, year: int
) -> holidays_lib.HolidayBase | dict[date, str]:
    if not country:
        return {}
    return holidays_lib.country_holidays(country, subdiv=subdivision, years=[year])


def is_holiday(day: date, config: HotlineConfig) -> bool:
    return day in holiday_calendar(config.holiday_country, config.holiday_subdivision, day.year)


def opening_on(day: date, config: HotlineConfig) -> tuple[datetime, datetime] | None:
    """Today's opening span as aware datetimes in the centre's zone, or None when closed."""
    if is_holiday(day, config):
        return None
    span = config.business_hours.get(day.weekday())
    if span is None:
        return None
    tz = config.timezone
    return datetime.combine(day, span[0], tz), datetime.combine(day, span[1], tz)


def is_open(moment: datetime, config: HotlineConfig) -> bool:
    local = moment.astimezone(config.timezone)
    span = opening_on(local.date(), config)
    return span is not None and span[0] <= local < span[1]


def next_opening(moment: datetime, config: HotlineConfig) -> datetime:
    """`moment` itself when open, else the start of the next opening span (in UTC)."""
    local = moment.astimezone(config.timezone)
    for offset in range(0, 60):
        day = local.date() + timedelta(days=offset)
        span = opening_on(day, config)
        if span is None:
            continue
        if local < span[0]:
            return span[0].astimezone(UTC)
        if local < span[1]:
            return moment.astimezone(UTC)
    raise ValueError("no business hours in the next 60 days: check business_hours and holidays")


def add_business_minutes(start: datetime, minutes: int, config: HotlineConfig) -> datetime:
    """The moment `minutes` of opening time after `start`."""
    remaining = timedelta(minutes=minutes)
    cursor = next_opening(start, config).astimezone(config.timezone)
    while True:
        span = opening_on(cursor.date(), config)
        if span is not None and span[0] <= cursor < span[1]:
            left_today = span[1] - cursor
            if remaining <= left_today:
                return (cursor + remaining).astimezone(UTC)
            remaining -= left_today
        cursor = next_opening(
            datetime.combine(cursor.date() + timedelta(days=1), time(0), config.timezone), config
        ).astimezone(config.timezone)


def in_quiet_hours(moment: datetime, config: HotlineConfig) -> bool:
    if config.quiet_hours is None:
        return False
    start, end = config.quiet_hours
    t = moment.astimezone(config.timezone).time()
    return (start <= t or t < end) if start > end else (start <= t < end)


def after_quiet_hours(moment: datetime, config: HotlineConfig) -> datetime:
    """`moment` itself outside quiet hours, else the moment they end (in UTC): when a message that
    would wake a resident may go."""
    if not in_quiet_hours(moment, config):
        return moment.astimezone(UTC)
    assert config.quiet_hours is not None
    local = moment.astimezone(config.timezone)
    end = datetime.combine(local.date(), config.quiet_hours[1], config.timezone)
    if end <= local:
        end = datetime.combine(
            local.date() + timedelta(days=1), config.quiet_hours[1], config.timezone
        )
    return end.astimezone(UTC)


def describe_hours(config: HotlineConfig, language: str) -> str:
    """Opening hours as a short phrase for prompts, e.g. "Mon-Fri 09:00-18:00, Sat 09:00-12:00"."""
    from babel.dates import get_day_names

    locale = {"zh-Hant": "zh_Hant_TW", "zh-Hans": "zh_Hans_CN"}.get(language, "en")
    names = get_day_names("abbreviated", locale=locale)
    groups: list[tuple[list[int], tuple[time, time]]] = []
    for day in range(7):
        span = config.business_hours.get(day)
        if span is None:
            continue
        if groups and groups[-1][1] == span and groups[-1][0][-1] == day - 1:
            groups[-1][0].append(day)
        else:
            groups.append(([day], span))
    sep = "、" if language != "en" else ", "
    parts = []
    for days, (a, b) in groups:
        label = names[days[0]] if len(days) == 1 else f"{names[days[0]]}-{names[days[-1]]}"
        parts.append(f"{label} {a:%H:%M}-{b:%H:%M}")
    return sep.join(parts)

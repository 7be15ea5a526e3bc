from __future__ import annotations

from datetime import UTC, datetime

from intake.calendar import add_business_minutes, in_quiet_hours, is_open, next_opening
from intake.config import load_config

CONFIG = load_config()
TPE = CONFIG.timezone


def test_friday_night_before_a_public_holiday_waits_for_monday():
    friday_night = datetime(2026, 10, 9, 22, 40, tzinfo=TPE)  # Saturday 10 October is National Day
    assert not is_open(friday_night, CONFIG)
    assert next_opening(friday_night, CONFIG) == datetime(
        2026, 10, 12, 9, 0, tzinfo=TPE
    ).astimezone(UTC)


def test_business_minutes_skip_the_night_and_sunday():
    start = datetime(2026, 11, 28, 11, 0, tzinfo=TPE)  # Saturday, open 09:00-12:00
    due = add_business_minutes(start, 120, CONFIG)
    assert due.astimezone(TPE) == datetime(2026, 11, 30, 10, 0, tzinfo=TPE)


def test_quiet_hours_span_midnight():
    assert in_quiet_hours(datetime(2026, 11, 30, 23, 0, tzinfo=TPE), CONFIG)
    assert in_quiet_hours(datetime(2026, 11, 30, 8, 59, tzinfo=TPE), CONFIG)
    assert not in_quiet_hours(datetime(2026, 11, 30, 9, 0, tzinfo=TPE), CONFIG)

"""Schedules against known dates: intervals, crontab fields, month ends, leap days and daylight-saving changes."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest

from celeriac.errors import ConfigurationError
from celeriac.schedules import SOLAR_EVENTS, as_schedule, crontab, schedule, solar, zone

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")


def at(*parts: int, tz: dt.tzinfo = UTC) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=tz)  # type: ignore[misc]


def walk(rule: crontab | schedule, start: dt.datetime, count: int, tz: dt.tzinfo = UTC) -> list[dt.datetime]:
    slots = [rule.next_after(start, tz)]
    while len(slots) < count:
        slots.append(rule.next_after(slots[-1], tz))
    return slots


def test_an_interval_counts_from_the_slot_before() -> None:
    rule = as_schedule(dt.timedelta(minutes=5))
    assert walk(rule, at(2026, 1, 1, 0, 0), 3) == [at(2026, 1, 1, 0, 5), at(2026, 1, 1, 0, 10), at(2026, 1, 1, 0, 15)]
    assert as_schedule(1.5).next_after(at(2026, 1, 1)) == at(2026, 1, 1, 0, 0, 1) + dt.timedelta(microseconds=500000)


@pytest.mark.parametrize("bad", [0, -1, dt.timedelta(0), True, "10"])
def test_a_bad_interval_is_a_one_line_error(bad: object) -> None:
    with pytest.raises(ConfigurationError):
        as_schedule(bad)


def test_crontab_fields_as_celery_takes_them() -> None:
    weekdays_at_nine = crontab(minute=0, hour=9, day_of_week="mon-fri")
    friday = at(2026, 12, 4, 10, 0)  # a Friday, after nine
    assert walk(weekdays_at_nine, friday, 2) == [at(2026, 12, 7, 9, 0), at(2026, 12, 8, 9, 0)]
    assert crontab(minute="*/15").next_after(at(2026, 12, 4, 10, 7)) == at(2026, 12, 4, 10, 15)
    sunday = crontab(minute=0, hour=0, day_of_week=0)
    assert sunday.next_after(friday) == at(2026, 12, 6, 0, 0)
    assert crontab(minute=0, hour=0, day_of_week=7).next_after(friday) == at(2026, 12, 6, 0, 0)


def test_month_ends_and_leap_days() -> None:
    on_the_31st = crontab(minute=0, hour=0, day_of_month=31)
    assert walk(on_the_31st, at(2026, 1, 31, 1, 0), 3) == [at(2026, 3, 31), at(2026, 5, 31), at(2026, 7, 31)]
    leap_day = crontab(minute=0, hour=12, day_of_month=29, month_of_year=2)
    assert leap_day.next_after(at(2026, 3, 1)) == at(2028, 2, 29, 12, 0)
    new_year = crontab(minute=0, hour=0, day_of_month=1, month_of_year=1)
    assert new_year.next_after(at(2026, 12, 31, 23, 59)) == at(2027, 1, 1)


def test_a_slot_in_the_skipped_hour_fires_when_the_clock_jumps_past_it() -> None:
    half_past_two = crontab(minute=30, hour=2)
    # Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that night.
    slots = walk(half_past_two, at(2026, 3, 28, 12, 0), 3, BERLIN)
    assert [s.astimezone(BERLIN).strftime("%m-%d %H:%M %Z") for s in slots] == [
        "03-29 03:00 CEST",
        "03-30 02:30 CEST",
        "03-31 02:30 CEST",
    ]


def test_a_repeated_wall_clock_time_fires_once_unless_the_hour_is_a_wildcard() -> None:
    # Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:00-02:59 happens twice.
    night = at(2026, 10, 24, 12, 0)
    daily = walk(crontab(minute=30, hour=2), night, 2, BERLIN)
    assert [s.astimezone(BERLIN).strftime("%m-%d %H:%M %Z") for s in daily] == ["10-25 02:30 CEST", "10-26 02:30 CET"]
    hourly = walk(crontab(minute=30), at(2026, 10, 24, 23, 0), 4, BERLIN)
    assert [s.astimezone(BERLIN).strftime("%H:%M %Z") for s in hourly] == [
        "01:30 CEST",
        "02:30 CEST",
        "02:30 CET",
        "03:30 CET",
    ]


def test_bad_crontabs_and_zones_are_one_line_errors() -> None:
    with pytest.raises(ConfigurationError, match="not a valid cron schedule"):
        crontab(minute=61)
    with pytest.raises(ConfigurationError, match="cron field"):
        crontab(hour=1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="unknown time zone 'Mars/Olympus'"):
        zone("Mars/Olympus")
    assert zone("utc") is UTC


LONDON = (51.5074, -0.1278)


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


def near(found: dt.datetime, expected: dt.datetime, minutes: float = 3) -> bool:
    return abs((found - expected).total_seconds()) <= minutes * 60


def test_solar_events_match_the_almanac() -> None:
    """London's published times: sunrise 04:43 BST on the June solstice, sunset 15:53 GMT on the December one,
    solar noon near 13:02 BST; the day's events come in their natural order."""
    assert near(solar("sunrise", *LONDON).next_after(utc(2026, 6, 21)), utc(2026, 6, 21, 3, 43))
    assert near(solar("sunset", *LONDON).next_after(utc(2026, 12, 21)), utc(2026, 12, 21, 15, 53))
    assert near(solar("solar_noon", *LONDON).next_after(utc(2026, 6, 21)), utc(2026, 6, 21, 12, 2))
    madrid_day = [solar(event, 40.4168, -3.7038).next_after(utc(2026, 3, 20)) for event in SOLAR_EVENTS]
    assert madrid_day == sorted(madrid_day) and madrid_day[-1] - madrid_day[0] < dt.timedelta(days=1)


def test_a_solar_slot_is_strictly_after_the_moment_and_daily() -> None:
    sunrise = solar("sunrise", *LONDON)
    first = sunrise.next_after(utc(2026, 6, 21))
    second = sunrise.next_after(first)
    assert second > first and dt.timedelta(hours=23) < second - first < dt.timedelta(hours=25)


def test_a_solar_event_that_skips_days_is_due_on_the_next_day_it_happens() -> None:
    # London has no astronomical night around midsummer: the next astronomical dawn is weeks later.
    dawn = solar("dawn_astronomical", *LONDON).next_after(utc(2026, 6, 21))
    assert utc(2026, 7, 10) < dawn < utc(2026, 8, 15)
    # Near the North Pole the sun sets once in September and rises once in March.
    assert utc(2026, 9, 1) < solar("sunset", 89.9, 0).next_after(utc(2026, 6, 1)) < utc(2026, 10, 15)
    assert utc(2027, 3, 1) < solar("sunrise", 89.9, 0).next_after(utc(2026, 6, 1)) < utc(2027, 4, 15)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("moonrise", 0, 0), "solar event must be one of dawn_astronomical"),
        (("sunrise", 91, 0), "solar latitude must be a number of degrees in [-90, 90], not 91"),
        (("sunrise", 0, "east"), "solar longitude must be a number"),
    ],
)
def test_bad_solar_schedules_are_one_line_errors(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        solar(*args)  # type: ignore[arg-type]
    assert as_schedule(solar("sunset", 0, 0)).describe() == "solar('sunset', 0, 0)"

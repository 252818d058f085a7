"""When periodic tasks are due: `schedule` (a fixed interval), `crontab` (Celery's names and fields) and `solar`.

A schedule is a pure rule over time: `Schedule.next_after(moment)` is the first slot strictly after ``moment``.
Beat anchors each entry once (its first sight, recorded in the cluster) and then walks the slots from there, so
every beat process computes the same slots for an entry, whichever of them leads.

`crontab` reads cron expressions with croniter (the ``beat`` extra), in the app's ``timezone``: slots follow
wall-clock time there, across daylight-saving changes as cron does: a 02:30 slot fires at 03:00 on the night the
clock jumps from 02:00 to 03:00, and once (not twice) on the night 02:30 happens twice; an entry whose hour is a
wildcard (``hour="*"``) fires in both runs of the repeated hour, as it does in every other hour.

`solar` computes sunrise, sunset, dawns, dusks and solar noon at a place with ephem (also in the ``beat`` extra).
"""

from __future__ import annotations

import abc
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celeriac.errors import ConfigurationError

UTC = dt.UTC


def zone(name: str) -> dt.tzinfo:
    """The time zone called ``name`` (the ``timezone`` setting); a one-line error when there is none."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(f"setting 'timezone': unknown time zone {name!r}") from exc


class Schedule(abc.ABC):
    """A rule that says when an entry is due: a strictly increasing series of aware datetimes (its slots)."""

    @abc.abstractmethod
    def next_after(self, moment: dt.datetime, tz: dt.tzinfo = UTC) -> dt.datetime:
        """The first slot strictly after the aware datetime ``moment`` (UTC); ``tz`` is the app's time zone."""

    @abc.abstractmethod
    def describe(self) -> str:
        """A short, stable text for tables and logs; it changes when the rule does (beat re-anchors then)."""

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


class schedule(Schedule):
    """Every ``run_every`` (a `timedelta` or seconds): slots ``anchor + k * run_every``."""

    def __init__(self, run_every: dt.timedelta | float) -> None:
        seconds = run_every.total_seconds() if isinstance(run_every, dt.timedelta) else run_every
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
            raise ConfigurationError(
                f"a schedule's interval must be a positive timedelta or seconds, not {run_every!r}"
            )
        self.run_every = dt.timedelta(seconds=float(seconds))

    def next_after(self, moment: dt.datetime, tz: dt.tzinfo = UTC) -> dt.datetime:
        return moment + self.run_every

    def describe(self) -> str:
        return f"every {self.run_every.total_seconds():g}s"


class crontab(Schedule):
    """Cron fields as Celery takes them: ``minute``, ``hour``, ``day_of_week`` (0 or 7 = Sunday, or names),
    ``day_of_month``, ``month_of_year``; each a cron field string (``"*/15"``, ``"mon-fri"``, ``"1,15"``) or an int.

    As in cron (and Celery), when both ``day_of_month`` and ``day_of_week`` are restricted a day matching either
    one is due.
    """

    def __init__(
        self,
        minute: str | int = "*",
        hour: str | int = "*",
        day_of_week: str | int = "*",
        day_of_month: str | int = "*",
        month_of_year: str | int = "*",
    ) -> None:
        fields = {
            "minute": minute,
            "hour": hour,
            "day_of_week": day_of_week,
            "day_of_month": day_of_month,
            "month_of_year": month_of_year,
        }
        for name, value in fields.items():
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise ConfigurationError(f"crontab {name} must be a cron field string or an int, not {value!r}")
        self.minute, self.hour = str(minute), str(hour)
        self.day_of_week, self.day_of_month, self.month_of_year = (
            str(day_of_week),
            str(day_of_month),
            str(month_of_year),
        )
        self.expression = " ".join([self.minute, self.hour, self.day_of_month, self.month_of_year, self.day_of_week])
        croniter = _croniter()
        if not croniter.is_valid(self.expression):
            raise ConfigurationError(f"crontab({self._arguments()}) is not a valid cron schedule")

    def next_after(self, moment: dt.datetime, tz: dt.tzinfo = UTC) -> dt.datetime:
        found: dt.datetime = _croniter()(self.expression, moment.astimezone(tz)).get_next(dt.datetime)
        if self.hour != "*" and _second_run(found, tz):
            # The wall-clock time repeats (the clock went back) and this is its second run: fired already.
            found = _croniter()(self.expression, found).get_next(dt.datetime)
        return found.astimezone(UTC)

    def describe(self) -> str:
        return f"crontab({self._arguments()})"

    def _arguments(self) -> str:
        return (
            f"minute={self.minute!r}, hour={self.hour!r}, day_of_week={self.day_of_week!r}, "
            f"day_of_month={self.day_of_month!r}, month_of_year={self.month_of_year!r}"
        )


# Celery's solar event names: (the sun's altitude in degrees at the event, which crossing, whether the altitude is
# of the sun's centre (twilights) or of its upper limb (sunrise/sunset, with the standard 34' of refraction)).
SOLAR_EVENTS: dict[str, tuple[str, str, bool]] = {
    "dawn_astronomical": ("-18", "rising", True),
    "dawn_nautical": ("-12", "rising", True),
    "dawn_civil": ("-6", "rising", True),
    "sunrise": ("-0:34", "rising", False),
    "solar_noon": ("0", "transit", False),
    "sunset": ("-0:34", "setting", False),
    "dusk_civil": ("-6", "setting", True),
    "dusk_nautical": ("-12", "setting", True),
    "dusk_astronomical": ("-18", "setting", True),
}
# Near the poles an event may not happen for months; a year always holds one if it happens at all.
_SOLAR_SEARCH_DAYS = 367
# The scan's step: the sun crosses a horizon once per step at the most except where it only grazes it.
_SOLAR_STEP_MINUTES = 10


class solar(Schedule):
    """Due at a solar event at a place, as Celery's ``solar(event, lat, lon)``: one of `SOLAR_EVENTS`
    (``"sunrise"``, ``"sunset"``, ``"solar_noon"``, ``"dawn_civil"``...), latitude and longitude in degrees
    (north and east positive). Where the event does not happen on a day (polar day or night) the next day it does
    happen is due; an event that never happens there within a year is a one-line error.
    """

    def __init__(self, event: str, lat: float, lon: float) -> None:
        if event not in SOLAR_EVENTS:
            raise ConfigurationError(f"solar event must be one of {', '.join(SOLAR_EVENTS)}, not {event!r}")
        for name, value, bound in (("latitude", lat, 90), ("longitude", lon, 180)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not -bound <= value <= bound:
                raise ConfigurationError(
                    f"solar {name} must be a number of degrees in [-{bound}, {bound}], not {value!r}"
                )
        self.event, self.lat, self.lon = event, float(lat), float(lon)
        _ephem()  # the extra is needed: say so when the schedule is read, not when it is first due

    def next_after(self, moment: dt.datetime, tz: dt.tzinfo = UTC) -> dt.datetime:
        ephem = _ephem()
        horizon, crossing, centre = SOLAR_EVENTS[self.event]
        place = ephem.Observer()
        place.lat, place.lon, place.elevation = str(self.lat), str(self.lon), 0
        place.pressure = 0  # refraction is in the horizon above, as the almanacs define these events
        sun = ephem.Sun()
        start = moment.astimezone(UTC).replace(tzinfo=None)
        if crossing == "transit":  # the sun crosses the meridian every day, also in polar day and night
            place.date = start
            noon: dt.datetime = place.next_transit(sun).datetime().replace(tzinfo=UTC)
            return noon if noon > moment else self.next_after(noon + dt.timedelta(seconds=1), tz)
        target = float(ephem.degrees(horizon))

        def above(when: dt.datetime) -> float:
            place.date = when
            sun.compute(place)
            return float(sun.alt) + (0.0 if centre else float(sun.radius)) - target

        # Our own scan and bisection rather than ephem's rise/set search, which can loop for ever near the poles.
        rising = crossing == "rising"
        before, low = start, above(start)
        for _ in range(_SOLAR_SEARCH_DAYS * 24 * 60 // _SOLAR_STEP_MINUTES):
            after = before + dt.timedelta(minutes=_SOLAR_STEP_MINUTES)
            high = above(after)
            if (low < 0 <= high) if rising else (low > 0 >= high):
                lo, hi = before, after
                while hi - lo > dt.timedelta(seconds=0.5):
                    mid = lo + (hi - lo) / 2
                    if (above(mid) < 0) == rising:
                        lo = mid
                    else:
                        hi = mid
                when = hi.replace(tzinfo=UTC)
                if when > moment:
                    return when
            before, low = after, high
        raise ConfigurationError(f"{self.describe()} does not happen within a year at that place")

    def describe(self) -> str:
        return f"solar({self.event!r}, {self.lat:g}, {self.lon:g})"


def _second_run(local: dt.datetime, tz: dt.tzinfo) -> bool:
    """Whether ``local`` is the second of two moments showing the same wall-clock time in ``tz``."""
    wall = local.astimezone(tz).replace(tzinfo=None)
    first, second = wall.replace(tzinfo=tz, fold=0), wall.replace(tzinfo=tz, fold=1)
    return first.utcoffset() != second.utcoffset() and local.utcoffset() == second.utcoffset()


def _croniter() -> Any:
    try:
        from croniter import croniter  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:  # pragma: no cover - the extra is installed in tests
        raise ConfigurationError("crontab schedules need croniter: pip install 'celeriac[beat]'") from exc
    return croniter


def _ephem() -> Any:
    try:
        import ephem  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:  # pragma: no cover - the extra is installed in tests
        raise ConfigurationError("solar schedules need ephem: pip install 'celeriac[beat]'") from exc
    return ephem


def as_schedule(value: object) -> Schedule:
    """A `Schedule` from what ``beat_schedule`` entries give: a schedule, a `timedelta`, or seconds."""
    if isinstance(value, Schedule):
        return value
    if isinstance(value, dt.timedelta) or (isinstance(value, int | float) and not isinstance(value, bool)):
        return schedule(value)
    raise ConfigurationError(
        f"a beat schedule must be a timedelta, seconds, schedule(...), crontab(...) or solar(...), not {value!r}"
    )


__all__ = ["SOLAR_EVENTS", "Schedule", "as_schedule", "crontab", "schedule", "solar", "zone"]

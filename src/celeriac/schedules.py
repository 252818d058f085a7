"""When periodic tasks are due: `schedule` (a fixed interval) and `crontab` (Celery's names and fields).

A schedule is a pure rule over time: `Schedule.next_after(moment)` is the first slot strictly after ``moment``.
Beat anchors each entry once (its first sight, recorded in the cluster) and then walks the slots from there, so
every beat process computes the same slots for an entry, whichever of them leads.

`crontab` reads cron expressions with croniter (the ``beat`` extra), in the app's ``timezone``: slots follow
wall-clock time there, across daylight-saving changes as cron does: a 02:30 slot fires at 03:00 on the night the
clock jumps from 02:00 to 03:00, and once (not twice) on the night 02:30 happens twice; an entry whose hour is a
wildcard (``hour="*"``) fires in both runs of the repeated hour, as it does in every other hour.
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


def as_schedule(value: object) -> Schedule:
    """A `Schedule` from what ``beat_schedule`` entries give: a schedule, a `timedelta`, or seconds."""
    if isinstance(value, Schedule):
        return value
    if isinstance(value, dt.timedelta) or (isinstance(value, int | float) and not isinstance(value, bool)):
        return schedule(value)
    raise ConfigurationError(
        f"a beat schedule must be a timedelta, seconds, schedule(...) or crontab(...), not {value!r}"
    )


__all__ = ["Schedule", "as_schedule", "crontab", "schedule", "zone"]

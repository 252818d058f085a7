"""Setting values the types allow but celeriac cannot honour: refused with a one-line reason, never ignored."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from celeriac.errors import ConfigurationError
from celeriac.settings import Settings


def check_values(conf: Settings) -> None:
    """Raise ConfigurationError for the first setting whose value celeriac cannot honour."""
    if conf.task_protocol != 2:
        raise ConfigurationError(
            f"task_protocol={conf.task_protocol!r} is not supported: celeriac sends protocol 2 (Celery 4+); "
            "its workers still read protocol 1 messages"
        )
    if not conf.enable_utc:
        raise ConfigurationError(
            "enable_utc=False is not supported: celeriac keeps every time in UTC "
            "(set timezone to say how naive ETAs and expiry times are read)"
        )
    zone(conf.timezone)


def zone(name: str) -> dt.tzinfo:
    """The time zone ``name`` (the ``timezone`` setting); ConfigurationError for one this system lacks."""
    if name.upper() == "UTC":
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"setting 'timezone': unknown time zone {name!r}") from None

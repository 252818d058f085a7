"""``beat_schedule`` read into `Entry` objects: every key checked, a mistake is one line naming the entry."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

from celeriac.errors import ConfigurationError
from celeriac.schedules import Schedule, as_schedule

CatchUp = Literal["once", "all", "skip"]
"""What to fire for slots missed while no beat ran: the latest one (``once``), each (``all``), or none (``skip``)."""

CATCH_UP: tuple[str, ...] = get_args(CatchUp)
ENTRY_KEYS = frozenset({"task", "schedule", "args", "kwargs", "options", "relative", "catch_up"})
# The send options an entry may carry (`apply_async`'s names); the rest (task_id, eta, countdown, retries,
# parent/root ids) belong to beat or make no sense for a periodic send.
OPTION_KEYS = frozenset(
    {
        "queue",
        "routing_key",
        "exchange",
        "priority",
        "expires",
        "headers",
        "serializer",
        "compression",
        "ignore_result",
        "time_limit",
        "soft_time_limit",
        "shadow",
    }
)


@dataclass(frozen=True)
class Entry:
    """One periodic task: what to send and when.

    Attributes:
        name: the entry's key in ``beat_schedule`` (unique; its records in the cluster are kept under it).
        task: the task name to send (need not be registered in this process).
        schedule: when it is due.
        args, kwargs: the task's arguments.
        options: send options (queue, priority, expires...), as `apply_async` takes them.
        catch_up: what to do with slots missed while no beat ran.
    """

    name: str
    task: str
    schedule: Schedule
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    catch_up: CatchUp = "once"

    def send_options(self, now: dt.datetime) -> dict[str, Any]:
        """The options of one send; a number ``expires`` counts from the send, as Celery's beat does."""
        return dict(self.options)


def parse_entry(name: str, spec: object) -> Entry:
    """One ``beat_schedule`` item as an `Entry`; `ConfigurationError` naming the entry for any mistake."""
    where = f"beat_schedule[{name!r}]"
    if not isinstance(spec, Mapping):
        raise ConfigurationError(f"{where} must be a dict with 'task' and 'schedule', not {type(spec).__name__}")
    unknown = sorted(set(spec) - ENTRY_KEYS)
    if unknown:
        raise ConfigurationError(f"{where} has unknown key(s) {', '.join(map(repr, unknown))}")
    task = spec.get("task")
    if not isinstance(task, str) or not task:
        raise ConfigurationError(f"{where}['task'] must be a task name")
    if "schedule" not in spec:
        raise ConfigurationError(f"{where} has no 'schedule'")
    try:
        when = as_schedule(spec["schedule"])
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
    args = spec.get("args", ())
    if not isinstance(args, list | tuple):
        raise ConfigurationError(f"{where}['args'] must be a list or tuple")
    kwargs = spec.get("kwargs", {})
    if not isinstance(kwargs, Mapping):
        raise ConfigurationError(f"{where}['kwargs'] must be a dict")
    options = spec.get("options", {})
    if not isinstance(options, Mapping):
        raise ConfigurationError(f"{where}['options'] must be a dict")
    bad = sorted(set(options) - OPTION_KEYS)
    if bad:
        raise ConfigurationError(
            f"{where}['options'] has option(s) beat cannot send with: {', '.join(map(repr, bad))} "
            f"(allowed: {', '.join(sorted(OPTION_KEYS))})"
        )
    if spec.get("relative", False):
        raise ConfigurationError(f"{where}['relative']=True is not supported: slots are anchored at first sight")
    catch_up = spec.get("catch_up", "once")
    if catch_up not in CATCH_UP:
        raise ConfigurationError(f"{where}['catch_up'] must be one of {', '.join(CATCH_UP)}, not {catch_up!r}")
    return Entry(name, task, when, tuple(args), dict(kwargs), dict(options), cast(CatchUp, catch_up))


def parse_schedule(schedule: Mapping[str, object]) -> list[Entry]:
    """Every entry of ``beat_schedule``, in its order."""
    if not isinstance(schedule, Mapping):
        raise ConfigurationError("setting 'beat_schedule' must be a dict of entries")
    entries = []
    for name, spec in schedule.items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"beat_schedule keys must be entry names, not {name!r}")
        entries.append(parse_entry(name, spec))
    return entries

"""``beat_schedule`` read into `Entry` objects: every key checked, a mistake is one line naming the entry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

from celeriac.app.options import check_send_options
from celeriac.errors import ConfigurationError
from celeriac.schedules import Schedule, as_schedule

CatchUp = Literal["once", "all", "skip"]
"""What to fire for slots missed while no beat ran: the latest one (``once``), each (``all``), or none (``skip``)."""

CATCH_UP: tuple[str, ...] = get_args(CatchUp)
ENTRY_KEYS = frozenset({"task", "schedule", "args", "kwargs", "options", "relative", "catch_up"})
# Send options beat sets itself or that make no sense for a periodic send; every other `apply_async` option is
# allowed, and an unknown one is refused with "did you mean" by `check_send_options`.
BEAT_OWNS = {
    "task_id": "beat gives each slot a deterministic id so that exactly one send per slot counts",
    "eta": "a fixed eta cannot repeat; use countdown or the schedule",
    "retries": "set by the worker on retry",
    "parent_id": "a periodic send has no parent task",
    "root_id": "a periodic send is its own root",
    "chain": "give the workflow as link= or send it from a task",
    "chord": "give the workflow as link= or send it from a task",
    "group_id": "a periodic send is not a group member",
    "group_index": "a periodic send is not a group member",
}


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
    try:
        check_send_options(options)
    except TypeError as exc:
        raise ConfigurationError(f"{where}['options']: {exc}") from None
    for key in options:
        if key in BEAT_OWNS:
            raise ConfigurationError(
                f"{where}['options'][{key!r}] is not allowed in a periodic entry: {BEAT_OWNS[key]}"
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

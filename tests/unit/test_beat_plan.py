"""Beat's schedule entries and its plan for due slots under each catch-up policy (pure functions)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from celeriac.beat.entries import parse_schedule
from celeriac.beat.records import Progress, task_id
from celeriac.beat.slots import MOST_PER_LOOK, plan
from celeriac.errors import ConfigurationError
from celeriac.schedules import crontab, schedule

T0 = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)
EVERY_10S = schedule(10)


def seconds(n: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=n)


def test_nothing_is_due_before_the_next_slot() -> None:
    assert plan(EVERY_10S, T0, seconds(9.99), "once") is None


def test_an_on_time_slot_fires_under_every_policy() -> None:
    for policy in ("once", "all", "skip"):
        todo = plan(EVERY_10S, T0, seconds(10.2), policy)  # type: ignore[arg-type]
        assert todo is not None and todo.fire == (seconds(10),) and todo.done == seconds(10) and todo.missed == 0


def test_after_downtime_once_fires_the_latest_slot_only() -> None:
    todo = plan(EVERY_10S, T0, seconds(3600 + 5), "once")
    assert todo is not None
    assert todo.fire == (seconds(3600),) and todo.done == seconds(3600) and todo.missed == 359


def test_after_downtime_all_fires_each_slot_in_order_a_bounded_batch_at_a_time() -> None:
    todo = plan(EVERY_10S, T0, seconds(35), "all")
    assert todo is not None and todo.fire == (seconds(10), seconds(20), seconds(30)) and todo.missed == 0
    long = plan(EVERY_10S, T0, seconds(10 * (MOST_PER_LOOK + 50)), "all")
    assert long is not None and len(long.fire) == MOST_PER_LOOK and long.done == seconds(10 * MOST_PER_LOOK)


def test_after_downtime_skip_fires_nothing_but_a_late_slot_within_the_takeover_bound_still_fires() -> None:
    hourly = schedule(3600)
    skipped = plan(hourly, T0, seconds(5 * 3600 + 300), "skip", on_time=dt.timedelta(seconds=21))
    assert skipped is not None and skipped.fire == () and skipped.done == seconds(5 * 3600) and skipped.missed == 5
    late = plan(EVERY_10S, T0, seconds(25), "skip", on_time=dt.timedelta(seconds=21))
    assert late is not None and late.fire == (seconds(20),) and late.missed == 1


def test_crontab_downtime_walks_the_slots() -> None:
    todo = plan(crontab(minute="*/15"), T0, T0 + dt.timedelta(hours=2, minutes=5), "once")
    assert todo is not None and todo.fire == (T0 + dt.timedelta(hours=2),) and todo.missed == 7


def test_entries_in_celerys_format_and_their_mistakes() -> None:
    entries = parse_schedule(
        {
            "tick": {"task": "app.tick", "schedule": 1.0},
            "report": {
                "task": "app.report",
                "schedule": crontab(minute=0, hour=7),
                "args": [1],
                "kwargs": {"full": True},
                "options": {"queue": "reports", "priority": 5, "expires": 60, "countdown": 3},
                "catch_up": "skip",
            },
        }
    )
    assert [e.name for e in entries] == ["tick", "report"]
    assert entries[1].options == {"queue": "reports", "priority": 5, "expires": 60, "countdown": 3}
    assert entries[1].catch_up == "skip"
    mistakes = {
        "unknown key(s) 'shedule'": {"t": {"task": "x", "shedule": 1}},
        "has no 'schedule'": {"t": {"task": "x"}},
        "must be a task name": {"t": {"schedule": 1}},
        "['options']['task_id'] is not allowed in a periodic entry": {
            "t": {"task": "x", "schedule": 1, "options": {"task_id": "fixed"}}
        },
        "unknown send option 'queu'; did you mean 'queue'?": {
            "t": {"task": "x", "schedule": 1, "options": {"queu": "q"}}
        },
        "send option 'retry' is not supported": {"t": {"task": "x", "schedule": 1, "options": {"retry": True}}},
        "catch_up'] must be one of once, all, skip": {"t": {"task": "x", "schedule": 1, "catch_up": "never"}},
        "relative']=True is not supported": {"t": {"task": "x", "schedule": 1, "relative": True}},
        "a beat schedule must be": {"t": {"task": "x", "schedule": "hourly"}},
    }
    for message, schedule_ in mistakes.items():
        with pytest.raises(ConfigurationError, match=re.escape(message)):
            parse_schedule(schedule_)


def test_records_round_trip_and_task_ids_are_the_same_everywhere() -> None:
    progress = Progress(seconds(10), "every 10s")
    assert Progress.decode(progress.encode()) == progress
    assert Progress.decode(b"not json") is None and Progress.decode(None) is None
    assert task_id("tick", seconds(10)) == task_id("tick", seconds(10)) != task_id("tick", seconds(20))

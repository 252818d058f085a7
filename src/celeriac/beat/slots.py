"""Which slots of an entry are due now, and which of them to fire under its catch-up policy (pure; no I/O)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from celeriac.beat.entries import CatchUp
from celeriac.schedules import Schedule, schedule

MOST_PER_LOOK = 1000
"""Most slots ``catch_up="all"`` fires in one look (the next look goes on from the last one fired)."""

WALK_LIMIT = 100_000
"""Most slots walked one by one to find the latest due one (beyond it the look goes on from where it stopped)."""


@dataclass(frozen=True)
class Plan:
    """What to do for one entry now.

    Attributes:
        fire: the slots to send now, oldest first.
        done: the slot to record as the entry's latest (fired or given up); every due slot up to it is settled.
        missed: due slots settled without a send (catch-up policy).
    """

    fire: tuple[dt.datetime, ...]
    done: dt.datetime
    missed: int


def plan(
    when: Schedule,
    last: dt.datetime,
    now: dt.datetime,
    catch_up: CatchUp,
    *,
    tz: dt.tzinfo = dt.UTC,
    on_time: dt.timedelta = dt.timedelta(seconds=21),
) -> Plan | None:
    """The plan for an entry whose latest settled slot is ``last``; None when no slot is due at ``now``.

    ``on_time`` is how late a slot may be and still count as on time for ``catch_up="skip"`` (beat's takeover
    bound: a slot due while leadership changed hands is late, not missed).
    """
    first = when.next_after(last, tz)
    if first > now:
        return None
    if catch_up == "all":
        due = [first]
        while len(due) < MOST_PER_LOOK:
            following = when.next_after(due[-1], tz)
            if following > now:
                break
            due.append(following)
        return Plan(tuple(due), due[-1], 0)
    latest, count = _latest_due(when, first, now, tz)
    if catch_up == "skip" and now - latest > on_time:
        return Plan((), latest, count)
    return Plan((latest,), latest, count - 1)


def _latest_due(when: Schedule, first: dt.datetime, now: dt.datetime, tz: dt.tzinfo) -> tuple[dt.datetime, int]:
    """The latest slot at or before ``now`` (``first`` is due) and how many slots are due in all."""
    if isinstance(when, schedule):
        # A fixed interval: arithmetic instead of a walk (a week's downtime of a 1 s entry is 600,000 slots).
        extra = int((now - first) / when.run_every)
        return first + extra * when.run_every, extra + 1
    latest, count = first, 1
    while count < WALK_LIMIT:
        following = when.next_after(latest, tz)
        if following > now:
            break
        latest, count = following, count + 1
    return latest, count

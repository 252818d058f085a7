"""Periodic tasks: ``beat_schedule`` entries fired by whichever beat process holds the cluster's lease.

Any number of beat processes may run (``celeriac beat``, or ``worker -B`` in each worker); the one holding the
lease fires, and it records each slot it fires, fenced by its lease token, before it sends the task, so a slot
is never fired twice, also by a leader that was paused past its lease. See `celeriac.beat.service`.
"""

from __future__ import annotations

from celeriac.beat.entries import Entry, parse_schedule
from celeriac.beat.service import Beat

__all__ = ["Beat", "Entry", "parse_schedule"]

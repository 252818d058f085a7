"""Settings: the periodic-task schedule and how beat processes share it."""

from __future__ import annotations

from typing import Any

from celeriac.settings.setting import NUM, Setting, SettingsBase


class BeatSettings(SettingsBase):
    """The periodic-task schedule and how beat processes share it."""

    __slots__ = ()

    beat_schedule = Setting[dict[str, dict[str, Any]]](
        {}, (dict,), "entries by name: task, schedule, args, kwargs, options, catch_up (Celery's format)"
    )
    beat_lease_seconds = Setting[float](
        10.0, NUM, "the leader's lease: another beat takes over within twice this after the leader stops renewing"
    )
    beat_max_loop_interval = Setting[float](300.0, NUM, "longest sleep between two looks at the schedule")

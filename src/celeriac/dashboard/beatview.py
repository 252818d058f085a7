"""The Beat page's rows: each entry of the app's ``beat_schedule`` with its last and next slot, read from the
result backend's fenced records as ``celeriac beat --list`` reads them, and the task it last sent (events)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celeriac.app.app import App
from celeriac.beat.service import Beat


async def beat_entries(app: App, seen: Mapping[str, Mapping[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """(rows, problem): a backend that cannot hold beat's records gives no rows and the reason."""
    entries: list[dict[str, Any]] = []
    if not app.conf.beat_schedule:
        return entries, ""
    try:
        overview = await Beat(app).overview()
    except Exception as exc:  # shown on the page, not raised: the rest of the dashboard works without beat
        return entries, f"cannot read beat's records: {exc}"
    for entry, done, upcoming in overview:
        fired = seen.get(f"fired:{entry.name}", {})
        entries.append(
            {
                "name": entry.name,
                "task": entry.task,
                "schedule": entry.schedule.describe(),
                "last": done.isoformat(timespec="seconds") if done else "",
                "next": upcoming.isoformat(timespec="seconds"),
                "uuid": fired.get("uuid"),
            }
        )
    return entries, ""

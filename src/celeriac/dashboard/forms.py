"""Turning request fields into queries and values into table cells."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from celeriac.dashboard.store import TaskFilter


def when(ts: float | None) -> str:
    """A timestamp for a table cell (UTC)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if ts else ""


def span(start: float | None, end: float | None) -> str:
    """Seconds between two times, or '-'."""
    return f"{max(0.0, end - start):.3f}s" if start is not None and end is not None else "-"


def task_filter(params: Mapping[str, str]) -> TaskFilter:
    """The Tasks page's filter from query or form fields; ValueError on a bad time."""

    def number(key: str) -> float | None:
        value = params.get(key, "")
        try:
            return float(value) if value else None
        except ValueError:
            raise ValueError(f"{key} must be a unix time in seconds, not {value!r}") from None

    return TaskFilter(
        state=params.get("state", ""),
        name=params.get("name", ""),
        worker=params.get("worker", ""),
        queue=params.get("queue", ""),
        since=number("since"),
        until=number("until"),
        uuid=params.get("uuid", ""),
        text=params.get("text", ""),
    )

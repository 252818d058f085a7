"""Turning request fields into queries and values into table cells."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

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


def tree_nodes(rows: list[dict[str, Any]], root: str, most: int = 10_000) -> list[dict[str, Any]]:
    """A canvas's tasks in tree order (each after its parent) with their ``depth``, at most ``most`` nodes."""
    children: dict[str | None, list[dict[str, Any]]] = {}
    for row in rows:
        parent = row["parent_id"] if row["uuid"] != root else None
        children.setdefault(parent, []).append(row)
    nodes: list[dict[str, Any]] = []
    stack: list[tuple[dict[str, Any], int]] = [(row, 0) for row in reversed(children.get(None, []))]
    while stack and len(nodes) < most:
        row, depth = stack.pop()
        nodes.append({**row, "depth": depth})
        stack.extend((child, depth + 1) for child in reversed(children.get(row["uuid"], [])))
    return nodes

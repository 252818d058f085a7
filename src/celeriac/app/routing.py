"""Routing: which queue a task goes to (``queue=`` option, ``task_routes``, the task's queue, the default)."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

from celeriac.errors import ConfigurationError


class Router:
    """Resolves the destination queue of a task name from the ``task_routes`` setting.

    ``task_routes`` is a dict ``{pattern: {"queue": name}}`` (patterns are task names or globs such as
    ``"reports.*"``), or a list of such dicts tried in order, as in Celery. A route value may also be a plain
    queue name string.
    """

    def __init__(self, routes: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None, default_queue: str) -> None:
        if routes is None:
            tables: list[Mapping[str, Any]] = []
        elif isinstance(routes, Mapping):
            tables = [routes]
        else:
            tables = list(routes)
        for table in tables:
            if not isinstance(table, Mapping):
                raise ConfigurationError("setting 'task_routes' must be a dict or a list of dicts")
        self._tables = tables
        self.default_queue = default_queue

    def queue_for(self, task_name: str, task_queue: str | None = None) -> str:
        """The queue for ``task_name``: the first matching route, else ``task_queue``, else the default."""
        for table in self._tables:
            for pattern, route in table.items():
                if pattern == task_name or fnmatch.fnmatchcase(task_name, pattern):
                    if isinstance(route, str):
                        return route
                    if isinstance(route, Mapping) and isinstance(route.get("queue"), str):
                        return str(route["queue"])
                    raise ConfigurationError(f"task_routes entry {pattern!r} has no 'queue'")
        return task_queue or self.default_queue

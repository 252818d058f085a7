"""The task registry: task name -> Task; unknown names raise UnknownTask."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from celeriac.errors import UnknownTask

if TYPE_CHECKING:
    from celeriac.app.task import Task


class TaskRegistry:
    """Maps task names to tasks for one app."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task[Any, Any]] = {}

    def register(self, task: Task[Any, Any]) -> None:
        """Add ``task`` under its name (a later registration of the same name replaces the earlier)."""
        self._tasks[task.name] = task

    def __getitem__(self, name: str) -> Task[Any, Any]:
        try:
            return self._tasks[name]
        except KeyError:
            raise UnknownTask(name) from None

    def get(self, name: str) -> Task[Any, Any] | None:
        """The task called ``name``, or None."""
        return self._tasks.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._tasks))

    def __len__(self) -> int:
        return len(self._tasks)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._tasks)

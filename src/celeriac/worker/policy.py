"""TaskPolicy: a task's options merged with the app's settings once, so the per-message path reads plain fields.

Settings are frozen once the worker starts, so the merge never goes stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.app.task import Task


@dataclass(frozen=True, slots=True)
class TaskPolicy:
    """How the worker treats one task: ack timing, results, limits."""

    acks_late: bool
    acks_on_failure_or_timeout: bool
    ignore_result: bool
    store_errors_even_if_ignored: bool
    track_started: bool
    time_limit: float | None
    result_extended: bool
    serializer: str

    @classmethod
    def of(cls, task: Task[Any, Any]) -> TaskPolicy:
        """Merge ``task``'s own options over its app's settings."""
        conf = task.app.conf

        def pick(own: Any, setting: str) -> Any:
            return conf[setting] if own is None else own

        return cls(
            acks_late=bool(pick(task.acks_late, "task_acks_late")),
            acks_on_failure_or_timeout=bool(conf.task_acks_on_failure_or_timeout),
            ignore_result=bool(pick(task.ignore_result, "task_ignore_result")),
            store_errors_even_if_ignored=bool(conf.task_store_errors_even_if_ignored),
            track_started=bool(pick(task.track_started, "task_track_started")),
            time_limit=pick(task.time_limit, "task_time_limit"),
            result_extended=bool(conf.result_extended),
            serializer=str(pick(task.serializer, "task_serializer")),
        )


class PolicyCache:
    """TaskPolicy per task name, computed on first use."""

    def __init__(self) -> None:
        self._policies: dict[str, TaskPolicy] = {}

    def get(self, task: Task[Any, Any]) -> TaskPolicy:
        """The policy of ``task``."""
        policy = self._policies.get(task.name)
        if policy is None:
            policy = self._policies[task.name] = TaskPolicy.of(task)
        return policy

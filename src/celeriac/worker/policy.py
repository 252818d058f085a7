"""TaskPolicy: a task's options merged with the app's settings once, so the per-message path reads plain fields.

Settings are frozen once the worker starts, so the merge never goes stale.

``reject_on_worker_lost`` (task option, ``task_reject_on_worker_lost`` setting) is carried to the pool on each
`Call`. With ``acks_late``, a prefork child that dies mid-body gets its message requeued instead of failed. On
the in-process pools (asyncio, threads, solo) the body cannot be lost without the whole worker, and the broker
redelivers the unacked message then: the option is honoured by construction. Without ``acks_late`` it cannot act
(the message was acked when the body started): `warn_reject_without_acks_late` says so once at worker start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.app.app import App
    from celeriac.app.task import Task

log = logging.getLogger("celeriac.worker")


@dataclass(frozen=True, slots=True)
class TaskPolicy:
    """How the worker treats one task: ack timing, results, limits."""

    acks_late: bool
    acks_on_failure_or_timeout: bool
    ignore_result: bool
    store_errors_even_if_ignored: bool
    track_started: bool
    time_limit: float | None
    soft_time_limit: float | None
    reject_on_worker_lost: bool
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
            soft_time_limit=pick(task.soft_time_limit, "task_soft_time_limit"),
            reject_on_worker_lost=bool(pick(task.reject_on_worker_lost, "task_reject_on_worker_lost")),
            result_extended=bool(conf.result_extended),
            serializer=str(pick(task.serializer, "task_serializer")),
        )


def warn_reject_without_acks_late(app: App) -> list[str]:
    """Log one warning naming the tasks whose ``reject_on_worker_lost`` cannot act (no ``acks_late``).

    Celery accepts the pair and ignores it (an early-acked message is gone once its body starts, whatever
    happens to the process), so we do not refuse it; we say so once, at worker start. Returns the names.
    """
    names = sorted(name for name in app.tasks if _reject_without_ack(TaskPolicy.of(app.tasks[name])))
    if names:
        log.warning("reject_on_worker_lost has no effect without acks_late; tasks: %s", ", ".join(names))
    return names


def _reject_without_ack(policy: TaskPolicy) -> bool:
    return policy.reject_on_worker_lost and not policy.acks_late


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

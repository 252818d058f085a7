"""What remote-control commands see of a worker: the `ControlNode` protocol the built-in handlers are written
against (the worker implements it), and `TaskRequest`, the view of one request they report on.

Keeping the handlers on this protocol keeps ``celeriac.control`` below ``celeriac.app`` and ``celeriac.worker``:
the worker provides an object with these members (its tasks and settings included); nothing here imports either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from celeriac.control.replies import StatsReply
    from celeriac.protocol.clock import LamportClock
    from celeriac.protocol.message import TaskMessage
    from celeriac.transports.base import Delivery

RequestKind = Literal["active", "reserved", "scheduled"]


class TaskRequest(Protocol):
    """One task message a worker holds (its ``Request``)."""

    message: TaskMessage
    delivery: Delivery
    hostname: str
    time_start: float | None
    acknowledged: bool
    worker_pid: int | None

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...


class TaskTable(Protocol):
    """The node's registered tasks (the app's task registry): names, and each task's attributes by name."""

    def names(self) -> list[str]: ...

    def __getitem__(self, name: str) -> object: ...

    def __contains__(self, name: object) -> bool: ...


class ControlNode(Protocol):
    """A worker as the command handlers drive it. Methods do not block unless they are ``async``."""

    @property
    def hostname(self) -> str:
        """The node name (the key of every reply)."""
        ...

    @property
    def version(self) -> str:
        """The celeriac version the node runs."""
        ...

    @property
    def app_name(self) -> str:
        """The app's main module name (``__main__`` when it has none)."""
        ...

    @property
    def tasks(self) -> TaskTable:
        """The registered tasks."""
        ...

    def settings(self, with_defaults: bool) -> Mapping[str, Any]:
        """The app's settings: every one with ``with_defaults``, else only those changed from the default."""
        ...

    @property
    def clock(self) -> LamportClock:
        """The worker's (app) Lamport clock."""
        ...

    def requests(self, kind: RequestKind) -> list[TaskRequest]:
        """Requests running (active), waiting for a pool slot or a rate limit (reserved), or for their ETA."""
        ...

    def revoked(self) -> list[str]:
        """Revoked task ids, oldest first."""
        ...

    def merge_revoked(self, ids: Iterable[str]) -> None:
        """Add ids another node knows as revoked."""
        ...

    async def revoke(self, ids: Sequence[str], terminate: bool, signum: int) -> list[str]:
        """Revoke ``ids`` (dropping held ones); with ``terminate`` stop running ones. Returns those stopped."""
        ...

    def stats(self) -> StatsReply:
        """The ``stats`` reply (celery-wire.md §5.6)."""
        ...

    def queues(self) -> list[str]:
        """The queues consumed now."""
        ...

    async def add_consumer(self, queue: str) -> None:
        """Start consuming ``queue`` too."""
        ...

    async def cancel_consumer(self, queue: str) -> None:
        """Stop consuming ``queue``."""
        ...

    def set_rate_limit(self, task_name: str, rate: str | None) -> None:
        """Change a task's rate limit (None or "0": none). Raises ValueError on a bad rate string."""
        ...

    def set_time_limit(self, task_name: str, soft: float | None, hard: float | None) -> None:
        """Change a task's soft and hard time limits (seconds; None: none)."""
        ...

    def set_task_events(self, enabled: bool) -> bool | None:
        """Turn task events on or off; True if that changed something, None without a dispatcher."""
        ...

    def send_heartbeat(self) -> None:
        """Send one worker-heartbeat event now."""
        ...

    def election(self, election_id: str, topic: str, action: Any) -> None:
        """Take part in election ``election_id`` (celery-wire.md §7.3)."""
        ...

    def resize_pool(self, delta: int) -> str | None:
        """Grow (delta > 0) or shrink the pool; Celery's refusal text under autoscale, else None.

        Raises:
            ValueError: the pool cannot be resized so.
        """
        ...

    def autoscale(self, max_concurrency: int | None, min_concurrency: int | None) -> tuple[int, int]:
        """Set the autoscale bounds (None: unchanged) and return ``(max, min)``.

        Raises:
            ValueError: autoscale is not enabled (Celery's ``Autoscale not enabled``), or the bounds are bad.
        """
        ...

    def shutdown(self, reason: str | None) -> None:
        """Begin a warm shutdown."""
        ...

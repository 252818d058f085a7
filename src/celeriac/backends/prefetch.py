"""The optional "subscribes ahead" capability of a result backend: the only place the sender learns about it.

A backend whose store pushes records to waiters (Redis pub/sub) can start listening for a task's result before
the task is sent, as Celery's client does, so that the later ``wait`` finds the result already received. Such a
backend offers `SubscribesAhead.expect`; the sender checks for it with ``isinstance`` on a backend, or
``issubclass`` on the class `celeriac.backends.backend_class` names (before one is made), never by scheme name.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from celeriac.backends.base import TaskMeta


@runtime_checkable
class SubscribesAhead(Protocol):
    """A result backend that can listen for a result before its task is sent."""

    async def expect(self, task_id: str) -> None:
        """Get ready for a ``wait`` on ``task_id``, which is about to be sent; call before the send.

        Returns without waiting for the store's answer and does not raise for a store that cannot be reached
        (the ``wait`` reports that); raises `celeriac.errors.BackendError` only when the backend is closed.
        """

    def take_received(self, task_id: str, wait: float = 0.0) -> TaskMeta | None:
        """Thread-safe: the ready record of an expected ``task_id`` if it came, waiting up to ``wait`` seconds
        while it is still expected (blocks the calling thread, never the loop); None otherwise. This lets a sync
        ``get()`` skip two hops onto the portal loop and back (see `celeriac.backends.redis.unread`)."""


__all__ = ["SubscribesAhead"]

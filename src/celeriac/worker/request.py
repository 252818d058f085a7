"""Request: one decoded task message held by the worker, with its delivery handle and timings."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import TYPE_CHECKING, Any

from celeriac.app.context import RequestContext
from celeriac.errors import TransportError
from celeriac.protocol.message import TaskMessage
from celeriac.transports.base import Delivery
from celeriac.worker.policy import TaskPolicy

if TYPE_CHECKING:
    from celeriac.app.task import Task

log = logging.getLogger(__name__)


class Request:
    """A task message the worker has accepted, from receipt to ack.

    ``acknowledged`` becomes True once the message was acked or rejected; the ack helpers make a second
    call a no-op, so no code path can ack twice or ack after a reject.
    """

    def __init__(
        self, message: TaskMessage, delivery: Delivery, task: Task[Any, Any], hostname: str, policy: TaskPolicy
    ) -> None:
        self.message = message
        self.delivery = delivery
        self.task = task
        self.hostname = hostname
        self.policy = policy
        self._context: RequestContext | None = None
        self.acknowledged = False
        self.time_received = time.time()
        self.time_start: float | None = None
        self.worker_pid: int | None = None
        #: Ids of the tasks this run sent (``add_to_parent``), stored as the result's ``children``.
        self.children: list[str] = []
        #: The OpenTelemetry span of this run (``tracing_enabled``; worker/tracing.py), parent of what it sends.
        self.otel_span: Any = None

    @property
    def id(self) -> str:
        """The task id."""
        return self.message.id

    @property
    def name(self) -> str:
        """The task name shown in logs (the shadow name when set)."""
        return self.message.name

    @property
    def acks_late(self) -> bool:
        """Whether the message is acked after the task finishes (task option, else the app setting)."""
        return self.policy.acks_late

    @property
    def ignore_result(self) -> bool:
        """Whether no result is stored (message header, else task option, else the app setting)."""
        ignore = self.message.ignore_result
        return self.policy.ignore_result if ignore is None else ignore

    def expired(self, now: dt.datetime | None = None) -> bool:
        """Whether the ``expires`` time has passed."""
        expires = self.message.expires
        return expires is not None and (now or dt.datetime.now(dt.UTC)) >= expires

    def eta_delay(self) -> float:
        """Seconds until the ETA (0 when there is none or it has passed)."""
        eta = self.message.eta
        return max(0.0, eta.timestamp() - time.time()) if eta is not None else 0.0

    def add_child(self, task_id: str) -> None:
        """Record a task this run sent, once (unless the task's ``trail`` is off, as in Celery)."""
        if self.task.trail and task_id not in self.children:
            self.children.append(task_id)

    def context(self) -> RequestContext:
        """The ``self.request`` a bound task body sees (built on first use: most bodies never ask)."""
        if self._context is None:
            self._context = self._make_context()
        return self._context

    def _make_context(self) -> RequestContext:
        return message_context(
            self.message,
            hostname=self.hostname,
            delivery_info=self.delivery.delivery_info,
            ignore_result=self.ignore_result,
            properties=self.delivery.message.properties,
        )

    async def ack(self) -> None:
        """Ack the message once; a broker error is logged (the broker will redeliver), not raised."""
        if self.acknowledged:
            return
        self.acknowledged = True
        await self._send_ack()

    def ack_soon(self) -> asyncio.Future[None] | None:
        """Mark the message acked now and start the ack; None when it was already settled.

        Early acks use this so the broker round trip overlaps the task body instead of delaying its start.
        The caller hands the finished future to `ack_sent`, which logs a failure (the broker will redeliver).
        """
        if self.acknowledged:
            return None
        self.acknowledged = True
        return self.delivery.ack_soon()

    def ack_sent(self, future: asyncio.Future[None]) -> None:
        """Log the failure of a finished `ack_soon` ack, if it failed."""
        if future.cancelled():
            return
        exc = future.exception()
        if isinstance(exc, TransportError):
            log.warning("Could not ack task %s[%s]: %s (it will be redelivered)", self.name, self.id, exc)
        elif exc is not None:
            log.error("Could not ack task %s[%s]: %r", self.name, self.id, exc)

    async def _send_ack(self) -> None:
        try:
            await self.delivery.ack()
        except TransportError as exc:
            log.warning("Could not ack task %s[%s]: %s (it will be redelivered)", self.name, self.id, exc)

    async def reject(self, requeue: bool = False) -> None:
        """Reject the message once (back to the queue with ``requeue``); broker errors are logged."""
        if self.acknowledged:
            return
        self.acknowledged = True
        try:
            await self.delivery.reject(requeue=requeue)
        except TransportError as exc:
            log.warning("Could not reject task %s[%s]: %s", self.name, self.id, exc)

    def info(self) -> dict[str, Any]:
        """The request-info dict of ``inspect active/reserved`` (celery-wire.md §5.5)."""
        m = self.message
        return {
            "id": m.id,
            "name": m.name,
            "args": list(m.args),
            "kwargs": dict(m.kwargs),
            "type": m.task,
            "hostname": self.hostname,
            "time_start": self.time_start,
            "acknowledged": self.acknowledged,
            "delivery_info": self.delivery.delivery_info,
            "worker_pid": self.worker_pid,
        }


def message_context(m: TaskMessage, **delivery: Any) -> RequestContext:
    """The ``self.request`` of a run of ``m``: the message's fields, plus what only its delivery knows
    (``hostname``, ``delivery_info``, ``ignore_result``, ``properties``) when given."""
    return RequestContext(
        id=m.id,
        task=m.task,
        args=m.args,
        kwargs=m.kwargs,
        retries=m.retries,
        eta=m.eta.isoformat() if m.eta else None,
        expires=m.expires.isoformat() if m.expires else None,
        headers=m.extra_headers,
        root_id=m.root_id,
        parent_id=m.parent_id,
        group=m.group,
        group_index=m.group_index,
        reply_to=m.reply_to,
        correlation_id=m.correlation_id,
        priority=m.priority,
        timelimit=m.timelimit,
        origin=m.origin,
        callbacks=m.embed.get("callbacks"),
        errbacks=m.embed.get("errbacks"),
        chain=m.embed.get("chain"),
        chord=m.embed.get("chord"),
        shadow=m.shadow,
        stamped_headers=m.stamped_headers,
        stamps=m.stamps,
        replaced_task_nesting=m.replaced_task_nesting,
        **delivery,
    )

"""Events step: owns the worker's `EventDispatcher` and turns task hooks into task events (celery-wire.md §4).

The dispatcher lives as long as the worker: on reconnect it is detached (events wait in its buffer) and
attached to the new connection, which flushes them. Worker events are always on; task events when the worker
runs with ``-E`` or gets the ``enable_events`` command.
"""

from __future__ import annotations

import logging
import traceback as tb
from typing import TYPE_CHECKING, Any

from celeriac.events.dispatcher import EventDispatcher
from celeriac.events.model import (
    TASK_FAILED,
    TASK_RECEIVED,
    TASK_REJECTED,
    TASK_RETRIED,
    TASK_REVOKED,
    TASK_STARTED,
    TASK_SUCCEEDED,
)
from celeriac.protocol.codec import safe_repr
from celeriac.worker.bootsteps import Step
from celeriac.worker.consumer.connection import Connection
from celeriac.worker.listeners import TaskListener

if TYPE_CHECKING:
    from celeriac.worker.consumer.consumer import Consumer
    from celeriac.worker.request import Request

log = logging.getLogger("celeriac.worker")

SHUTDOWN_FLUSH_TIMEOUT = 2.0  # how long the last events may take to leave at shutdown


class TaskEventListener(TaskListener):
    """Sends task-* events with the fields of celery-wire.md §4.4 while the ``task`` group is enabled."""

    def __init__(self, dispatcher: EventDispatcher) -> None:
        self.dispatcher = dispatcher

    def _send(self, event_type: str, request: Request, **fields: Any) -> None:
        self.dispatcher.send(event_type, uuid=request.id, **fields)

    def task_received(self, request: Request) -> None:
        if not self.dispatcher.group_enabled("task"):
            return
        m = request.message
        self._send(
            TASK_RECEIVED,
            request,
            name=m.name,
            args=m.argsrepr or safe_repr(tuple(m.args)),
            kwargs=m.kwargsrepr or safe_repr(dict(m.kwargs)),
            root_id=m.root_id,
            parent_id=m.parent_id,
            retries=m.retries,
            eta=m.eta.isoformat() if m.eta else None,
            expires=m.expires.isoformat() if m.expires else None,
        )

    def task_started(self, request: Request) -> None:
        if self.dispatcher.group_enabled("task"):
            self._send(TASK_STARTED, request)

    def task_succeeded(self, request: Request, result: Any, runtime: float) -> None:
        if self.dispatcher.group_enabled("task"):
            self._send(TASK_SUCCEEDED, request, result=safe_repr(result), runtime=runtime)

    def task_failed(self, request: Request, exc: BaseException, traceback: str) -> None:
        if self.dispatcher.group_enabled("task"):
            self._send(TASK_FAILED, request, exception=safe_repr(exc), traceback=traceback)

    def task_retried(self, request: Request, exc: BaseException) -> None:
        if self.dispatcher.group_enabled("task"):
            text = "".join(tb.format_exception(exc))
            self._send(TASK_RETRIED, request, exception=safe_repr(exc), traceback=text)

    def task_revoked(self, request: Request, expired: bool, terminated: bool, signum: int | None = None) -> None:
        if self.dispatcher.group_enabled("task"):
            self._send(TASK_REVOKED, request, terminated=terminated, signum=signum, expired=expired)

    def task_rejected(self, request: Request, requeue: bool) -> None:
        if self.dispatcher.group_enabled("task"):
            self._send(TASK_REJECTED, request, requeue=requeue)


class Events(Step["Consumer"]):
    """Attaches the dispatcher to each connection; registers the task-event listener on the worker."""

    requires = (Connection,)

    def __init__(self) -> None:
        self.dispatcher: EventDispatcher | None = None
        self.listener: TaskEventListener | None = None

    async def start(self, consumer: Consumer) -> None:
        worker = consumer.worker
        if self.dispatcher is None:
            groups = None if worker.send_events else {"worker"}
            self.dispatcher = EventDispatcher(worker.hostname, worker.state.clock, groups=groups)
            self.listener = TaskEventListener(self.dispatcher)
        if self.listener is not None and self.listener not in worker.listeners:
            worker.listeners.append(self.listener)
        transport = consumer.blueprint.get(Connection).transport
        assert transport is not None
        self.dispatcher.attach(transport)

    async def stop(self, consumer: Consumer) -> None:
        await self._detach(consumer, flush=consumer.stopping)

    async def terminate(self, consumer: Consumer) -> None:
        await self._detach(consumer, flush=False)  # cold shutdown: do not wait for the broker

    async def _detach(self, consumer: Consumer, flush: bool) -> None:
        if self.dispatcher is None:
            return
        await self.dispatcher.detach(flush_timeout=SHUTDOWN_FLUSH_TIMEOUT if flush else 0.0)
        if consumer.stopping and self.listener in consumer.worker.listeners:
            consumer.worker.listeners.remove(self.listener)

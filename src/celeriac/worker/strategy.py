"""Strategy: what happens to each delivered message before it runs.

Undecodable / disallowed / unknown-task messages are logged once with the reason and the message id and
rejected without requeue (the worker keeps going); then: revoked? -> drop; expired? -> REVOKED; ETA in the
future? -> hold on the timer (the message stays un-acked, the prefetch window grows by one); else reserve it
in the pool.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import TYPE_CHECKING, Any

from celeriac.app.states import State
from celeriac.errors import ContentDisallowed, DecodeError, UnknownTask
from celeriac.protocol.codec import decode_task
from celeriac.protocol.failures import exception_to_dict
from celeriac.transports.base import Delivery
from celeriac.worker.request import Request
from celeriac.worker.tracer import TraceJob, Tracer, make_meta

if TYPE_CHECKING:
    from celeriac.app.app import App
    from celeriac.transports.base import Consumer
    from celeriac.worker.timer import Timer

log = logging.getLogger("celeriac.worker")


def message_id(delivery: Delivery) -> str:
    """The best id we have for logging a message we could not decode."""
    headers: Any = delivery.message.headers
    value = headers.get("id") if isinstance(headers, dict) else None
    return str(value or delivery.message.properties.get("correlation_id") or delivery.delivery_tag)


class Strategy:
    """Turns deliveries into requests and routes them: drop, hold until the ETA, or reserve."""

    def __init__(self, app: App, tracer: Tracer, timer: Timer, consumer: Consumer, hostname: str) -> None:
        self.app = app
        self.tracer = tracer
        self.timer = timer
        self.consumer = consumer
        self.hostname = hostname
        self.prefetch = 0  # the base window; ETA holds widen it
        self._held = 0
        self._accept = app.accept
        self._tz = dt.UTC

    async def handle(self, delivery: Delivery) -> None:
        """Route one delivery; never raises for bad input."""
        try:
            message = decode_task(delivery.message, self._accept, self._tz)
        except ContentDisallowed as exc:
            log.error("Rejecting message %s: %s", message_id(delivery), exc)
            await _reject_quietly(delivery)
            return
        except DecodeError as exc:
            log.error("Rejecting undecodable message %s: %s", message_id(delivery), exc.reason)
            await _reject_quietly(delivery)
            return
        task = self.app.tasks.get(message.task)
        if task is None:
            error = UnknownTask(message.task)
            log.error("Rejecting message %s: %s (is the module in -A/imports?)", message.id, error)
            if self.tracer.backend is not None:
                meta = make_meta(message.id, State.FAILURE, exception_to_dict(error))
                try:
                    await self.tracer.backend.store(meta)
                except Exception as exc:
                    log.error("Could not store failure of %s: %s", message.id, exc)
            await _reject_quietly(delivery)
            return
        request = Request(message, delivery, task, self.hostname)
        state = self.tracer.state
        if request.id in state.revoked:
            await self.tracer.revoke(request)
            return
        if request.expired():
            await self.tracer.revoke(request, expired=True)
            return
        log.info("Task %s[%s] received", request.name, request.id)
        self.tracer.tell("task_received", request)
        if request.eta_delay() > 0:
            self.hold(request)
        else:
            self.reserve(request)

    def reserve(self, request: Request) -> None:
        """Queue the request in the pool."""
        self.tracer.state.reserved[request.id] = request
        self.tracer.pool.submit(TraceJob(self.tracer, request))

    def hold(self, request: Request) -> None:
        """Keep an ETA request un-acked until it is due; widen the prefetch window meanwhile."""
        state = self.tracer.state
        state.scheduled[request.id] = request
        self._set_held(self._held + 1)
        log.info("Task %s[%s] scheduled for %s", request.name, request.id, request.message.eta)

        def due() -> None:
            if state.scheduled.pop(request.id, None) is None:
                return
            self._set_held(self._held - 1)
            self.reserve(request)

        assert request.message.eta is not None
        self.timer.call_at(max(request.message.eta.timestamp(), time.time()), due)

    def _set_held(self, held: int) -> None:
        self._held = held
        if self.prefetch:
            self.consumer.set_prefetch(self.prefetch + held)

    async def release_held(self) -> None:
        """Give every held (ETA) and reserved-but-unstarted request back to the broker (warm shutdown)."""
        self.timer.cancel_all()
        state = self.tracer.state
        returned = [*state.scheduled.values()]
        state.scheduled.clear()
        for job in self.tracer.pool.take_pending():
            if isinstance(job, TraceJob):
                returned.append(job.request)
                state.reserved.pop(job.request.id, None)
        self._held = 0
        if returned:
            log.info("Returning %d unstarted task(s) to the broker", len(returned))
        await asyncio.gather(*(r.reject(requeue=True) for r in returned))


async def _reject_quietly(delivery: Delivery) -> None:
    try:
        await delivery.reject(requeue=False)
    except Exception as exc:
        log.warning("Could not reject message %s: %s", message_id(delivery), exc)

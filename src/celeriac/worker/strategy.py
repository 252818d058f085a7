"""Strategy: what happens to each delivered message before it runs.

Undecodable / disallowed / unknown-task messages are logged once with the reason and the message id and
rejected without requeue (the worker keeps going); then: revoked? -> drop; expired? -> REVOKED; ETA in the
future? -> hold on the timer; rate limit reached? -> hold in the `RateLimiter`; else reserve it in the pool.
A held message stays un-acked and widens the prefetch window by one, so it never blocks the messages behind
it; `revoke_held` drops held requests that get revoked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celeriac import signals
from celeriac.app.config import zone
from celeriac.errors import ContentDisallowed, DecodeError, UnknownTask
from celeriac.protocol.codec import decode_off_loop, decode_task
from celeriac.protocol.failures import exception_to_dict
from celeriac.protocol.states import State
from celeriac.transports.base import Delivery
from celeriac.worker.canvas import CanvasHook
from celeriac.worker.meta import make_meta, reply_of
from celeriac.worker.policy import PolicyCache
from celeriac.worker.ratelimit import RateLimiter
from celeriac.worker.request import Request
from celeriac.worker.tracer import TraceJob, Tracer

if TYPE_CHECKING:
    from celeriac.app.app import App
    from celeriac.protocol.message import TaskMessage
    from celeriac.transports.base import QueueConsumer
    from celeriac.worker.timer import Timer

log = logging.getLogger("celeriac.worker")


def message_id(delivery: Delivery) -> str:
    """The best id we have for logging a message we could not decode."""
    headers: Any = delivery.message.headers
    value = headers.get("id") if isinstance(headers, dict) else None
    return str(value or delivery.message.properties.get("correlation_id") or delivery.delivery_tag)


class Strategy:
    """Turns deliveries into requests and routes them: drop, hold until the ETA, or reserve."""

    def __init__(self, app: App, tracer: Tracer, timer: Timer, consumer: QueueConsumer, hostname: str) -> None:
        self.app = app
        self.tracer = tracer
        self.timer = timer
        self.consumer = consumer
        self.hostname = hostname
        self.prefetch = 0  # the base window; ETA holds widen it
        self._held = 0
        self._eta_handles: dict[str, asyncio.TimerHandle] = {}
        self.limiter = RateLimiter(timer, self._rate_released, app.conf.task_default_rate_limit)
        self._accept = app.accept
        self.policies = PolicyCache()
        self._tz = zone(app.conf.timezone)  # how naive eta/expires values are read (Celery's rule)
        self._max_bytes = app.conf.worker_max_message_bytes

    async def handle(self, delivery: Delivery) -> None:
        """Route one delivery; never raises for bad input."""
        try:
            if decode_off_loop(delivery.message):  # compressed or large: decoding may take milliseconds
                message = await asyncio.to_thread(
                    decode_task, delivery.message, self._accept, self._tz, max_bytes=self._max_bytes
                )
            else:
                message = decode_task(delivery.message, self._accept, self._tz, max_bytes=self._max_bytes)
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
            signals.task_unknown.send(None, name=message.task, id=message.id, message=delivery.message, exc=error)
            if self.tracer.backend is not None:
                meta = make_meta(message.id, State.FAILURE, exception_to_dict(error))
                try:
                    await self.tracer.backend.store_task(meta, reply_of(message))
                except Exception as exc:
                    log.error("Could not store failure of %s: %s", message.id, exc)
            await self._settle_unknown(message, error)
            await _reject_quietly(delivery)
            return
        request = Request(message, delivery, task, self.hostname, self.policies.get(task))
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
            self.admit(request)

    async def _settle_unknown(self, message: TaskMessage, error: UnknownTask) -> None:
        """Run the canvas duties of a task that will never run here (errbacks; its chord fails instead of waiting
        forever). A failure is logged: the message is rejected anyway, since no redelivery could do better."""
        if not message.embed:
            return
        for hook in self.tracer.on_stored:
            if isinstance(hook, CanvasHook):
                try:
                    await hook.unknown(message, error)
                except Exception:
                    log.exception("Canvas duties of unknown task %s[%s] failed", message.task, message.id)

    def admit(self, request: Request) -> None:
        """Reserve the request, or hold it while its task's rate limit is reached."""
        if self.limiter.admit(request):
            self.reserve(request)
            return
        self.tracer.state.reserved[request.id] = request
        self._set_held(self._held + 1)

    def _rate_released(self, request: Request) -> None:
        self._set_held(self._held - 1)
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
            self._eta_handles.pop(request.id, None)
            if state.scheduled.pop(request.id, None) is None:
                return
            self._set_held(self._held - 1)
            self.admit(request)

        assert request.message.eta is not None
        self._eta_handles[request.id] = self.timer.call_at(max(request.message.eta.timestamp(), time.time()), due)

    def revoke_held(self, ids: Sequence[str]) -> list[Request]:
        """Take the held (ETA or rate-limited) requests with these ids out of the worker and return them."""
        state = self.tracer.state
        taken: list[Request] = []
        for task_id in ids:
            request = state.scheduled.pop(task_id, None)
            handle = self._eta_handles.pop(task_id, None)
            if handle is not None:
                self.timer.cancel(handle)
            if request is not None:
                taken.append(request)
        taken += self.limiter.take(ids)
        for request in taken:
            state.reserved.pop(request.id, None)
        if taken:
            self._set_held(self._held - len(taken))
        return taken

    def resize(self, prefetch: int) -> None:
        """A new base prefetch window (the pool grew or shrank); held messages still widen it."""
        self.prefetch = prefetch
        self._set_held(self._held)

    def _set_held(self, held: int) -> None:
        self._held = held
        if self.prefetch:
            self.consumer.set_prefetch(self.prefetch + held)

    async def release_held(self) -> None:
        """Give every held (ETA) and reserved-but-unstarted request back to the broker (warm shutdown)."""
        self.timer.cancel_all()
        self._eta_handles.clear()
        state = self.tracer.state
        returned = [*state.scheduled.values(), *self.limiter.take()]
        state.scheduled.clear()
        for request in returned:
            state.reserved.pop(request.id, None)
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

"""Run one request: execute the body, classify the outcome, store the result, tell listeners, ack when safe.

Ack promises (celery-wire.md §8.3): early ack (the default) happens when the body starts; with ``acks_late``
the ack comes only after the outcome is stored, so a crash at any earlier moment leaves the message for
redelivery. A retry is acked only after the retry message is published. Between the stored outcome and the
late ack run the ``on_stored`` hooks (outcome.py states their order and their failure rule).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import traceback
from typing import TYPE_CHECKING, Any

from celeriac.backends.base import ResultBackend
from celeriac.errors import (
    BackendError,
    Ignore,
    Reject,
    Retry,
    TaskRevokedError,
    TimeLimitExceeded,
    TransportError,
    WorkerLostError,
)
from celeriac.pools.call import Call
from celeriac.protocol.codec import encode_task
from celeriac.protocol.failures import exception_to_dict
from celeriac.protocol.states import State
from celeriac.worker.canvas_children import plan_children
from celeriac.worker.early_acks import EarlyAcks
from celeriac.worker.listeners import TaskListener
from celeriac.worker.meta import make_meta, reply_of
from celeriac.worker.outcome import Outcome, StoredHook, run_stored_hooks
from celeriac.worker.request import Request
from celeriac.worker.retrying import retry_message

if TYPE_CHECKING:
    from celeriac.pools.base import Pool
    from celeriac.worker.state import WorkerState

log = logging.getLogger("celeriac.worker")


class Tracer:
    """Runs requests for one worker: everything between "a pool slot is free" and "the message is acked"."""

    def __init__(
        self,
        pool: Pool,
        state: WorkerState,
        listeners: list[TaskListener],
        backend: ResultBackend | None,
        hostname: str,
        on_stored: list[StoredHook] | None = None,
    ) -> None:
        self.pool = pool
        self.state = state
        self.listeners = listeners
        self.backend = backend
        self.hostname = hostname
        self.pid = os.getpid()  # the worker_pid of every request (looked up once: it is a system call)
        self.terminating: dict[str, int] = {}  # task id -> signal number of a `revoke --terminate` under way
        self._executing: set[str] = set()  # ids whose body runs now (the only time terminate may cancel)
        self._early_acks = EarlyAcks()
        #: Awaited in order after a final outcome is stored, before the late ack (outcome.py has the rules).
        self.on_stored: list[StoredHook] = on_stored if on_stored is not None else []

    # -- storing and telling ---------------------------------------------------------------------
    async def store(self, request: Request, status: str, result: Any, tb: str | None = None) -> None:
        """Store a state unless the request ignores results (errors too with store_errors_even_if_ignored)."""
        if self.backend is None:
            return
        policy = request.policy
        if request.ignore_result and not (status == State.FAILURE and policy.store_errors_even_if_ignored):
            return
        meta = make_meta(request.id, status, result, tb=tb, request=request, extended=policy.result_extended)
        await self.backend.store_task(meta, reply_of(request.message))

    def tell(self, event: str, request: Request, **fields: Any) -> None:
        """Call ``event`` on every listener; a listener's error is logged, never raised."""
        for listener in self.listeners:
            try:
                getattr(listener, event)(request, **fields)
            except Exception:
                log.exception("Task listener %r failed on %s", listener, event)

    # -- the run ---------------------------------------------------------------------------------
    async def trace(self, request: Request) -> None:
        """Run ``request`` to completion (or cancellation) and settle its message."""
        state = self.state
        state.reserved.pop(request.id, None)
        if request.id in state.revoked or request.expired():
            await self.revoke(request, expired=request.id not in state.revoked)
            return
        state.active[request.id] = request
        request.time_start = time.time()
        request.worker_pid = self.pid
        try:
            await self._run(request)
        finally:
            state.active.pop(request.id, None)
            state.processed += 1
            state.total[request.task.name] += 1

    async def _run(self, request: Request) -> None:
        # Early ack (the default): sent as the body starts, not waited for (early_acks.py); with acks_late
        # nothing is sent until the outcome is stored.
        if not request.acks_late:
            self._early_acks.send(request)
        await self._run_body(request)

    async def wait_acks(self) -> None:
        """Wait until every early ack sent so far is done (each failure is logged as it happens)."""
        await self._early_acks.wait()

    async def _run_body(self, request: Request) -> None:
        task = request.task
        self.tell("task_started", request)
        if request.policy.track_started:
            await self._store_quietly(request, State.STARTED, {"pid": self.pid, "hostname": self.hostname})
        if request.id in self.state.revoked:  # revoked while its start was being recorded
            await self.revoke(request)
            return
        started = time.monotonic()
        try:
            value = await self._execute(request)
        except asyncio.CancelledError:
            signum = self.terminating.pop(request.id, None)
            current = asyncio.current_task()
            if signum is not None and current is not None and current.uncancel() == 0:
                # `revoke --terminate` cancelled this body alone (no shutdown): settle it as revoked.
                await self.revoke(request, terminated=True, signum=signum)
                return
            # Cold shutdown: an acks_late message goes back to the queue at once, not after its lease.
            if request.acks_late:
                await request.reject(requeue=True)
            raise
        except Retry as signal:
            await self.retry(request, signal)
        except Ignore:
            await request.ack()
        except Reject as signal:
            await self.reject(request, signal)
        except WorkerLostError as exc:
            if not (request.acks_late and request.policy.reject_on_worker_lost):
                await self.fail(request, exc, "")
                return
            # task_reject_on_worker_lost: the message goes back (the broker's delivery cap stops a task that
            # kills every child it touches).
            log.error("Task %s[%s] lost its process (%s): requeued", request.name, request.id, exc)
            await request.reject(requeue=True)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                exc = RuntimeError(f"task raised {type(exc).__name__}")
            auto = task.autoretry(exc, request.message.retries)
            if auto is not None:
                await self.retry(request, auto)
            else:
                await self.fail(request, exc, traceback.format_exc())
        else:
            await self.succeed(request, value, time.monotonic() - started)

    async def _execute(self, request: Request) -> Any:
        """The pool runs the body its Call names; meanwhile (only) `terminate` may cancel it."""
        message, policy = request.message, request.policy
        call = Call(
            message.task,
            message.args,
            message.kwargs,
            request,  # the Request builds `self.request` only if the body asks; pickling a Call sends plain data
            message.timelimit[0] or policy.time_limit,
            message.timelimit[1] or policy.soft_time_limit,
            policy.acks_late,
            policy.reject_on_worker_lost,
        )
        self._executing.add(request.id)
        try:
            return await self.pool.execute(call)
        finally:
            self._executing.discard(request.id)

    async def succeed(self, request: Request, value: Any, runtime: float) -> None:
        """Store SUCCESS, run the on_stored hooks, tell listeners, ack (late)."""
        if request.message.embed:
            plan_children(request)  # the callbacks and next chain step it will send are its children too
        try:
            await self.store(request, State.SUCCESS, value)
        except BackendError as exc:
            # The result cannot be kept: with acks_late the message is left for redelivery.
            log.error("Task %s[%s] succeeded but its result could not be stored: %s", request.name, request.id, exc)
            if request.acks_late:
                await request.reject(requeue=True)
            return
        except Exception as exc:  # e.g. a return value the result serializer cannot encode
            await self.fail(request, exc, traceback.format_exc())
            return
        # `stored` is False when an on_stored hook failed: the message must not be acked. No hooks, no cost.
        stored = not self.on_stored or await run_stored_hooks(self.on_stored, request, Outcome(State.SUCCESS, value))
        if log.isEnabledFor(logging.INFO):  # the repr of a large result is not free
            log.info("Task %s[%s] succeeded in %.6fs: %s", request.name, request.id, runtime, _short(value))
        self.tell("task_succeeded", request, result=value, runtime=runtime)
        await (request.ack() if stored else self._keep(request))

    async def fail(self, request: Request, exc: BaseException, tb: str) -> None:
        """Store FAILURE, run on_stored hooks, tell listeners, ack or reject (``task_acks_on_failure_or_timeout``)."""
        log.error("Task %s[%s] raised unexpected: %r", request.name, request.id, exc)
        if tb:
            log.debug("%s", tb)
        await self._store_quietly(request, State.FAILURE, exception_to_dict(exc), tb)
        stored = not self.on_stored or await run_stored_hooks(self.on_stored, request, Outcome(State.FAILURE, exc, tb))
        self.tell("task_failed", request, exc=exc, traceback=tb)
        if not stored:
            await self._keep(request)
        elif request.acks_late and not request.policy.acks_on_failure_or_timeout:
            await request.reject(requeue=isinstance(exc, TimeLimitExceeded))
        else:
            await request.ack()

    async def retry(self, request: Request, signal: Retry) -> None:
        """Publish the retry message, store RETRY, then ack the original."""
        again = retry_message(request.message, signal)
        eta = again.eta
        assert eta is not None  # retry_message always sets one
        app = request.task.app
        try:
            producer = await app.aproducer()
            wire = encode_task(again, request.policy.serializer)
            await producer.publish(wire, request.delivery.queue, not_before=eta.timestamp())
        except (TransportError, OSError) as exc:
            log.error("Could not send retry of %s[%s]: %s", request.name, request.id, exc)
            if request.acks_late:
                await request.reject(requeue=True)
                return
            await self.fail(request, exc, traceback.format_exc())
            return
        reason = signal.exc if signal.exc is not None else signal
        log.info("Task %s[%s] retry: %s", request.name, request.id, signal)
        await self._store_quietly(request, State.RETRY, exception_to_dict(reason))
        self.tell("task_retried", request, exc=reason)
        await request.ack()

    async def reject(self, request: Request, signal: Reject) -> None:
        """The body raised Reject: give the message back (requeue) or drop it with a FAILURE record."""
        log.info("Task %s[%s] rejected (requeue=%s): %s", request.name, request.id, signal.requeue, signal.reason)
        if not signal.requeue:
            await self._store_quietly(request, State.FAILURE, exception_to_dict(signal))
        self.tell("task_rejected", request, requeue=signal.requeue)
        if request.acknowledged:
            return
        await request.reject(requeue=signal.requeue)

    async def revoke(
        self, request: Request, expired: bool = False, terminated: bool = False, signum: int | None = None
    ) -> None:
        """Settle a revoked or expired request: REVOKED record, listeners told, message acked."""
        reason = "expired" if expired else "terminated" if terminated else "revoked"
        log.info("Discarding %s task %s[%s]", reason, request.name, request.id)
        error = TaskRevokedError(reason)
        await self._store_quietly(request, State.REVOKED, exception_to_dict(error))
        stored = not self.on_stored or await run_stored_hooks(self.on_stored, request, Outcome(State.REVOKED, error))
        self.tell("task_revoked", request, expired=expired, terminated=terminated, signum=signum)
        await (request.ack() if stored else self._keep(request))

    async def _keep(self, request: Request) -> None:
        """An on_stored hook failed: an acks_late message goes back to the queue (early acks are long sent)."""
        if request.acks_late:
            await request.reject(requeue=True)

    def terminate(self, task_id: str, signum: int) -> bool:
        """Stop the running body of ``task_id`` as far as the pool can; True if asked to.

        The run then ends as revoked (``terminated``, with ``signum`` in the event). prefork sends ``signum`` to
        the child; an async body is cancelled; a body in a thread gets SystemExit at its next bytecode (one
        blocked in C code runs on until that call returns).
        """
        if task_id not in self._executing:  # not in its body (yet, or any more): nothing to stop
            return False
        for job in self.pool.running_jobs():
            if isinstance(job, TraceJob) and job.request.id == task_id and self.pool.cancellable(job.request.task):
                self.terminating[task_id] = signum
                if self.pool.cancel(job, signum):
                    return True
                del self.terminating[task_id]
        return False

    async def _store_quietly(self, request: Request, status: str, result: Any, tb: str | None = None) -> None:
        try:
            await self.store(request, status, result, tb)
        except Exception as exc:
            log.error("Could not store %s for %s[%s]: %s", status, request.name, request.id, exc)


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class TraceJob:
    """A pool job: trace one request."""

    __slots__ = ("request", "tracer")

    def __init__(self, tracer: Tracer, request: Request) -> None:
        self.tracer = tracer
        self.request = request

    async def run(self) -> None:
        await self.tracer.trace(self.request)

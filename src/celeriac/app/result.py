"""AsyncResult: read a task's state and result from the result backend, or wait for it.

Every blocking method has an async twin (``get``/``aget``, ``state``/``astate`` ...). A failed task's
exception is re-raised by ``get()`` with its original type when that type can be rebuilt here. Once a ready
record was seen, the handle keeps it (as Celery's does): asking again costs no round trip.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import inspect
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from celeriac._portal import portal
from celeriac.backends.base import TaskMeta
from celeriac.canvas import GroupResult
from celeriac.errors import TimeoutError as ResultTimeout
from celeriac.protocol.failures import exception_from_dict
from celeriac.protocol.states import PROPAGATE_STATES, READY_STATES, State

if TYPE_CHECKING:
    from celeriac.app.app import App

R = TypeVar("R")


DIRECT_WAIT = 1.0  # seconds get() waits to be handed an expected result before it waits on the loop


class AsyncResult(Generic[R]):
    """The pending or finished result of the task ``id``."""

    def __init__(self, id: str, app: App | None = None) -> None:
        if app is None:
            from celeriac.app.current import get_current_app

            app = get_current_app()
        self.id = id
        self.app = app
        self._ready: TaskMeta | None = None  # the ready record, once seen (ready states are final)
        #: The result of the task before this one in a chain (or a chord's header `GroupResult`), when known.
        self.parent: Any = None

    def __repr__(self) -> str:
        return f"<AsyncResult: {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AsyncResult) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    # -- async core ------------------------------------------------------------------------------
    async def ameta(self) -> TaskMeta:
        """The stored record (PENDING when there is none yet)."""
        if self._ready is not None:
            return self._ready
        backend = await self.app.abackend()
        meta = await backend.get_meta(self.id)
        if meta["status"] in READY_STATES:
            self._ready = meta
        return meta

    async def astate(self) -> str:
        """The task's state name."""
        return (await self.ameta())["status"]

    async def aget(self, timeout: float | None = None, propagate: bool = True) -> R:
        """Wait until the task is ready and return its value.

        Raises the task's exception (rebuilt) when it failed or was revoked and ``propagate`` is true,
        `celeriac.errors.TimeoutError` when ``timeout`` seconds pass first.
        """
        meta = self._ready
        if meta is None:
            backend = await self.app.abackend()
            meta = self._ready = await backend.wait(self.id, timeout)
        value: R = self._value(meta, propagate)
        return value

    async def aforget(self) -> None:
        """Delete the stored result."""
        self._ready = None
        backend = await self.app.abackend()
        await backend.forget(self.id)

    # -- sync facades ----------------------------------------------------------------------------
    def wait(self, timeout: float | None = None, propagate: bool = True) -> R:
        """Celery's older name of `get`."""
        return self.get(timeout, propagate)

    def get(self, timeout: float | None = None, propagate: bool = True) -> R:
        """Block until the task is ready and return its value (see `aget`)."""
        # A result expected since the send is handed to this thread by the listener, without two hops onto the
        # portal loop and back: p50 of delay().get() 1.01-1.21 ms without this, 0.82-0.93 ms with it (same hour,
        # bench/README.md). Anything else, or nothing within DIRECT_WAIT, waits on the loop as aget() does.
        if self._ready is None:
            started = time.monotonic()
            wait = DIRECT_WAIT if timeout is None else min(timeout, DIRECT_WAIT)
            self._ready = self.app.take_received_result(self.id, wait)
            if self._ready is None:
                left = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
                try:
                    return portal.run(self.aget(timeout=left, propagate=propagate))
                except ResultTimeout:  # name the timeout the caller gave, not what was left of it
                    raise ResultTimeout(f"the result of task {self.id} was not ready within {timeout}s") from None
        value: R = self._value(self._ready, propagate)
        return value

    def forget(self) -> None:
        """Delete the stored result."""
        portal.run(self.aforget())

    @property
    def meta(self) -> TaskMeta:
        """The stored record."""
        return self._ready or portal.run(self.ameta())

    @property
    def state(self) -> str:
        """The task's state name (``PENDING`` until something is known)."""
        return self.meta["status"]

    status = state

    @property
    def result(self) -> Any:
        """The return value, or the rebuilt exception of a failed task, or None while pending."""
        meta = self.meta
        if meta["status"] in PROPAGATE_STATES or meta["status"] == State.RETRY:
            return exception_from_dict(meta["result"]) if isinstance(meta["result"], dict) else meta["result"]
        return meta["result"]

    info = result

    @property
    def traceback(self) -> str | None:
        """The traceback text of a failed task."""
        return self.meta["traceback"]

    @property
    def date_done(self) -> dt.datetime | None:
        """When the task ended (None until then)."""
        done = self.meta.get("date_done")
        return dt.datetime.fromisoformat(done) if isinstance(done, str) else None

    # What the worker stores with ``result_extended=True`` (None without it, or while nothing is stored).
    @property
    def name(self) -> str | None:
        """The task name."""
        return self.meta.get("name")

    @property
    def args(self) -> Any:
        """The task's positional arguments."""
        return self.meta.get("args")

    @property
    def kwargs(self) -> Any:
        """The task's keyword arguments."""
        return self.meta.get("kwargs")

    @property
    def worker(self) -> str | None:
        """The node name of the worker that ran it."""
        return self.meta.get("worker")

    @property
    def retries(self) -> int | None:
        """How many times it was retried."""
        return self.meta.get("retries")

    @property
    def queue(self) -> str | None:
        """The queue it was delivered from."""
        return self.meta.get("queue")

    # -- control ---------------------------------------------------------------------------------
    async def arevoke(
        self,
        terminate: bool = False,
        signal: str | int | None = None,
        wait: bool = False,
        timeout: float | None = None,
        limit: int | None = None,
    ) -> Any:
        """Revoke this task on every worker (``terminate``: also stop it if running, with ``signal``, default
        SIGTERM); with ``wait`` the workers' replies are returned, collected for ``timeout`` seconds (default 1)
        or until ``limit`` replies came."""
        options: dict[str, Any] = {"reply": wait, "limit": limit}
        if timeout is not None:
            options["timeout"] = timeout
        return await self.app.control.arevoke(self.id, terminate=terminate, signal=signal or "SIGTERM", **options)

    def revoke(
        self,
        terminate: bool = False,
        signal: str | int | None = None,
        wait: bool = False,
        timeout: float | None = None,
        limit: int | None = None,
    ) -> Any:
        """Revoke this task (see `arevoke`)."""
        return portal.run(self.arevoke(terminate, signal, wait, timeout, limit))

    def then(
        self, callback: Callable[[AsyncResult[R]], Any], on_error: Callable[[BaseException], Any] | None = None
    ) -> concurrent.futures.Future[Any]:
        """Call ``callback(self)`` once the task is ready (``on_error(exc)`` if waiting fails), without blocking:
        a future of what the callback returns. The wait runs on celeriac's portal loop; an ``async def``
        callback is awaited there, a sync one should be quick."""

        async def settle() -> Any:
            try:
                await self.aget(propagate=False)
            except Exception as exc:
                if on_error is None:
                    raise
                return await _maybe_await(on_error(exc))
            return await _maybe_await(callback(self))

        return portal.submit(settle())

    def ready(self) -> bool:
        """True once the task succeeded, failed or was revoked."""
        return self.state in READY_STATES

    def successful(self) -> bool:
        """True when the task succeeded."""
        return self.state == State.SUCCESS

    def failed(self) -> bool:
        """True when the task failed."""
        return self.state == State.FAILURE

    # -- canvas ----------------------------------------------------------------------------------
    @property
    def children(self) -> list[Any]:
        """Results of the tasks this one sent, as its stored record lists them (Celery's result tuples)."""
        return [self._from_tuple(child) for child in self.meta.get("children") or []]

    def _from_tuple(self, value: Any) -> Any:
        (node_id, _parent), members = value
        if members is None:
            return AsyncResult(node_id, app=self.app)
        return GroupResult(node_id, [self._from_tuple(m) for m in members], app=self.app)

    def collect(self, timeout: float | None = None) -> Iterator[tuple[Any, Any]]:
        """``(result, value)`` for this result and, depth first, its stored children (Celery's collect())."""
        for node in [self, *self.children]:
            if node is self:
                yield self, self.get(timeout=timeout)
            elif isinstance(node, AsyncResult):
                yield from node.collect(timeout)
            else:
                yield node, node.get(timeout=timeout)

    # -- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _value(meta: TaskMeta, propagate: bool) -> Any:
        status, value = meta["status"], meta["result"]
        if status in PROPAGATE_STATES:
            exc = exception_from_dict(value) if isinstance(value, dict) else RuntimeError(str(value))
            if propagate:
                raise exc
            return exc
        return value


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value

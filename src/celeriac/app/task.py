"""Task[P, R]: a registered function with Celery's sending API (``delay``/``apply_async``) and async twins.

Where a body runs (the loop, a thread) is the worker pool's choice; ``is_async`` tells it which kind it has.
``retry()`` and ``autoretry_for`` decide *whether* and *when* to retry; the worker's
tracer sends the retry message.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import random
from collections.abc import Callable, Coroutine, Mapping
from types import MappingProxyType
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    Literal,
    NoReturn,
    ParamSpec,
    Protocol,
    TypeVar,
    Unpack,
    overload,
)

from celeriac._portal import portal
from celeriac.app.context import RequestContext
from celeriac.app.current import current_request, get_current_app
from celeriac.app.eager import CANVAS_OPTIONS, EagerResult, drive, eager_options, run_eagerly
from celeriac.app.on_commit import on_commit
from celeriac.app.options import SendOptions, TaskOptions, check_send_options, check_task_options
from celeriac.app.sending import retry_options
from celeriac.app.signature import checker
from celeriac.backends.base import ReplyTo, TaskMeta
from celeriac.canvas import Signature, set_host_finder, xmap, xstarmap
from celeriac.canvas import chunks as Chunks
from celeriac.canvas.replace import areplace
from celeriac.errors import Ignore, MaxRetriesExceededError, Retry

if TYPE_CHECKING:
    from celeriac.app.app import App
    from celeriac.app.result import AsyncResult

set_host_finder(get_current_app)  # an unbound signature sends through the current app

P = ParamSpec("P")
R = TypeVar("R")

_NO_REQUEST = RequestContext(called_directly=True)


def _accept_anything(*args: Any, **kwargs: Any) -> None:
    """The check of a function without a readable signature: none."""


class TaskDecorator(Protocol):
    """What ``@app.task(...)`` returns for unbound tasks."""

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


class BoundTaskDecorator(Protocol):
    """What ``@app.task(bind=True, ...)`` returns: the function's first parameter receives the task."""

    @overload
    def __call__(self, fn: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[Concatenate[Any, P], R], /) -> Task[P, R]: ...


class Task(Generic[P, R]):
    """A task: call it like the function, send it with ``delay``/``apply_async``, await ``adelay``.

    Attributes mirror Celery's task options: ``name``, ``queue``, ``ignore_result``, ``acks_late``,
    ``max_retries``, ``default_retry_delay``, ``autoretry_for``, ``retry_kwargs``, ``retry_backoff``,
    ``retry_backoff_max``, ``retry_jitter``, ``rate_limit``, ``time_limit``, ``soft_time_limit``,
    ``track_started``, ``serializer``, ``priority``, ``reject_on_worker_lost``, ``typing``, ``trail``.
    """

    # Class-level defaults: a ``base=`` subclass may set any of them (``max_retries = 5``); ``@app.task(...)``
    # options win over both.
    name: str = ""
    queue: str | None = None
    ignore_result: bool | None = None
    acks_late: bool | None = None
    max_retries: int | None = 3
    default_retry_delay: float = 180.0
    autoretry_for: tuple[type[BaseException], ...] = ()
    retry_kwargs: Mapping[str, Any] = MappingProxyType({})
    retry_backoff: bool | float = False
    retry_backoff_max: float = 600.0
    retry_jitter: bool = True
    rate_limit: str | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    track_started: bool | None = None
    serializer: str | None = None
    priority: int | None = None
    reject_on_worker_lost: bool | None = None
    typing: bool = True
    trail: bool = True  # record the tasks this one sends as its result's children (Celery's default)

    def __init__(self, app: App, fn: Callable[..., Any], *, bind: bool = False, **options: Unpack[TaskOptions]):
        check_task_options(options)
        self.app = app
        self.fn = fn
        self.bind = bind
        for key, value in options.items():
            setattr(self, key, value)
        self.name = options.get("name") or type(self).name or f"{fn.__module__}.{fn.__qualname__}"
        self.is_async = inspect.iscoroutinefunction(fn)
        self.autoretry_for = tuple(self.autoretry_for)
        self.retry_kwargs = dict(self.retry_kwargs)
        self._checker: Callable[..., None] | None = None
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<@task: {self.name}>"

    # -- calling ---------------------------------------------------------------------------------
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Run the function here and now (for ``async def`` tasks: return its coroutine)."""
        return self.fn(self, *args, **kwargs) if self.bind else self.fn(*args, **kwargs)

    @property
    def request(self) -> RequestContext:
        """The request of the current run of this task (``called_directly`` outside a worker)."""
        return current_request() or _NO_REQUEST

    # -- sending ---------------------------------------------------------------------------------
    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Send the task with these arguments; blocks until the broker has it (``task_always_eager``: runs it
        here, see `apply`)."""
        if self.typing:
            self.check_arguments(args, kwargs)
        if self.app.conf.task_always_eager:
            return self.apply(args, kwargs)
        result: AsyncResult[R] = self.app._direct.send_blocking(self.name, args, kwargs, self, {})
        return result

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Async twin of `delay`."""
        if self.typing:
            self.check_arguments(args, kwargs)
        if self.app.conf.task_always_eager:
            return await self.aapply(args, kwargs)
        result: AsyncResult[R] = await self.app.asend_task(self.name, args, kwargs, task=self)
        return result

    def delay_on_commit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """`delay` once the current Django transaction commits (never after a rollback; `celeriac.app.on_commit`)."""
        self.apply_async_on_commit(args, kwargs)

    def apply_async_on_commit(
        self,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[SendOptions],
    ) -> None:
        """`apply_async` once the current Django transaction commits (see `delay_on_commit`)."""
        if self.typing:  # a wrong call fails here, not later inside Django's commit
            self.check_arguments(args, kwargs)
        check_send_options(options)
        on_commit(self.apply_async, args, kwargs, **options)

    def check_arguments(self, args: tuple[Any, ...] | list[Any], kwargs: Mapping[str, Any] | None) -> None:
        """Raise TypeError when the body cannot take these arguments (the ``typing`` option, as Celery's)."""
        if self._checker is None:
            self._checker = checker(self.fn, self.bind) or _accept_anything
        try:
            self._checker(*args, **(kwargs or {}))
        except TypeError as exc:
            raise TypeError(f"{self.name}: {exc}") from None

    def apply(
        self,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> EagerResult[R]:
        """Run the body here and now, as a worker would (hooks, retries at once), and return an `EagerResult`.

        Options: ``task_id``, ``retries``, ``throw`` (raise a failure at once; default
        ``task_eager_propagates``), ``headers``; the sending options (``countdown``, ``queue``...) are
        accepted and have no effect, as in Celery. A sync body runs in this thread, an ``async def`` one on the
        portal loop (use `aapply` to run it on yours).
        """
        if any(options.get(key) for key in CANVAS_OPTIONS):  # callbacks, errbacks, a chain's rest: eager canvas
            return portal.run(self.aapply(args, kwargs, **options))
        run = run_eagerly(self, args, kwargs, inline=not self.is_async, **eager_options(options))
        return portal.run(run) if self.is_async else drive(run)

    async def aapply(
        self,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> EagerResult[R]:
        """Async twin of `apply`: the body runs on this loop (a sync body too)."""
        if any(options.get(key) for key in CANVAS_OPTIONS):
            result: EagerResult[R] = await self.app.aapply_canvas(Signature(self, args, kwargs), None, None, options)
            return result
        return await run_eagerly(self, args, kwargs, **eager_options(options))

    def apply_async(
        self,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[SendOptions],
    ) -> AsyncResult[R]:
        """Send the task with options (``countdown``, ``eta``, ``expires``, ``queue``, ``priority``, ...)."""
        if self.typing:
            self.check_arguments(args, kwargs)
        if self.app.conf.task_always_eager:
            return self.apply(args, kwargs, **options)
        result: AsyncResult[R] = self.app._direct.send_blocking(self.name, args, kwargs, self, options)
        return result

    async def aapply_async(
        self,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[SendOptions],
    ) -> AsyncResult[R]:
        """Async twin of `apply_async`."""
        if self.typing:
            self.check_arguments(args, kwargs)
        if self.app.conf.task_always_eager:
            return await self.aapply(args, kwargs, **options)
        result: AsyncResult[R] = await self.app.asend_task(self.name, args, kwargs, task=self, **options)
        return result

    # -- canvas (celeriac.canvas) -----------------------------------------------------------------
    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature of this task with partial arguments (a parent's result is prepended)."""
        return Signature(self, args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable signature: takes no parent's result."""
        return Signature(self, args, kwargs, immutable=True)

    def signature(self, args: Any = None, kwargs: Any = None, **options: Any) -> Signature:
        """A signature with send options (Celery's ``task.signature(args, kwargs, **options)``)."""
        return Signature(self, args, kwargs, options)

    subtask = signature

    def map(self, it: Any) -> xmap:
        """One ``celery.map`` task calling this task for each item of ``it``."""
        return xmap(self.s(), it, app=self.app)

    def starmap(self, it: Any) -> xstarmap:
        """One ``celery.starmap`` task calling this task with each argument tuple of ``it``."""
        return xstarmap(self.s(), it, app=self.app)

    def chunks(self, it: Any, n: int) -> Chunks:
        """A group of ``celery.starmap`` tasks, ``n`` argument tuples of ``it`` each."""
        return Chunks(self.s(), it, n, app=self.app)

    def replace(self, sig: Signature) -> NoReturn:
        """Put ``sig`` in this running task's place (its id, group, callbacks, chain, chord); raises Ignore."""
        portal.run(areplace(self.request, sig))
        raise Ignore()

    async def areplace(self, sig: Signature) -> NoReturn:
        """Async twin of `replace` (for ``async def`` bound tasks)."""
        await areplace(self.request, sig)
        raise Ignore()

    # -- hooks (override in a ``base=`` subclass; each may also be ``async def``) ---------------------------
    def before_start(self, task_id: str, args: Any, kwargs: Any) -> Any:
        """Called before the body runs."""

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> Any:
        """Called after the body returned ``retval``."""

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> Any:
        """Called after the body raised ``exc`` (``einfo``: `celeriac.app.eager.ExceptionInfo`)."""

    def on_retry(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> Any:
        """Called when the run is retried."""

    def after_return(self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> Any:
        """Called after the outcome (``status`` SUCCESS or FAILURE) is settled."""

    # -- state -----------------------------------------------------------------------------------
    def update_state(self, task_id: str | None = None, state: str | None = None, meta: Any = None) -> None:
        """Store ``state`` (a custom one such as ``"PROGRESS"`` too) with ``meta`` as the task's current record
        (``AsyncResult.state`` / ``.info`` read it); ``task_id`` defaults to the running task's."""
        portal.run(self.aupdate_state(task_id, state, meta))

    async def aupdate_state(self, task_id: str | None = None, state: str | None = None, meta: Any = None) -> None:
        """Async twin of `update_state`."""
        task_id = task_id or self.request.id
        if not task_id:
            raise ValueError("update_state() needs a task_id outside a running task")
        if self.request.is_eager and task_id == self.request.id:
            return  # an eager run has no stored record (as in Celery's eager mode)
        record = TaskMeta(
            task_id=task_id, status=state or "PENDING", result=meta, traceback=None, children=[], date_done=None
        )
        backend = await self.app.abackend()
        request = self.request  # its own state goes where its message asked (rpc://: the client's reply queue)
        reply_to = request.reply_to if task_id == request.id else None
        await backend.store_task(record, ReplyTo(reply_to, request.correlation_id or task_id) if reply_to else None)

    # -- retrying --------------------------------------------------------------------------------
    @overload
    def retry(
        self,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        exc: BaseException | None = None,
        countdown: float | None = None,
        eta: dt.datetime | None = None,
        max_retries: int | None = None,
        throw: Literal[True] = True,
    ) -> NoReturn: ...
    @overload
    def retry(
        self,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        exc: BaseException | None = None,
        countdown: float | None = None,
        eta: dt.datetime | None = None,
        max_retries: int | None = None,
        *,
        throw: bool,
    ) -> Retry: ...

    def retry(
        self,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        exc: BaseException | None = None,
        countdown: float | None = None,
        eta: dt.datetime | None = None,
        max_retries: int | None = None,
        throw: bool = True,
    ) -> Retry:
        """Ask the worker to run this task again later.

        With ``throw`` (the default) it raises `Retry`: the worker re-sends the message with ``retries + 1``,
        records RETRY and acks the original. With ``throw=False`` (Celery's meaning) it re-sends the message
        itself, blocking until the broker has it, and returns the `Retry`; the body goes on, and what it then
        returns or raises settles this run. Past ``max_retries`` it raises ``exc`` when given, else
        `MaxRetriesExceededError`, whatever ``throw`` says.
        """
        request = self.request
        limit = self.max_retries if max_retries is None else max_retries
        if limit is not None and request.retries >= limit:
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(
                f"can't retry {self.name}[{request.id}] args:{request.args} kwargs:{dict(request.kwargs)}"
            )
        when: float | dt.datetime = (
            eta if eta is not None else (self.default_retry_delay if countdown is None else countdown)
        )
        signal = Retry(exc=exc, when=when)
        signal.new_args = tuple(args) if args is not None else None
        signal.new_kwargs = dict(kwargs) if kwargs is not None else None
        signal.max_retries = limit
        if throw:
            raise signal
        if request.is_eager:  # Celery's rule: an eager run retries only by raising
            return signal
        again_args = signal.new_args if signal.new_args is not None else request.args
        again_kwargs = signal.new_kwargs if signal.new_kwargs is not None else request.kwargs
        portal.run(self.app.asend_task(self.name, again_args, again_kwargs, task=self, **retry_options(request, when)))
        return signal

    def autoretry(self, exc: BaseException, retries: int) -> Retry | None:
        """The `Retry` that ``autoretry_for`` asks for after ``exc`` on try ``retries``, or None.

        None also when max_retries is used up: the caller then records the failure itself.
        """
        if not self.autoretry_for or not isinstance(exc, self.autoretry_for):
            return None
        limit = self.retry_kwargs.get("max_retries", self.max_retries)
        if limit is not None and retries >= limit:
            return None
        countdown: float = self.retry_kwargs.get("countdown", self.default_retry_delay)
        if self.retry_backoff:
            factor = 1 if self.retry_backoff is True else float(self.retry_backoff)
            countdown = min(self.retry_backoff_max, factor * (2**retries))
            if self.retry_jitter:
                countdown = random.uniform(0, countdown)  # full jitter, spreads a thundering herd
        signal = Retry(exc=exc, when=countdown)
        signal.max_retries = limit
        return signal

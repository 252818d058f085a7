"""Eager runs: ``Task.apply()`` runs the body here and now and returns an `EagerResult` (no broker, no backend).

``task_always_eager`` makes ``delay``/``apply_async`` do the same (for test suites), and
``task_eager_propagates`` makes a failed eager run raise at once. As Celery's eager mode: ``self.request``
has ``is_eager`` set, a retry runs the task again at once (``retries + 1``, no countdown wait) until
``max_retries``, and the task's hooks (``before_start``, ``on_success``, ``on_failure``, ``on_retry``,
``after_return``) are called.
"""

from __future__ import annotations

import datetime as dt
import inspect
import traceback as tb_module
import uuid
from collections.abc import Awaitable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from celeriac._portal import portal
from celeriac.app.context import RequestContext
from celeriac.app.current import request_var
from celeriac.app.options import check_send_options
from celeriac.app.result import AsyncResult
from celeriac.backends.base import TaskMeta
from celeriac.errors import Ignore, Reject, Retry
from celeriac.protocol.states import PROPAGATE_STATES, State

if TYPE_CHECKING:
    from celeriac.app.task import Task

R = TypeVar("R")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ExceptionInfo:
    """What the failure hooks get as ``einfo`` (as Celery's): the exception, its type and its traceback text."""

    exception: BaseException
    traceback: str

    @property
    def type(self) -> type[BaseException]:
        """The exception's type."""
        return type(self.exception)

    def __str__(self) -> str:
        return self.traceback


class EagerResult(AsyncResult[R]):
    """The result of a task run here (``Task.apply()``): already ready; nothing is stored or fetched."""

    def __init__(
        self, id: str, value: Any, state: str, task: Task[Any, R], traceback: str | None = None, retries: int = 0
    ) -> None:
        super().__init__(id, app=task.app)
        self._value_or_exc = value
        self._ready = TaskMeta(
            task_id=id,
            status=state,
            result=value,
            traceback=traceback,
            children=[],
            date_done=dt.datetime.now(dt.UTC).isoformat(),
            name=task.name,
            retries=retries,
        )

    def __repr__(self) -> str:
        return f"<EagerResult: {self.id}>"

    async def ameta(self) -> TaskMeta:
        """The record of the run (never fetched)."""
        assert self._ready is not None
        return self._ready

    async def aget(self, timeout: float | None = None, propagate: bool = True) -> R:
        """The value; the task's own exception when it failed and ``propagate`` is true."""
        return self.get(timeout, propagate)

    def get(self, timeout: float | None = None, propagate: bool = True) -> R:
        """The value; the task's own exception when it failed and ``propagate`` is true."""
        if propagate and self.state in PROPAGATE_STATES and isinstance(self._value_or_exc, BaseException):
            raise self._value_or_exc
        value: R = self._value_or_exc
        return value

    async def aforget(self) -> None:
        """Nothing is stored for an eager run."""

    def forget(self) -> None:
        """Nothing is stored for an eager run."""

    @property
    def meta(self) -> TaskMeta:
        """The record of the run."""
        assert self._ready is not None
        return self._ready

    @property
    def result(self) -> Any:
        """The return value, or the exception the body raised."""
        return self._value_or_exc

    info = result


def eager_context(task: Task[Any, Any], task_id: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], retries: int,
                  headers: Mapping[str, Any] | None = None) -> RequestContext:  # fmt: skip
    """The ``self.request`` of an eager run."""
    return RequestContext(
        id=task_id,
        task=task.name,
        args=args,
        kwargs=dict(kwargs),
        retries=retries,
        root_id=task_id,
        headers=dict(headers or {}),
        delivery_info={"is_eager": True, "exchange": None, "routing_key": None, "priority": None},
        is_eager=True,
    )


EAGER_OPTIONS = frozenset({"task_id", "retries", "throw", "headers"})
CANVAS_OPTIONS = ("link", "link_error", "chain", "chord")
"""Options an eager run carries out through the eager canvas (`celeriac.app.eager_canvas`), never drops."""


def eager_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options of ``apply()`` that mean something here; the sending ones (queue, countdown...) are dropped,
    as Celery's eager mode drops them; a name that is neither is refused (`check_send_options`)."""
    check_send_options({key: value for key, value in options.items() if key not in EAGER_OPTIONS})
    return {key: value for key, value in options.items() if key in EAGER_OPTIONS}


async def run_eagerly(
    task: Task[Any, R],
    args: tuple[Any, ...] | list[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    task_id: str | None = None,
    retries: int = 0,
    throw: bool | None = None,
    headers: Mapping[str, Any] | None = None,
    inline: bool = False,
) -> EagerResult[R]:
    """Run ``task``'s body in this context (an ``async def`` body is awaited here) and settle it as a worker
    would, hooks included; see the module docstring.

    ``inline``: never suspend (`apply` drives it in the caller's thread): an awaitable a sync body or a hook
    returns is run on the portal loop instead of awaited here.
    """
    task_id = task_id or str(uuid.uuid4())
    propagates = task.app.conf.task_eager_propagates if throw is None else throw
    while True:
        context = eager_context(task, task_id, tuple(args), kwargs or {}, retries, headers)
        token = request_var().set(context)
        try:
            await _settle(task.before_start(task_id, args, kwargs or {}), inline)
            value = await _settle(task(*args, **(kwargs or {})), inline)
        except Retry as signal:
            await _settle(task.on_retry(signal.exc or signal, task_id, args, kwargs or {}, _info(signal)), inline)
            args = signal.new_args if signal.new_args is not None else args
            kwargs = signal.new_kwargs if signal.new_kwargs is not None else kwargs
            retries += 1
            continue
        except Ignore as signal:
            return EagerResult(task_id, signal, State.IGNORED, task, retries=retries)
        except BaseException as exc:
            auto = task.autoretry(exc, retries) if not isinstance(exc, Reject) else None
            if auto is not None:
                await _settle(task.on_retry(exc, task_id, args, kwargs or {}, _info(exc)), inline)
                retries += 1
                continue
            text = tb_module.format_exc()
            info = ExceptionInfo(exc, text)
            await _settle(task.on_failure(exc, task_id, args, kwargs or {}, info), inline)
            await _settle(task.after_return(State.FAILURE, exc, task_id, args, kwargs or {}, info), inline)
            if propagates:
                raise
            return EagerResult(task_id, exc, State.FAILURE, task, traceback=text, retries=retries)
        finally:
            request_var().reset(token)
        await _settle(task.on_success(value, task_id, args, kwargs or {}), inline)
        await _settle(task.after_return(State.SUCCESS, value, task_id, args, kwargs or {}, None), inline)
        return EagerResult(task_id, value, State.SUCCESS, task, retries=retries)


def _info(exc: BaseException) -> ExceptionInfo:
    return ExceptionInfo(exc, "".join(tb_module.format_exception(exc)))


async def _settle(value: Any, inline: bool) -> Any:
    """``value``, awaited first when it is awaitable (bodies and hooks may be ``async def``)."""
    if not inspect.isawaitable(value):
        return value
    if inline:
        return portal.run(_awaited(value))
    return await value


async def _awaited(value: Awaitable[Any]) -> Any:
    return await value


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (`run_eagerly` with ``inline``) to its end in this thread."""
    try:
        coro.send(None)
    except StopIteration as stop:
        result: T = stop.value
        return result
    coro.close()
    raise RuntimeError("an inline eager run suspended")  # cannot happen: inline runs await nothing real

"""A task class's hooks and Celery's signals, in the worker.

`TaskHooks` is a task listener: as a request moves along it calls the hooks a ``base=`` class overrides
(``before_start``, ``on_success``, ``on_failure``, ``on_retry``, ``after_return``) and sends the task signals
(``task_received``, ``task_prerun``, ``task_success``, ``task_failure``, ``task_retry``, ``task_revoked``,
``task_postrun``). They run after the tracer told listeners, in one asyncio task per request, in order, with
``self.request`` set: a sync hook in a thread (it may block), an ``async def`` one on the loop. A hook that
raises is logged; the task's outcome stands. With no hook overridden and no receiver connected, nothing runs.

`WorkerSignals` (the first worker step) installs the listener and sends ``celeryd_init`` and ``worker_init``
at start and ``worker_shutdown`` at the end; `ReadySignal` (after the consumer) sends ``worker_ready``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from celeriac import signals
from celeriac.app.current import request_var
from celeriac.app.eager import ExceptionInfo
from celeriac.app.task import Task
from celeriac.protocol.states import State
from celeriac.worker.bootsteps import Step
from celeriac.worker.listeners import TaskListener
from celeriac.worker.steps import ConsumerStep

if TYPE_CHECKING:
    from celeriac.worker.request import Request
    from celeriac.worker.worker import Worker

log = logging.getLogger("celeriac.worker")

HOOKS = ("before_start", "on_success", "on_failure", "on_retry", "after_return")
TASK_SIGNALS = (
    signals.task_received,
    signals.task_prerun,
    signals.task_success,
    signals.task_failure,
    signals.task_retry,
    signals.task_revoked,
    signals.task_postrun,
)

_RECEIVERS = tuple(signal.entries for signal in TASK_SIGNALS)  # the lists themselves: any() reads them as they are


def overrides(task: Task[Any, Any], hook: str) -> bool:
    """Whether ``task``'s class overrides ``hook``."""
    return getattr(type(task), hook) is not getattr(Task, hook)


class TaskHooks(TaskListener):
    """Calls task hooks and sends task signals (see the module docstring)."""

    def __init__(self) -> None:
        self._last: dict[str, asyncio.Task[None]] = {}  # request id -> its latest hook run (runs chain)
        self._hooked: dict[type[Task[Any, Any]], bool] = {}  # task class -> overrides a hook (asked once)

    def _wanted(self, request: Request) -> bool:
        # Asked 3-4 times per task: a dict lookup and seven list checks, not a walk over every hook each time.
        cls = type(request.task)
        hooked = self._hooked.get(cls)
        if hooked is None:
            hooked = self._hooked[cls] = any(overrides(request.task, hook) for hook in HOOKS)
        return hooked or any(_RECEIVERS)

    def _then(self, request: Request, *steps: Callable[[], Any]) -> None:
        """Run ``steps`` (hook or signal calls) after the request's earlier ones, with its ``self.request``."""
        previous = self._last.get(request.id)

        async def run() -> None:
            if previous is not None:
                with contextlib.suppress(Exception):
                    await previous
            request_var().set(request)
            for step in steps:
                try:
                    value = step()
                    if isinstance(value, Awaitable):
                        await value
                except Exception:
                    log.exception("Hook of task %s[%s] failed", request.name, request.id)

        run_task = asyncio.get_running_loop().create_task(run())
        self._last[request.id] = run_task
        run_task.add_done_callback(lambda done: self._forget(request.id, done))

    def _forget(self, task_id: str, done: asyncio.Task[None]) -> None:
        if self._last.get(task_id) is done:
            del self._last[task_id]

    def _hook(self, request: Request, name: str, *args: Any) -> Callable[[], Any]:
        hook = getattr(request.task, name)
        if not overrides(request.task, name):
            return lambda: None
        if request.task.is_async or asyncio.iscoroutinefunction(hook):
            return lambda: hook(*args)
        return lambda: asyncio.to_thread(hook, *args)

    def task_received(self, request: Request) -> None:
        if signals.task_received.has_receivers():
            self._then(request, lambda: signals.task_received.asend(None, request=request))

    def task_started(self, request: Request) -> None:
        if not self._wanted(request):
            return
        task, m = request.task, request.message
        self._then(
            request,
            self._hook(request, "before_start", m.id, m.args, m.kwargs),
            lambda: signals.task_prerun.asend(task, task_id=m.id, task=task, args=m.args, kwargs=m.kwargs),
        )

    def task_succeeded(self, request: Request, result: Any, runtime: float) -> None:
        if not self._wanted(request):
            return
        task, m = request.task, request.message
        self._then(
            request,
            self._hook(request, "on_success", result, m.id, m.args, m.kwargs),
            lambda: signals.task_success.asend(task, result=result),
            self._hook(request, "after_return", State.SUCCESS, result, m.id, m.args, m.kwargs, None),
            self._postrun(request, result, State.SUCCESS),
        )

    def task_failed(self, request: Request, exc: BaseException, traceback: str) -> None:
        if not self._wanted(request):
            return
        task, m = request.task, request.message
        einfo = ExceptionInfo(exc, traceback)
        self._then(
            request,
            self._hook(request, "on_failure", exc, m.id, m.args, m.kwargs, einfo),
            lambda: signals.task_failure.asend(
                task, task_id=m.id, exception=exc, args=m.args, kwargs=m.kwargs, traceback=traceback, einfo=einfo
            ),
            self._hook(request, "after_return", State.FAILURE, exc, m.id, m.args, m.kwargs, einfo),
            self._postrun(request, exc, State.FAILURE),
        )

    def task_retried(self, request: Request, exc: BaseException) -> None:
        if not self._wanted(request):
            return
        m = request.message
        einfo = ExceptionInfo(exc, repr(exc))
        self._then(
            request,
            self._hook(request, "on_retry", exc, m.id, m.args, m.kwargs, einfo),
            lambda: signals.task_retry.asend(request.task, request=request.context(), reason=exc, einfo=einfo),
            self._postrun(request, exc, State.RETRY),
        )

    def task_revoked(self, request: Request, expired: bool, terminated: bool, signum: int | None = None) -> None:
        if signals.task_revoked.has_receivers():
            context = request.context()
            self._then(
                request,
                lambda: signals.task_revoked.asend(
                    request.task, request=context, terminated=terminated, signum=signum, expired=expired
                ),
            )

    def _postrun(self, request: Request, retval: Any, state: str) -> Callable[[], Awaitable[Any]]:
        task, m = request.task, request.message
        return lambda: signals.task_postrun.asend(
            task, task_id=m.id, task=task, args=m.args, kwargs=m.kwargs, retval=retval, state=state
        )

    async def drain(self) -> None:
        """Wait for the hook runs under way (at shutdown)."""
        while self._last:
            await asyncio.gather(*self._last.values(), return_exceptions=True)


class WorkerSignals(Step["Worker"]):
    """Installs `TaskHooks`; sends ``celeryd_init`` and ``worker_init`` first, ``worker_shutdown`` last."""

    def __init__(self) -> None:
        self.hooks = TaskHooks()

    async def start(self, worker: Worker) -> None:
        worker.listeners.append(self.hooks)
        await signals.celeryd_init.asend(worker.hostname, instance=worker, conf=worker.app.conf, options={})
        await signals.worker_init.asend(worker)

    async def stop(self, worker: Worker) -> None:
        await self.hooks.drain()
        if self.hooks in worker.listeners:
            worker.listeners.remove(self.hooks)
        await signals.worker_shutdown.asend(worker)


class ReadySignal(Step["Worker"]):
    """Sends ``worker_ready`` once the consumer is ready."""

    requires = (WorkerSignals, ConsumerStep)

    async def start(self, worker: Worker) -> None:
        await signals.worker_ready.asend(worker.consumer)

"""Signals with Celery's names and arguments: ``@task_success.connect`` and friends.

A `Signal` keeps its receivers (strong references, optionally for one ``sender`` only, deduplicated by
``dispatch_uid``). ``send`` calls each receiver with ``sender=`` and the signal's keyword arguments and returns
``[(receiver, result)]``; a receiver that raises is logged and the others still run (as Celery's
``send``). A receiver may be ``async def``: `asend` awaits it; `send` schedules it on the running loop, or
runs it on the portal loop when called outside one.

Sent by celeriac: ``before_task_publish``, ``after_task_publish`` (the sending process); ``task_received``,
``task_prerun``, ``task_postrun``, ``task_success``, ``task_failure``, ``task_retry``, ``task_revoked``,
``task_unknown``, ``celeryd_init``, ``worker_init``, ``worker_ready``, ``worker_shutdown`` (the worker; the
task signals on the worker's loop, around the body rather than in the process or thread that runs it). Celery's
other signal names raise AttributeError saying they are not sent yet, so a receiver is never connected to a
signal that never fires.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar, overload

from celeriac._portal import portal

log = logging.getLogger("celeriac.signals")

Receiver = Callable[..., Any]
F = TypeVar("F", bound=Callable[..., Any])


class Signal:
    """A named signal; ``providing_args`` documents the keyword arguments it is sent with."""

    def __init__(self, name: str, providing_args: tuple[str, ...] = ()) -> None:
        self.name = name
        self.providing_args = providing_args
        self._receivers: list[tuple[object, object | None, Receiver]] = []  # (uid, sender, receiver)
        self._pending: set[asyncio.Task[Any]] = set()  # async receivers scheduled by send(), kept alive

    def __repr__(self) -> str:
        return f"<Signal: {self.name}>"

    @overload
    def connect(
        self, receiver: F, *, sender: object | None = None, dispatch_uid: object | None = None, weak: bool = False
    ) -> F: ...
    @overload
    def connect(
        self,
        receiver: None = None,
        *,
        sender: object | None = None,
        dispatch_uid: object | None = None,
        weak: bool = False,
    ) -> Callable[[F], F]: ...
    def connect(
        self, receiver: Receiver | None = None, *, sender: object | None = None, dispatch_uid: object | None = None,
        weak: bool = False,
    ) -> Any:  # fmt: skip
        """Connect ``receiver`` (also as a decorator, with or without arguments); returns it.

        ``sender``: only for sends from that sender (a task, a task name...). ``dispatch_uid``: connecting
        twice with one uid keeps one receiver. ``weak`` is accepted for Celery's signature; references are
        always strong (a receiver stays connected until `disconnect`).
        """

        def add(function: Receiver) -> Receiver:
            uid = dispatch_uid if dispatch_uid is not None else (id(function), id(sender))
            if not any(existing == uid for existing, _, _ in self._receivers):
                self._receivers.append((uid, sender, function))
            return function

        return add(receiver) if receiver is not None else add

    def disconnect(
        self, receiver: Receiver | None = None, *, sender: object | None = None, dispatch_uid: object | None = None
    ) -> bool:
        """Disconnect a receiver (by function and sender, or by ``dispatch_uid``); True if one was connected."""
        uid = dispatch_uid if dispatch_uid is not None else (id(receiver), id(sender))
        before = len(self._receivers)
        self._receivers[:] = [entry for entry in self._receivers if entry[0] != uid]  # same list: see `entries`
        return len(self._receivers) != before

    @property
    def receivers(self) -> list[Receiver]:
        """The connected receivers."""
        return [receiver for _, _, receiver in self._receivers]

    @property
    def entries(self) -> list[tuple[object, object | None, Receiver]]:
        """The receiver list itself (always the same list object; read it, never change it): hot paths keep it
        and test its truth instead of calling `has_receivers`."""
        return self._receivers

    def has_receivers(self) -> bool:
        """Whether any receiver is connected (senders check it to skip building the arguments)."""
        return bool(self._receivers)

    def _live(self, sender: object) -> list[Receiver]:
        return [r for _, wanted, r in self._receivers if wanted is None or wanted is sender or wanted == sender]

    def send(self, sender: object = None, **named: Any) -> list[tuple[Receiver, Any]]:
        """Call every receiver; a failure is logged and returned in place of its result, never raised."""
        results: list[tuple[Receiver, Any]] = []
        for receiver in self._live(sender):
            try:
                value = receiver(signal=self, sender=sender, **named)
                if inspect.iscoroutine(value):
                    value = self._run_async(value)
            except Exception as exc:
                log.exception("Signal receiver %r of %s failed", receiver, self.name)
                value = exc
            results.append((receiver, value))
        return results

    async def asend(self, sender: object = None, **named: Any) -> list[tuple[Receiver, Any]]:
        """As `send`, awaiting ``async def`` receivers here."""
        results: list[tuple[Receiver, Any]] = []
        for receiver in self._live(sender):
            try:
                value = receiver(signal=self, sender=sender, **named)
                if inspect.isawaitable(value):
                    value = await value
            except Exception as exc:
                log.exception("Signal receiver %r of %s failed", receiver, self.name)
                value = exc
            results.append((receiver, value))
        return results

    def _run_async(self, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return portal.run(coro)  # no loop in this thread: run it to the end, as a sync receiver would
        task = loop.create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("Signal receiver of %s failed: %r", self.name, task.exception())


before_task_publish: Final = Signal(
    "before_task_publish", ("body", "exchange", "routing_key", "headers", "properties", "declare", "retry_policy")
)
after_task_publish: Final = Signal("after_task_publish", ("body", "exchange", "routing_key"))
task_received: Final = Signal("task_received", ("request",))
task_prerun: Final = Signal("task_prerun", ("task_id", "task", "args", "kwargs"))
task_postrun: Final = Signal("task_postrun", ("task_id", "task", "args", "kwargs", "retval", "state"))
task_success: Final = Signal("task_success", ("result",))
task_failure: Final = Signal("task_failure", ("task_id", "exception", "args", "kwargs", "traceback", "einfo"))
task_retry: Final = Signal("task_retry", ("request", "reason", "einfo"))
task_revoked: Final = Signal("task_revoked", ("request", "terminated", "signum", "expired"))
task_unknown: Final = Signal("task_unknown", ("name", "id", "message", "exc"))
celeryd_init: Final = Signal("celeryd_init", ("instance", "conf", "options"))
worker_init: Final = Signal("worker_init")
worker_ready: Final = Signal("worker_ready")
worker_shutdown: Final = Signal("worker_shutdown")
worker_process_init: Final = Signal("worker_process_init")
"""Sent in each prefork child once it has loaded the tasks, before its first task (open per-process resources)."""
worker_process_shutdown: Final = Signal("worker_process_shutdown", ("pid", "exitcode"))
"""Sent in a prefork child as it leaves its serving loop (a child killed by a signal sends nothing)."""
setup_logging: Final = Signal("setup_logging", ("loglevel", "logfile", "format", "colorize"))
"""Sent by ``celeriac worker``/``beat`` before they configure logging; with any receiver, they configure nothing."""
after_setup_logger: Final = Signal("after_setup_logger", ("logger", "loglevel", "logfile", "format", "colorize"))
"""Sent after the CLI configured the root logger (add handlers here)."""
beat_init: Final = Signal("beat_init")
"""Sent by a beat service as it starts (``celeriac beat`` and ``worker -B``); the sender is the `Beat`."""

NOT_SENT: Final = frozenset(
    {
        "task_rejected",
        "task_internal_error",
        "celeryd_after_setup",
        "import_modules",
        "worker_shutting_down",
        "heartbeat_sent",
        "after_setup_task_logger",
        "beat_embedded_init",
        "user_preload_options",
        "eventlet_pool_started",
        "eventlet_pool_preshutdown",
        "eventlet_pool_postshutdown",
        "eventlet_pool_apply",
    }
)
"""Celery's signals celeriac does not send (yet): asking for one is an AttributeError that says so."""


def __getattr__(name: str) -> Any:
    if name in NOT_SENT:
        raise AttributeError(f"celeriac.signals.{name}: celeriac does not send Celery's {name} signal (yet)")
    raise AttributeError(f"module 'celeriac.signals' has no attribute {name!r}")


__all__ = [
    "Signal",
    "after_setup_logger",
    "after_task_publish",
    "beat_init",
    "before_task_publish",
    "celeryd_init",
    "setup_logging",
    "task_failure",
    "task_postrun",
    "task_prerun",
    "task_received",
    "task_retry",
    "task_revoked",
    "task_success",
    "task_unknown",
    "worker_init",
    "worker_process_init",
    "worker_process_shutdown",
    "worker_ready",
    "worker_shutdown",
]

"""Soft time limits where a body runs: thrown into a coroutine on its loop, or raised in a thread.

- ``limited(body, soft, hard, name)`` awaits an ``async def`` body on the current loop: at ``soft`` seconds
  `SoftTimeLimitExceeded` is thrown into the body at the ``await`` it is suspended in (so ``try/except`` in the
  body can clean up and return), and at ``hard`` seconds the body is cancelled (`bounded`: `TimeLimitExceeded`).
- ``interrupt(ident, exc)`` raises ``exc`` in a thread at its next bytecode (``PyThreadState_SetAsyncExc``);
  a thread blocked in C code (``time.sleep``, a socket read) sees it only when that call returns.
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Coroutine, Generator
from typing import Any

from celeriac.errors import SoftTimeLimitExceeded
from celeriac.pools.base import bounded

# Two prototypes of one C function: one raises (a class), one clears (NULL); PYFUNCTYPE keeps the GIL held.
_set_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)
_clear_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)


def interrupt(ident: int, exc: type[BaseException]) -> bool:
    """Raise ``exc`` in the thread ``ident`` at its next bytecode; False when no such thread exists."""
    return bool(_set_async_exc(ident, exc))


def clear_interrupt(ident: int) -> None:
    """Drop an exception `interrupt` left pending for thread ``ident`` (it came too late for its body)."""
    _clear_async_exc(ident, None)


def soft_message(limit: float, name: str) -> str:
    """The message of a `SoftTimeLimitExceeded`."""
    return f"Soft time limit ({limit:g}s) exceeded for {name}"


class _Soft:
    """Drives ``coro`` for the task awaiting it; `fire` throws `SoftTimeLimitExceeded` in at its current await.

    The running task is woken with ``cancel()`` (the only way to wake a task parked on a future), and the
    cancellation is taken back (``uncancel()``) and replaced by the soft-limit error inside the coroutine.
    """

    def __init__(self, coro: Coroutine[Any, Any, Any], task: asyncio.Task[Any], message: str) -> None:
        self._coro = coro
        self._task = task
        self._message = message
        self._fired = False
        self._done = False

    def fire(self) -> None:
        if not self._done and not self._fired:
            self._fired = True
            self._task.cancel()

    def __await__(self) -> Generator[Any, Any, Any]:
        step = self._coro.__await__()
        value: Any = None
        error: BaseException | None = None
        try:
            while True:
                try:
                    yielded = step.throw(error) if error is not None else step.send(value)
                except StopIteration as stop:
                    return stop.value
                value, error = None, None
                try:
                    value = yield yielded
                except asyncio.CancelledError as exc:
                    error = exc
                    if self._fired:
                        self._fired, self._done = False, True  # thrown once; a later cancel is a real one
                        if self._task.uncancel() == 0:  # ours alone: a real cancel in the same instant wins
                            error = SoftTimeLimitExceeded(self._message)
                except BaseException as exc:  # GeneratorExit and friends go to the body as well
                    error = exc
        finally:
            self._done = True


async def limited(body: Coroutine[Any, Any, Any], soft: float | None, hard: float | None, name: str) -> Any:
    """Await ``body`` with a soft limit thrown into it and a hard limit that cancels it (both optional)."""
    if soft is None or (hard is not None and soft >= hard):
        return await bounded(body, hard, name)
    task = asyncio.current_task()
    assert task is not None
    driver = _Soft(body, task, soft_message(soft, name))
    timer = asyncio.get_running_loop().call_later(soft, driver.fire)
    try:
        return await bounded(driver, hard, name)
    finally:
        timer.cancel()

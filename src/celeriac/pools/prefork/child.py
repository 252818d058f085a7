"""A prefork child: receive a `Call`, run its body (sync on the main thread, async on the child's own loop),
send back `Done`; exit when the parent says so, when the parent is gone, or after the limits of its life.

Soft time limits are raised in the child: a sync body gets `SoftTimeLimitExceeded` from a SIGALRM timer
(and from SIGUSR1, Celery's soft-limit signal, e.g. ``revoke(terminate=True, signal="SIGUSR1")``); an async
body gets it thrown in at its current ``await`` (`limits.limited`). The hard limit is the parent's: it kills
the child. After each task the child checks ``max_tasks`` and ``max_memory_kib`` (resident memory now); a
child that starts above the memory limit is not recycled for memory, or every new child would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import socket
import traceback
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from celeriac import signals
from celeriac.app.current import request_var
from celeriac.errors import SoftTimeLimitExceeded
from celeriac.pools.call import Call
from celeriac.pools.limits import limited, soft_message
from celeriac.pools.prefork.frames import Done, Ready, call_from_frame, pack, recv
from celeriac.protocol.failures import exception_to_dict

if TYPE_CHECKING:
    from celeriac.app.registry import TaskRegistry


@dataclass(frozen=True, slots=True)
class ChildConfig:
    """What a child needs to know about its own life (picklable, for ``spawn``)."""

    max_tasks: int | None = None
    max_memory_kib: int | None = None
    close_fds: tuple[int, ...] = ()  # the parent's ends of the children's sockets (fork inherits them)


def rss_kib() -> int:
    """This process's resident memory now, in KiB (Linux ``/proc``; else the peak from getrusage)."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _detach(config: ChildConfig, sock: socket.socket) -> None:
    """Forget the parent's loop, signal handlers and socket ends (a forked child inherits them all)."""
    asyncio.events._set_running_loop(None)  # forked inside the parent's running loop
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    for fd in config.close_fds:
        if fd == sock.fileno():  # never our own end, whatever number it has here
            continue
        with contextlib.suppress(OSError):
            os.close(fd)


class Child:
    """The serving loop of one child process."""

    def __init__(self, sock: socket.socket, tasks: TaskRegistry, config: ChildConfig) -> None:
        self.sock = sock
        self.tasks = tasks
        self.config = config
        self.done = 0
        self.started_rss = rss_kib()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sync_message: str | None = None  # set while a sync body runs: what its soft limit says
        self._async_task: asyncio.Task[Any] | None = None  # set while an async body runs
        signal.signal(signal.SIGALRM, self._on_soft)
        signal.signal(signal.SIGUSR1, self._on_soft)

    def serve(self) -> None:
        self.sock.sendall(pack(Ready(os.getpid(), self.started_rss)))
        while True:
            alive, frame = recv(self.sock)
            if not alive or frame is None:
                return
            call = call_from_frame(frame)
            done = self.run(call)
            self.done += 1
            exiting = self._exiting()
            self.sock.sendall(_packed(Done(done.ok, done.value, done.traceback, exiting), call.task))
            if exiting:
                return

    def _exiting(self) -> str | None:
        config = self.config
        if config.max_tasks is not None and self.done >= config.max_tasks:
            return "max-tasks-per-child"
        limit = config.max_memory_kib
        if limit is not None and self.started_rss <= limit < rss_kib():
            return "max-memory-per-child"
        return None

    def run(self, call: Call) -> Done:
        token = request_var().set(call.request)
        try:
            task = self.tasks[call.task]
            if task.is_async:
                value = self._run_async(task(*call.args, **call.kwargs), call)
            else:
                value = self._run_sync(task, call)
            return Done(True, value)
        except BaseException as exc:  # handed to the parent, which settles the task
            return Done(False, exc, traceback.format_exc())
        finally:
            request_var().reset(token)

    def _run_sync(self, task: Any, call: Call) -> Any:
        soft = call.soft_time_limit
        self._sync_message = soft_message(soft, call.task) if soft else f"{call.task} was sent SIGUSR1"
        try:
            if soft:
                signal.setitimer(signal.ITIMER_REAL, soft)
            return task(*call.args, **call.kwargs)
        finally:
            self._sync_message = None  # first: an alarm from here on is too late and does nothing
            signal.setitimer(signal.ITIMER_REAL, 0)

    def _run_async(self, body: Any, call: Call) -> Any:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        task = self._loop.create_task(limited(body, call.soft_time_limit, None, call.task))
        self._async_task = task
        try:
            return self._loop.run_until_complete(task)
        except asyncio.CancelledError:  # only SIGUSR1 cancels it (`_on_soft`): Celery's soft-limit signal
            raise SoftTimeLimitExceeded(f"{call.task} was sent SIGUSR1") from None
        finally:
            self._async_task = None

    def _on_soft(self, signum: int, frame: FrameType | None) -> None:
        if self._sync_message is not None:
            raise SoftTimeLimitExceeded(self._sync_message)
        if self._async_task is not None and self._loop is not None:  # SIGUSR1 during an async body
            self._loop.call_soon_threadsafe(self._async_task.cancel)


def _packed(done: Done, name: str) -> bytes:
    """The frame of ``done``; what pickle cannot carry goes as Celery's failure description instead."""
    try:
        frame = pack(done)
        if not done.ok:
            pickle.loads(frame[4:])  # an exception whose class cannot be rebuilt from its args fails here
        return frame
    except Exception as exc:
        if done.ok:
            error: BaseException = TypeError(f"the return value of {name} cannot leave the child: {exc}")
            return pack(Done(False, exception_to_dict(error), None, done.exiting))
        return pack(Done(False, exception_to_dict(done.value), done.traceback, done.exiting))


def main(sock: socket.socket, source: Any, config: ChildConfig) -> None:
    """The child's entry point (a multiprocessing target): ``source`` is the registry, or a `RegistryRef`."""
    _detach(config, sock)
    tasks = source if hasattr(source, "register") else source.load()
    if signals.worker_process_init.has_receivers():
        signals.worker_process_init.send()
    try:
        Child(sock, tasks, config).serve()
    finally:
        if signals.worker_process_shutdown.has_receivers():
            signals.worker_process_shutdown.send(pid=os.getpid(), exitcode=0)

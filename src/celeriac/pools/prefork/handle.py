"""The parent's handle on one child process: start it, send it a `Call`, read its `Done`, see it exit.

Everything here runs on the worker's loop without blocking it: the socket is an asyncio stream, and the exit
is seen through the process's sentinel fd (readable once the child is gone), then reaped with a non-blocking
wait. A child that dies mid-body surfaces as `WorkerLostError` naming its signal or exit code, as Celery says it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import signal
import socket
from multiprocessing.context import BaseContext
from typing import Any

from celeriac.errors import TimeLimitExceeded, WorkerLostError
from celeriac.pools.call import Call
from celeriac.pools.prefork import child
from celeriac.pools.prefork.frames import Done, Ready, call_frame, pack, read

#: How long a new child may take to say it is ready (a spawned one imports the task modules first).
START_TIMEOUT = 60.0


def _describe(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown"
        return f"signal {-exitcode} ({name})"
    return f"exitcode {exitcode}"


class ChildHandle:
    """One child: its process, its stream, how many tasks it ran, and a future of its exit code."""

    def __init__(self, process: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.process = process
        self.pid: int = process.pid
        self.reader = reader
        self.writer = writer
        self.tasks = 0  # bodies sent to it
        self.rss_kib = 0
        self.retired = False  # no new body goes to it (exiting, killed, or surplus after a shrink)
        loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[int | None] = loop.create_future()
        loop.add_reader(process.sentinel, self._sentinel_ready)

    @classmethod
    async def start(cls, context: BaseContext, source: Any, config: child.ChildConfig) -> tuple[ChildHandle, Ready]:
        """Start a child and wait until it is ready.

        Raises:
            WorkerLostError: the child died or stayed silent before it was ready.
        """
        parent_end, child_end = socket.socketpair()
        if context.get_start_method() == "fork":
            # A forked child inherits the parent's end too: it closes it, or it would never see the parent go.
            config = dataclasses.replace(config, close_fds=(*config.close_fds, parent_end.fileno()))
        process = context.Process(target=child.main, args=(child_end, source, config), daemon=True)  # type: ignore[attr-defined]
        process.start()
        child_end.close()
        reader, writer = await asyncio.open_unix_connection(sock=parent_end)
        handle = cls(process, reader, writer)
        try:
            async with asyncio.timeout(START_TIMEOUT):
                ready = await read(reader)
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            handle.kill(signal.SIGKILL)
            code = await handle.exited
            raise WorkerLostError(f"a pool child did not start ({_describe(code)})") from None
        except asyncio.CancelledError:  # the pool closes while this child starts: it must not be left behind
            handle.kill(signal.SIGKILL)
            raise
        assert isinstance(ready, Ready)
        handle.rss_kib = ready.rss_kib
        return handle, ready

    def fileno(self) -> int:
        """The parent's end of the socket (a forked sibling closes it)."""
        sock = self.writer.get_extra_info("socket")
        return int(sock.fileno()) if sock is not None else -1

    def _sentinel_ready(self) -> None:
        code = self.process.exitcode  # a non-blocking waitpid
        if code is None:
            return  # the fd closed a moment before the process became a zombie: called again
        asyncio.get_running_loop().remove_reader(self.process.sentinel)
        self.writer.close()
        if not self.exited.done():
            self.exited.set_result(code)

    async def run(self, call: Call, limit: float | None) -> Done:
        """Send ``call`` and wait for its `Done`.

        Raises:
            TimeLimitExceeded: no answer within ``limit`` seconds (the caller kills the child).
            WorkerLostError: the child exited before it answered.
        """
        self.tasks += 1
        try:
            self.writer.write(pack(call_frame(call)))
            async with asyncio.timeout(limit):
                done = await read(self.reader)
        except TimeoutError:
            assert limit is not None
            raise TimeLimitExceeded(f"Time limit ({limit:g}s) exceeded for {call.task}") from None
        except (asyncio.IncompleteReadError, ConnectionError):
            code = await self.exited
            raise WorkerLostError(f"Worker exited prematurely: {_describe(code)}.") from None
        assert isinstance(done, Done)
        return done

    def stop(self) -> None:
        """Ask an idle child to exit after its current frame."""
        self.retired = True
        if not self.writer.is_closing():
            self.writer.write(pack(None))

    def kill(self, signum: int) -> None:
        """Send ``signum`` to the child (nothing if it is gone)."""
        self.retired = True
        if not self.exited.done():
            # Not reaped yet (exited is set when it is), so the pid is still this child's.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)


def context(method: str) -> BaseContext:
    """The multiprocessing context of ``worker_pool_start_method`` (ValueError when unknown)."""
    return multiprocessing.get_context(method)

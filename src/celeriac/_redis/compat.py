"""Every workaround for a redis-py (or asyncio) behaviour, in one place, each gated on the versions it applies to.

* `connection_class`: on Python 3.11, commands are written in the caller's task (`TimelyWrite`); p50 round trip
  of a task 1.02 -> 0.95 ms (bench/README.md, ``df6cd21``).
* `RESP_PROTOCOL`: RESP2, as kombu and Celery speak it (redis-py 8 defaults to RESP3).
* `raise_if_cancelled`: a cancel that redis-py 8.1 can swallow while it connects is raised again.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable

import redis.exceptions as redis_exc
from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection, UnixDomainSocketConnection

RESP_PROTOCOL = 2
"""The RESP version of every connection: pub/sub messages are then plain replies to ``read_response()``, not
RESP3 pushes that redis-py 8 (whose default is RESP3) would route to a push handler instead."""

TIMELY_WRITES = sys.version_info < (3, 12)
"""Whether `connection_class` swaps in the `TimelyWrite` subclasses (Python 3.11 only, see there)."""


class TimelyWrite(AbstractConnection):
    """A redis-py connection whose writes are bounded by ``asyncio.timeout`` instead of ``asyncio.wait_for``.

    On Python 3.11, redis-py's ``wait_for`` around every write (when ``socket_timeout`` is set, as on our
    clients) runs the write in a task of its own: the command leaves one event-loop iteration late and the task
    costs ~10 us of CPU, on every command a worker or client sends. ``asyncio.timeout`` bounds the same write
    in the caller's task: p50 round trip of a task 1.02 -> 0.95 ms on the benchmark VM (bench/README.md,
    ``df6cd21``). From Python 3.12 on, ``wait_for`` needs no task and these classes are not used
    (`TIMELY_WRITES`). Relies on redis-py's ``_writer`` stream (redis-py 5 to 8).
    """

    async def send_packed_command(self, command: bytes | str | Iterable[bytes], check_health: bool = True) -> None:
        if not self.socket_timeout or not self.is_connected:  # connecting: redis-py's own path
            await super().send_packed_command(command, check_health)
            return
        if check_health:
            await self.check_health()  # type: ignore[no-untyped-call]
        chunks = (
            [command.encode()] if isinstance(command, str) else [command] if isinstance(command, bytes) else command
        )
        writer = self._writer
        if writer is None:  # the health check dropped the connection: reconnect the usual way
            await super().send_packed_command(chunks, check_health=False)
            return
        try:
            async with asyncio.timeout(self.socket_timeout):
                writer.writelines(chunks)
                await writer.drain()
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise redis_exc.TimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            await self.disconnect(nowait=True)
            raise redis_exc.ConnectionError(f"Error while writing to socket: {exc}") from exc
        except BaseException:
            await self.disconnect(nowait=True)  # part of the command may be written: the link is unusable
            raise


class TimelyConnection(TimelyWrite, Connection):
    """`Connection` (TCP) with `TimelyWrite`'s writes."""


class TimelySSLConnection(TimelyWrite, SSLConnection):
    """`SSLConnection` (``rediss://``) with `TimelyWrite`'s writes."""


class TimelyUnixDomainSocketConnection(TimelyWrite, UnixDomainSocketConnection):
    """`UnixDomainSocketConnection` (``redis+socket://``) with `TimelyWrite`'s writes."""


_TIMELY: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: TimelyConnection,
    SSLConnection: TimelySSLConnection,
    UnixDomainSocketConnection: TimelyUnixDomainSocketConnection,
}


def connection_class(chosen: type[AbstractConnection]) -> type[AbstractConnection]:
    """The class our clients use where redis-py chose ``chosen``: its `TimelyWrite` subclass on Python 3.11,
    else (and for a class we do not know) ``chosen`` itself."""
    return _TIMELY.get(chosen, chosen) if TIMELY_WRITES else chosen


def raise_if_cancelled() -> None:
    """Raise CancelledError if the current task was cancelled but the cancellation was swallowed.

    redis-py 8.1's asyncio client can swallow ``task.cancel()`` when it arrives while a connection is being
    set up (the command then completes normally). Loops that must stop when cancelled call this at their
    head; ``Task.cancelling()`` still counts the lost request. Not gated: no redis-py release is known to fix
    it, and the check costs one attribute read.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError

"""Noticing a silently dead pub/sub connection: an application-level PING with a read deadline.

A subscribed connection only reads, so a link that a NAT or firewall dropped (no FIN, no RST) looks exactly like
a quiet channel, for ever. `Heartbeat` sends ``PING`` on such a connection when nothing arrived for one
interval and expects some reply (the ``pong``, or any message) within one more; if none comes, it marks the
link frozen and disconnects it, so the reader's pending read fails and its owner replaces the link. A frozen
link is thus noticed within two intervals (and at most a second of grace).

The reader calls `Heartbeat.seen` for every reply and skips ``pong`` replies (`is_pong`). The PING is sent with
``check_health=False``: redis-py's own health check reads the reply itself, which the reader task must do.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from redis.asyncio.connection import AbstractConnection

DEFAULT_INTERVAL = 10.0
"""Seconds of silence after which a pub/sub connection is pinged (``pubsub_ping_interval``)."""


def interval_of(connection: AbstractConnection) -> float:
    """The ping interval of a pub/sub connection made by `celeriac._redis.client.raw_connection` (0: none).

    It is kept in redis-py's ``health_check_interval`` of that connection (redis-py's own pub/sub reads it the
    same way); every command on the connection must then be sent with ``check_health=False``.
    """
    return float(connection.health_check_interval or 0)


def is_pong(reply: Any) -> bool:
    """Whether ``reply`` answers a PING on a subscribed connection (RESP2: ``[b"pong", b""]``)."""
    first = reply[0] if isinstance(reply, list) and reply else reply
    if isinstance(first, bytes):
        first = first.decode("utf-8", "replace")
    return isinstance(first, str) and first.lower() == "pong"


class Heartbeat:
    """Pings one connection while it lives; `frozen` once it did not answer in time (see the module docstring)."""

    def __init__(self, connection: AbstractConnection, interval: float) -> None:
        self._connection = connection
        self.interval = interval
        self.frozen = False
        self._answered = asyncio.Event()
        self._last = asyncio.get_running_loop().time()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin pinging (no-op with an interval of 0)."""
        if self.interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="celeriac-redis-heartbeat")

    def seen(self) -> None:
        """A reply arrived on the connection: it is alive."""
        self._last = asyncio.get_running_loop().time()
        self._answered.set()

    async def stop(self) -> None:
        """Stop pinging. Idempotent."""
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(0.0, self._last + self.interval - loop.time()))
            if loop.time() - self._last < self.interval:
                continue  # traffic meanwhile: the link is alive
            self._answered.clear()
            try:
                async with asyncio.timeout(self.interval):
                    await self._connection.send_command("PING", check_health=False)
                    await self._answered.wait()
            except TimeoutError:
                # A loop blocked past the deadline (a sync body on -P solo) runs this timeout before the reader
                # task handles the reply already read: a short grace lets it, so only silence counts.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(self.interval, 1.0)):
                        await self._answered.wait()
                self.frozen = not self._answered.is_set()
            except Exception:  # the write failed: the reader sees the broken link itself
                return
            if self.frozen:
                with contextlib.suppress(Exception):
                    await self._connection.disconnect(nowait=True)
                return

"""The SQLite broker's broadcast subscription: rows of ``broadcasts`` read by id > the last one seen."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from celeriac._sqlite.thread import SQLiteThread
from celeriac._sqlite.watch import IDLE_RECHECK, ChangeWatcher
from celeriac.errors import CeleriacError, DecodeError
from celeriac.protocol.message import Message
from celeriac.transports.base import Subscription
from celeriac.transports.sqlite import ops
from celeriac.transports.sqlite.owners import new_owner
from celeriac.transports.sqlite.rows import row_message

log = logging.getLogger("celeriac.transports.sqlite")


class SubscriptionHost(Protocol):
    """What a subscription needs from its transport (`celeriac.transports.sqlite.transport.SQLiteTransport`)."""

    thread: SQLiteThread
    watcher: ChangeWatcher

    def forget_subscription(self, subscription: SQLiteSubscription) -> None:
        """The subscription is closed: the transport can forget it."""


_GLOB = frozenset("*?[")  # a subscribed channel name with one of these is a GLOB pattern


class SQLiteSubscription(Subscription):
    """Reads the broadcast rows of its channels with id > the last one it has seen."""

    def __init__(self, transport: SubscriptionHost, channels: Sequence[str], after: int) -> None:
        self._transport = transport
        names = [channel.replace("#", "*") for channel in dict.fromkeys(channels)]
        self._channels = json.dumps([name for name in names if not _GLOB.intersection(name)])
        self._patterns = json.dumps([name for name in names if _GLOB.intersection(name)])
        self._after = after
        self.listener: int | None = None  # its row in `listeners`, once registered
        self._buffer: deque[tuple[str, Message]] = deque()
        self._wake = asyncio.Event()
        self._closed = False
        transport.watcher.listen(self._wake)

    async def __anext__(self) -> tuple[str, Message]:
        while True:
            self._wake.clear()
            if self._buffer:
                return self._buffer.popleft()
            if self._closed:
                raise StopAsyncIteration
            rows, version = await self._transport.thread.run(
                ops.read_broadcasts, self._channels, self._patterns, self._after, 256
            )
            for row in rows:
                self._after = row[0]
                try:
                    self._buffer.append((row[1], row_message(row[2], row[3], row[4], row[5], row[6])))
                except DecodeError as exc:
                    log.error("broadcast %d on %r is corrupt, skipped: %s", row[0], row[1], exc)
            if not rows:
                await self._transport.watcher.wait(self._wake, version, IDLE_RECHECK)

    async def register(self) -> None:
        """Record this subscription in ``listeners``, so a broadcast can count its receivers."""
        self.listener = await self._transport.thread.run(ops.add_listener, new_owner(), self._channels, self._patterns)

    async def close(self) -> None:
        self.end()
        self._transport.forget_subscription(self)
        if self.listener is not None:
            with contextlib.suppress(CeleriacError):
                await self._transport.thread.run(ops.drop_listeners, [self.listener])
            self.listener = None

    def end(self) -> None:
        """End iteration (a pending ``__anext__`` returns StopAsyncIteration)."""
        self._closed = True
        self._wake.set()
        self._transport.watcher.unlisten(self._wake)

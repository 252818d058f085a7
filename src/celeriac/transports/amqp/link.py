"""The transport's connection and the ONE place it is recovered: reconnect with backoff, channels on demand.

Whoever needs a channel asks `Link.channel`; with ``retry`` a dead connection is replaced first (pauses from
`AMQPOptions.retry_intervals`), without it a dead connection is `ConnectionLost`. Consumers and subscriptions
never get a new channel behind their back: their channel's deliveries are dead with it (the broker redelivers
them), so they end with `ConnectionLost` and the worker reconnects as it does on every broker.
``generation`` counts connections, so caches tied to one connection (declarations) know when to forget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

from celeriac._amqp.errors import amqp_errors
from celeriac._amqp.link import open_connection
from celeriac._amqp.urls import AMQPAddress
from celeriac._amqp.wire.channel import Channel
from celeriac._amqp.wire.connection import Connection
from celeriac.errors import ConnectionLost, TransportClosed
from celeriac.transports.amqp.options import AMQPOptions

log = logging.getLogger("celeriac.transports.amqp")


class Link:
    """One AMQP connection at a time, replaced on demand after it breaks."""

    def __init__(self, address: AMQPAddress, options: AMQPOptions, name: str | None = None) -> None:
        self.address = address
        self.options = options
        self.name = name
        self.generation = 0
        self.server_version: tuple[int, ...] = (0,)
        self._connection: Connection | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once `close` was called."""
        return self._closed

    def check_open(self) -> None:
        """Raise `TransportClosed` after `close`."""
        if self._closed:
            raise TransportClosed(f"transport to {self.address.url} is closed")

    def alive(self) -> bool:
        """Whether the current connection is open."""
        connection = self._connection
        return connection is not None and not connection.is_closed

    async def connection(self, *, retry: bool = True) -> Connection:
        """The open connection; a broken one is replaced when ``retry`` (else `ConnectionLost`)."""
        self.check_open()
        connection = self._connection
        if connection is not None and not connection.is_closed:
            return connection
        if not retry and self.generation > 0:
            raise ConnectionLost(f"RabbitMQ at {self.address.url}: connection lost")
        async with self._lock:
            self.check_open()
            connection = self._connection
            if connection is not None and not connection.is_closed:
                return connection
            return await self._reconnect(self.options.retry_intervals if retry else (0.0,))

    async def _reconnect(self, pauses: tuple[float, ...]) -> Connection:
        error: ConnectionLost | None = None
        for attempt, pause in enumerate(pauses):
            if pause:
                await asyncio.sleep(pause)
            self.check_open()
            try:
                connection = await open_connection(
                    self.address,
                    heartbeat=self.address_heartbeat(),
                    timeout=self.connect_timeout(),
                    name=self.name,
                )
            except ConnectionLost as exc:
                error = exc
                if attempt + 1 < len(pauses):
                    log.warning("%s; trying again", exc)
                continue
            if self.generation > 0:
                log.info("Reconnected to RabbitMQ at %s", self.address.url)
            self._connection = connection
            self.generation += 1
            self.server_version = _version(connection)
            return connection
        assert error is not None
        raise error

    def address_heartbeat(self) -> float:
        """The heartbeat: the URL's ``heartbeat`` option, else ``broker_heartbeat``."""
        given = self.address.query.get("heartbeat")
        return float(given) if given else self.options.heartbeat

    def connect_timeout(self) -> float:
        """The opening timeout: the URL's ``connect_timeout``, else ``broker_connection_timeout``."""
        given = self.address.query.get("connect_timeout")
        return float(given) if given else self.options.connect_timeout

    async def channel(self, *, retry: bool = True, confirms: bool = False) -> Channel:
        """A new channel on the open connection (publisher confirms on when ``confirms``)."""
        connection = await self.connection(retry=retry)
        with amqp_errors("opening a channel", self.address.url):
            return await connection.channel(publisher_confirms=confirms)

    def mark_closed(self) -> None:
        """Refuse every use from now on (`close` then releases the connection)."""
        self._closed = True

    async def close(self) -> None:
        """Close the connection; idempotent. Every channel on it closes too."""
        self._closed = True
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5.0)


def _version(connection: Connection) -> tuple[int, ...]:
    raw = connection.server_properties.get("version", "0") if connection.server_properties else "0"
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3]) or (0,)

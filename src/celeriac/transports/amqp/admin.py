"""Declarations and queue administration on a channel of their own, one operation at a time.

A refused declaration (PRECONDITION_FAILED, ACCESS_REFUSED, NOT_FOUND) closes only this channel: the next
operation opens a new one, and consumers and publishers on other channels never notice. Each entity is declared
once per connection (the cache forgets on reconnect, so everything is declared again on the new connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from celeriac._amqp.errors import ChannelError, amqp_errors
from celeriac._amqp.wire.channel import Channel
from celeriac.transports.amqp.link import Link
from celeriac.transports.amqp.topology import ExchangeSpec, QueueSpec

log = logging.getLogger("celeriac.transports.amqp")
T = TypeVar("T")
Operation = Callable[[Channel], Awaitable[T]]


class Admin:
    """Declares, binds, deletes, counts and purges through one short-lived channel at a time."""

    def __init__(self, link: Link) -> None:
        self._link = link
        self._channel: Channel | None = None
        self._lock = asyncio.Lock()
        self._done: set[Any] = set()
        self._generation = -1

    async def run(self, where: str, operation: Operation[T]) -> T:
        """Run ``operation`` on the admin channel; a channel error is `ChannelError` naming ``where``."""
        async with self._lock:
            channel = self._channel
            if channel is None or channel.is_closed or self._generation != self._link.generation:
                channel = await self._link.channel()
                self._channel = channel
            if self._generation != self._link.generation:
                self._done.clear()
                self._generation = self._link.generation
            try:
                with amqp_errors(where, self._link.address.url):
                    return await operation(channel)
            except ChannelError:
                self._channel = None  # RabbitMQ closed it; the next operation opens another
                raise

    async def once(self, key: Any, where: str, operation: Callable[[Channel], Awaitable[Any]]) -> None:
        """`run` unless ``key`` was already done on this connection."""
        if key in self._done and self._generation == self._link.generation:
            return
        await self.run(where, operation)
        self._done.add(key)

    def forget(self, name: str) -> None:
        """Forget the declarations of queue ``name`` (it was deleted)."""
        self._done = {key for key in self._done if not (isinstance(key, tuple) and name in key[1:2])}

    async def exchange(self, spec: ExchangeSpec) -> None:
        """Declare an exchange with exactly ``spec``'s attributes."""
        await self.once(
            ("exchange", spec.name, spec.type, spec.durable),
            f"declaring exchange {spec.name!r}",
            lambda ch: ch.exchange_declare(
                exchange=spec.name, exchange_type=spec.type, durable=spec.durable, auto_delete=spec.auto_delete
            ),
        )

    async def queue(self, spec: QueueSpec) -> None:
        """Declare a queue with exactly ``spec``'s attributes."""
        await self.once(
            ("queue", spec.name, *spec.key()[1:4]),
            f"declaring queue {spec.name!r} (arguments {spec.arguments or 'none'})",
            lambda ch: ch.queue_declare(
                spec.name,
                durable=spec.durable,
                auto_delete=spec.auto_delete,
                exclusive=spec.exclusive,
                arguments=spec.arguments or None,
            ),
        )

    async def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        """Bind ``queue`` to ``exchange`` with ``routing_key``."""
        await self.once(
            ("bind", queue, exchange, routing_key),
            f"binding queue {queue!r} to exchange {exchange!r} ({routing_key!r})",
            lambda ch: ch.queue_bind(queue, exchange, routing_key=routing_key),
        )

    async def bind_exchange(self, destination: str, source: str, routing_key: str) -> None:
        """Bind exchange ``destination`` to exchange ``source`` with ``routing_key``."""
        await self.once(
            ("xbind", destination, source, routing_key),
            f"binding exchange {destination!r} to exchange {source!r} ({routing_key!r})",
            lambda ch: ch.exchange_bind(destination, source, routing_key=routing_key),
        )

    async def size(self, queue: str) -> int:
        """Ready messages in ``queue``; 0 when it does not exist."""
        try:
            ok = await self.run(f"counting queue {queue!r}", lambda ch: ch.queue_declare(queue, passive=True))
        except ChannelError as exc:
            if exc.reply_code == 404:
                return 0
            raise
        return int(ok.message_count or 0)

    async def purge(self, queue: str) -> int:
        """Delete the ready messages of ``queue``; 0 when it does not exist."""
        try:
            ok = await self.run(f"purging queue {queue!r}", lambda ch: ch.queue_purge(queue))
        except ChannelError as exc:
            if exc.reply_code == 404:
                return 0
            raise
        return int(ok.message_count or 0)

    async def delete(self, queue: str) -> None:
        """Delete ``queue`` (and with it its bindings); nothing when it does not exist."""
        try:
            await self.run(f"deleting queue {queue!r}", lambda ch: ch.queue_delete(queue))
        except ChannelError as exc:
            if exc.reply_code != 404:
                raise
        self.forget(queue)

    async def close(self) -> None:
        """Close the admin channel (the connection stays)."""
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(channel.close(), 2.0)


def log_refused(exc: ChannelError) -> None:
    """The one log line of a refused declaration the caller goes on without."""
    log.error("%s", exc)

"""Listening to fanout channels: one pub/sub connection per `RedisSubscription` (celery-wire.md §2.4).

Channel names are celeriac's (``"celeryev/*"``, ``"celery.pidbox"``), mapped to kombu's Redis channels by
`RedisKeys.fanout_subscription`; a name with a glob character is PSUBSCRIBEd, others SUBSCRIBEd. Each
message is a kombu envelope; anything that is not one is logged and skipped.

A connection that stops answering (`celeriac._redis.heartbeat`: a PING unanswered for ``pubsub_ping_interval``)
is dropped and replaced on the same subscription, with one log line; messages broadcast meanwhile are lost, as on
Celery's brokers. A connection that breaks with an error ends the subscription instead (the consumer reconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio.connection import AbstractConnection

from celeriac._redis.errors import redis_errors
from celeriac._redis.heartbeat import Heartbeat, interval_of, is_pong
from celeriac.errors import DecodeError, TransportError
from celeriac.protocol.message import Message
from celeriac.transports.base import Subscription
from celeriac.transports.redis import envelope as redis_envelope
from celeriac.transports.redis.keys import RedisKeys

log = logging.getLogger("celeriac.transports.redis")

# What the reader hands to __anext__: a message, the error that broke the link, or None for "no more".
_Item = tuple[str, Message] | TransportError | None


def _text(value: Any) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


class RedisSubscription(Subscription):
    """Messages broadcast on some channels since `open` returned.

    A broken connection raises `ConnectionLost` once from ``__anext__``; the subscription then ends (messages
    broadcast while nobody listens are lost anyway, as on Celery's brokers).
    """

    def __init__(
        self,
        connection: AbstractConnection,
        keys: RedisKeys,
        where: str,
        on_close: Callable[[RedisSubscription], None] | None = None,
    ) -> None:
        self._on_close = on_close
        self._connection = connection
        self._keys = keys
        self._where = where
        self._inbox: asyncio.Queue[_Item] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._heartbeat: Heartbeat | None = None
        self._exact: list[str] = []
        self._patterns: list[str] = []
        self._closed = False

    async def open(self, channels: Sequence[str]) -> None:
        """Connect and subscribe; returns once Redis confirmed every subscription."""
        for channel in dict.fromkeys(channels):
            name, is_pattern = self._keys.fanout_subscription(channel)
            (self._patterns if is_pattern else self._exact).append(name)
        await self._subscribe()
        self._reader = asyncio.create_task(self._read(), name="celeriac-redis-subscription")

    async def _subscribe(self) -> None:
        """(Re)connect, subscribe every channel, wait for the confirmations, start the heartbeat."""
        connection = self._connection
        with redis_errors(self._where):
            await connection.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
            if self._exact:
                await connection.send_command("SUBSCRIBE", *self._exact, check_health=False)
            if self._patterns:
                await connection.send_command("PSUBSCRIBE", *self._patterns, check_health=False)
            pending = len(self._exact) + len(self._patterns)
            while pending:
                reply = await connection.read_response()
                if isinstance(reply, list) and _text(reply[0]) in ("subscribe", "psubscribe"):
                    pending -= 1
                else:
                    self._accept(reply)
        self._heartbeat = Heartbeat(connection, interval_of(connection))
        self._heartbeat.start()

    async def _read(self) -> None:
        try:
            while True:
                try:
                    with redis_errors(self._where):
                        while True:
                            reply = await self._connection.read_response()
                            assert self._heartbeat is not None
                            self._heartbeat.seen()
                            self._accept(reply)
                except TransportError:
                    heartbeat = self._heartbeat
                    if self._closed or heartbeat is None or not heartbeat.frozen:
                        raise
                    log.warning(
                        "fanout subscription at %s did not answer a PING within %ss: replacing its connection",
                        self._where,
                        heartbeat.interval,
                    )
                    await heartbeat.stop()
                    with contextlib.suppress(Exception):
                        await self._connection.disconnect(nowait=True)
                    await self._subscribe()  # an error here ends the subscription (the consumer reconnects)
        except TransportError as exc:
            if not self._closed:
                self._inbox.put_nowait(exc)
        finally:
            self._inbox.put_nowait(None)

    def _accept(self, reply: Any) -> None:
        if is_pong(reply) or not isinstance(reply, list) or not reply:
            return
        kind = _text(reply[0])
        if kind == "message" and len(reply) == 3:
            channel, data = reply[1], reply[2]
        elif kind == "pmessage" and len(reply) == 4:
            channel, data = reply[2], reply[3]
        else:
            return
        try:
            envelope = redis_envelope.decode(data)
        except DecodeError as exc:
            log.warning("skipped a broadcast on %r that is not a kombu envelope: %s", _text(channel), exc.reason)
            return
        self._inbox.put_nowait((self._keys.channel_name(_text(channel)), envelope.message))

    async def __anext__(self) -> tuple[str, Message]:
        if self._closed and self._inbox.empty():
            raise StopAsyncIteration
        item = await self._inbox.get()
        if item is None:
            self._inbox.put_nowait(None)  # every later call ends too
            raise StopAsyncIteration
        if isinstance(item, TransportError):
            raise item
        return item

    async def close(self) -> None:
        """Stop listening; a pending ``__anext__`` ends. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._on_close is not None:
            self._on_close(self)
        if self._heartbeat is not None:
            await self._heartbeat.stop()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        else:
            self._inbox.put_nowait(None)
        with contextlib.suppress(Exception):
            await self._connection.disconnect()

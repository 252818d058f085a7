"""ReplyLink: the one AMQP connection of an ``rpc://`` backend, which publishes states and consumes replies.

One connection, one channel with publisher confirms. Publishing (worker side) goes to the default exchange with
the routing key of the client's reply queue; a publish returns once RabbitMQ confirmed it, so a late ack follows
a result RabbitMQ holds. Consuming (client side) starts on the first `ReplyLink.listen`: the reply queue is
declared exactly as Celery declares it (`reply_queue_arguments`) and consumed without acks.

A lost connection is reopened in one place (`ReplyLink._reopen`): by the next publish (retried as Celery's
``retry_policy`` does: about 20 tries, at most a second apart), and at once in the background while a reply queue
is consumed, so waiters get their results after a broker restart. The reply queue is ``auto_delete`` (Celery's
attributes), so states published while no consumer was attached are lost, as with Celery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from celeriac._amqp.errors import ChannelError, amqp_errors
from celeriac._amqp.link import open_connection
from celeriac._amqp.urls import AMQPAddress
from celeriac._amqp.wire.channel import Channel, Delivered
from celeriac._amqp.wire.codec import Properties
from celeriac._amqp.wire.connection import Connection
from celeriac.errors import BackendError, ConnectionLost, TransportError

log = logging.getLogger("celeriac.backends.rpc")

PUBLISH_TRIES = 20
"""Tries of one publish across reconnects before it fails (Celery's rpc ``retry_policy``: 20 retries)."""
RETRY_INTERVAL_MAX = 1.0
"""Longest pause between two tries (Celery: ``interval_max`` 1 s, ``interval_step`` 1 s, first retry at once)."""


def reply_queue_arguments(expires: float | None) -> dict[str, Any]:
    """The arguments Celery declares a reply queue with: ``x-expires`` = ``result_expires`` in ms (none if 0)."""
    return {"x-expires": int(expires * 1000)} if expires else {}


OnReply = Callable[[Delivered], None]


class ReplyLink:
    """The connection of one ``rpc://`` backend.

    Args:
        address: the broker (``broker_url``).
        queue: this client's reply queue name (its oid).
        expires: ``result_expires`` (the reply queue's ``x-expires``).
        on_reply: called with each message consumed from the reply queue (must not raise).
        heartbeat: AMQP heartbeat seconds; ``timeout``: seconds an opening may take.
    """

    def __init__(
        self,
        address: AMQPAddress,
        queue: str,
        expires: float | None,
        on_reply: OnReply,
        heartbeat: float,
        timeout: float,
    ) -> None:
        self.address = address
        self.queue = queue
        self.expires = expires
        self._on_reply = on_reply
        self._heartbeat = heartbeat
        self._timeout = timeout
        self._connection: Connection | None = None
        self._channel: Channel | None = None
        self._listening = False  # whether the reply queue should be consumed (kept across reopens)
        self._consumed_on: Channel | None = None  # the channel the consumer lives on
        self._lock = asyncio.Lock()  # one opening at a time
        self._watch: asyncio.Task[None] | None = None
        self._closed = False
        self.reopened = 0  # how many times a lost connection was opened again

    # -- life cycle -----------------------------------------------------------------------------------------
    async def open(self) -> None:
        """Open the connection and channel. Raises `ConnectionLost` when RabbitMQ cannot be reached."""
        async with self._lock:
            await self._open_locked()

    async def close(self) -> None:
        """Close the connection (the reply queue goes away with its consumer); idempotent."""
        self._closed = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(BaseException):
                await self._watch
            self._watch = None
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5.0)

    def _usable(self) -> Channel | None:
        channel = self._channel
        if channel is None or channel.is_closed or self._connection is None or self._connection.is_closed:
            return None
        return channel

    async def _open_locked(self) -> Channel:
        channel = self._usable()
        if channel is not None:
            return channel
        if self._closed:
            raise BackendError("the rpc:// result backend is closed")
        old, self._connection, self._channel = self._connection, None, None
        if old is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(old.close(), 2.0)
        connection = await open_connection(
            self.address, heartbeat=self._heartbeat, timeout=self._timeout, name=f"celeriac rpc:// {self.queue}"
        )
        try:
            with amqp_errors("opening a channel for rpc:// results", self.address.url):
                channel = await connection.channel(publisher_confirms=True)
            self._connection, self._channel = connection, channel
            if self._listening:
                await self._consume(channel)
        except BaseException:
            self._connection = self._channel = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 2.0)
            raise
        connection.closing.add_done_callback(self._on_lost)
        return channel

    def _on_lost(self, _: object) -> None:
        """The connection closed: while a reply queue is consumed, reopen it now (waiters need it)."""
        if self._closed or not self._listening or (self._watch is not None and not self._watch.done()):
            return
        self._watch = asyncio.get_running_loop().create_task(self._reopen_listening())

    async def _reopen_listening(self) -> None:
        log.warning("rpc:// result link to %s lost; reconnecting", self.address.url)
        delay = 0.0
        while not self._closed:
            await asyncio.sleep(delay)  # a backoff between tries, not a synchronization
            try:
                async with self._lock:
                    await self._open_locked()
            except (ConnectionLost, ChannelError) as exc:
                delay = min(RETRY_INTERVAL_MAX * 2, delay + 0.5)
                log.debug("rpc:// reconnect failed: %s", exc)
                continue
            self.reopened += 1
            log.info("rpc:// result link to %s is back", self.address.url)
            return

    # -- consuming ------------------------------------------------------------------------------------------
    async def listen(self) -> None:
        """Declare this client's reply queue and consume it (once; again after every reopen)."""
        if self._listening and self._usable() is not None and self._consumed_on is self._channel:
            return
        async with self._lock:
            self._listening = True
            channel = await self._open_locked()
            if self._consumed_on is not channel:
                await self._consume(channel)

    async def _consume(self, channel: Channel) -> None:
        with amqp_errors(f"declaring rpc:// reply queue {self.queue!r}", self.address.url):
            await channel.queue_declare(
                self.queue, durable=True, auto_delete=True, arguments=reply_queue_arguments(self.expires)
            )
        with amqp_errors(f"consuming rpc:// reply queue {self.queue!r}", self.address.url):
            await channel.basic_consume(self.queue, self._on_reply, no_ack=True)
        self._consumed_on = channel

    # -- publishing -----------------------------------------------------------------------------------------
    async def publish(self, body: bytes, routing_key: str, properties: Properties) -> None:
        """Publish ``body`` to the default exchange for queue ``routing_key``; returns once RabbitMQ confirmed.

        A message for a reply queue that no longer exists (its client is gone) is dropped by RabbitMQ and still
        confirmed, as with Celery.

        Raises:
            BackendError: RabbitMQ refused or nacked it, or stayed unreachable through every retry.
        """
        where = f"sending an rpc:// result to reply queue {routing_key!r}"
        last: Exception | None = None
        for attempt in range(PUBLISH_TRIES):
            if attempt:
                await asyncio.sleep(min(RETRY_INTERVAL_MAX, attempt - 1.0))  # backoff between tries
            try:
                channel = self._usable()
                if channel is None:
                    async with self._lock:
                        channel = await self._open_locked()
                with amqp_errors(where, self.address.url):
                    confirm = channel.publish(body, "", routing_key, properties)
                    if confirm is not None:  # always, on this confirm channel
                        await confirm
            except ConnectionLost as exc:
                last = exc
                continue
            except TransportError as exc:  # a channel error, or a nack: RabbitMQ refused this publish
                raise BackendError(str(exc)) from exc
            return
        raise BackendError(f"{where}: RabbitMQ unreachable after {PUBLISH_TRIES} tries ({last})")

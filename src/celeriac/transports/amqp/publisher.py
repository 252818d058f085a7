"""Publishing with publisher confirms on every message; concurrent publishes pipeline on one confirm channel
(the publishes of one loop turn in one write: `PublishBatch`).

`publish` returns once RabbitMQ confirmed the message; a nack, or a mandatory message RabbitMQ returned as
unroutable, is a `TransportError` saying so. A channel RabbitMQ closed (a missing exchange: 404 NOT_FOUND) is
replaced on the next publish and that publish's error names the exchange; publishes that were only caught in
the same closing are sent again once on the new channel. A broken connection is replaced (`Link`) and the
publish sent again once: at least once, never lost silently.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import cast

import aiormq
import aiormq.abc
from pamqp.commands import Basic

from celeriac._amqp.errors import ChannelError, amqp_errors
from celeriac.errors import ConnectionLost, TransportError
from celeriac.transports.amqp.batch import PublishBatch
from celeriac.transports.amqp.link import Link


class Publisher:
    """The transport's confirm channel, opened on first use and after it was closed."""

    def __init__(self, link: Link) -> None:
        self._link = link
        self._channel: aiormq.abc.AbstractChannel | None = None
        self._opening: asyncio.Future[aiormq.abc.AbstractChannel] | None = None
        self._batches: PublishBatch | None = None

    async def _current(self) -> aiormq.abc.AbstractChannel:
        channel = self._channel
        if channel is not None and not channel.is_closed:
            return channel
        # One opening shared by every caller, who all wake together when it is done (a lock would wake them
        # one loop turn at a time, and their publishes would not share a write).
        if self._opening is None or self._opening.done():
            self._opening = asyncio.ensure_future(self._open())
        return await asyncio.shield(self._opening)

    async def _open(self) -> aiormq.abc.AbstractChannel:
        channel = await self._link.channel(confirms=True)
        self._channel = channel
        return channel

    def _batch(self, channel: aiormq.abc.AbstractChannel) -> PublishBatch:
        batch = self._batches
        if batch is None or batch.channel is not channel:
            batch = self._batches = PublishBatch(cast(aiormq.Channel, channel))
        return batch

    async def publish(
        self, body: bytes, exchange: str, routing_key: str, properties: Basic.Properties, *, mandatory: bool
    ) -> None:
        """Publish and wait for the confirm (see the module docstring for what is retried)."""
        where = f"publishing to exchange {exchange!r} with routing key {routing_key!r}"
        for attempt in (1, 2):
            channel = await self._current()
            try:
                with amqp_errors(where, self._link.address.url):
                    await self._batch(channel).publish(body, exchange, routing_key, properties, mandatory)
                return
            except (TypeError, ValueError) as exc:  # pamqp could not encode a header or property
                raise TransportError(f"{where}: the message cannot be put in AMQP frames ({exc})") from exc
            except ConnectionLost:
                if attempt == 2 or self._link.closed:
                    raise
            except ChannelError as exc:
                if self._channel is channel:
                    self._channel = None
                if attempt == 2 or f"'{exchange}'" in exc.reply_text or not exc.reply_text:
                    raise

    async def close(self) -> None:
        """Close the confirm channel (outstanding confirms fail)."""
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(channel.close(), 2.0)

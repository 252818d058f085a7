"""Publishing with publisher confirms on every message; concurrent publishes pipeline on one confirm channel
(the connection writes the publishes of one loop turn together).

`publish` returns once RabbitMQ confirmed the message; a nack, or a mandatory message RabbitMQ returned as
unroutable, is a `TransportError` saying so. A channel RabbitMQ closed (a missing exchange: 404 NOT_FOUND) is
replaced on the next publish and that publish's error names the exchange; publishes that were only caught in
the same closing are sent again once on the new channel. A broken connection is replaced (`Link`) and the
publish sent again once: at least once, never lost silently.
"""

from __future__ import annotations

import asyncio
import contextlib

from celeriac._amqp.errors import ChannelError, amqp_errors
from celeriac._amqp.wire.channel import Channel
from celeriac._amqp.wire.codec import Properties
from celeriac.errors import ConnectionLost, TransportError
from celeriac.transports.amqp.link import Link


class Publisher:
    """The transport's confirm channel, opened on first use and after it was closed."""

    def __init__(self, link: Link) -> None:
        self._link = link
        self._channel: Channel | None = None
        self._opening: asyncio.Future[Channel] | None = None

    async def _current(self) -> Channel:
        channel = self._channel
        if channel is not None and not channel.is_closed:
            return channel
        # One opening shared by every caller, who all wake together when it is done (a lock would wake them
        # one loop turn at a time, and their publishes would not share a write).
        if self._opening is None or self._opening.done():
            self._opening = asyncio.ensure_future(self._open())
        return await asyncio.shield(self._opening)

    async def _open(self) -> Channel:
        channel = await self._link.channel(confirms=True)
        self._channel = channel
        return channel

    async def publish(
        self, body: bytes, exchange: str, routing_key: str, properties: Properties, *, mandatory: bool
    ) -> None:
        """Publish and wait for the confirm (see the module docstring for what is retried)."""
        where = f"publishing to exchange {exchange!r} with routing key {routing_key!r}"
        for attempt in (1, 2):
            channel = await self._current()
            try:
                with amqp_errors(where, self._link.address.url):
                    confirm = channel.publish(body, exchange, routing_key, properties, mandatory=mandatory)
                    if confirm is not None:  # always, on this confirm channel
                        await confirm
                return
            except (TypeError, ValueError) as exc:  # a header or property AMQP cannot carry
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

"""Acks of one channel written together: every ack asked for in one event-loop turn is encoded at once and goes
out in that turn's single write.

An ack has no reply in AMQP; it is done once it is handed to the connection, ahead of any later close. One write
per ack was the largest cost of a busy worker (a send syscall each).
"""

from __future__ import annotations

import asyncio
import logging

from celeriac._amqp.wire.channel import Channel

log = logging.getLogger("celeriac.transports.amqp")


class AckBatch:
    """Collects the acks of one channel and hands them to the connection at the end of the loop turn."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._tags: list[int] = []
        self._done: asyncio.Future[None] | None = None

    def ack(self, tag: int) -> asyncio.Future[None]:
        """Queue the ack of ``tag``; the future is done once it is handed to the connection."""
        self._tags.append(tag)
        if self._done is None:
            loop = asyncio.get_running_loop()
            self._done = loop.create_future()
            loop.call_soon(self._flush)
        return self._done

    def _flush(self) -> None:
        tags, self._tags = self._tags, []
        done, self._done = self._done, None
        assert done is not None
        if self.channel.is_closed:
            log.info("%d acks skipped: their channel closed, RabbitMQ delivers those messages again", len(tags))
        else:
            self.channel.ack(tags)
        done.set_result(None)

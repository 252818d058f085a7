"""Acks of one channel written together: every ack asked for in one event-loop turn goes out in one socket write.

An ack has no reply in AMQP; it is done once it is in the connection's write queue, behind which the frames of a
later close wait their turn. One write per ack was the largest cost of a busy worker (a send syscall each).
"""

from __future__ import annotations

import asyncio
import logging

import aiormq
from aiormq.abc import ChannelFrame
from pamqp.commands import Basic

log = logging.getLogger("celeriac.transports.amqp")


class AckBatch:
    """Collects the acks of one channel and writes them at the end of the loop turn."""

    def __init__(self, channel: aiormq.Channel) -> None:
        self.channel = channel
        self._tags: list[int] = []
        self._done: asyncio.Future[None] | None = None
        self._waiting: set[asyncio.Future[None]] = set()

    def ack(self, tag: int) -> asyncio.Future[None]:
        """Queue the ack of ``tag``; the future is done once it is in the write queue."""
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
        channel = self.channel
        if channel.is_closed:
            log.info("%d acks skipped: their channel closed, RabbitMQ delivers those messages again", len(tags))
            done.set_result(None)
            return
        frame = ChannelFrame.marshall(channel.number, [Basic.Ack(delivery_tag=tag) for tag in tags])
        try:
            channel.write_queue.put_nowait(frame)
        except asyncio.QueueFull:  # the writer is behind: wait for room, then the acks are done
            waiting = asyncio.ensure_future(self._put(frame, done))
            self._waiting.add(waiting)
            waiting.add_done_callback(self._waiting.discard)
            return
        done.set_result(None)

    async def _put(self, frame: ChannelFrame, done: asyncio.Future[None]) -> None:
        try:
            await self.channel.write_queue.put(frame)
        finally:
            if not done.done():
                done.set_result(None)

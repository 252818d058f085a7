"""Publishes of one loop turn written in one frame batch on a confirm channel, each with its own confirm.

aiormq writes every `basic_publish` with a socket send of its own, the largest cost of a fast producer. This
takes what aiormq's `basic_publish` does for one message (next delivery tag, a confirm future the channel
rejects when it closes, the message id a returned message is matched by) for every publish asked for in one
loop turn, and hands the frames to the connection's writer as one payload. The broker numbers publishes in the
order they arrive, so payloads go to the writer strictly in the order their tags were given (a backlog when the
writer's queue is full). Relies on aiormq 7's channel attributes (pinned ``aiormq>=7,<8``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import aiormq
from aiormq.abc import ChannelFrame
from pamqp.commands import Basic
from pamqp.header import ContentHeader


@dataclass(slots=True)
class _Publish:
    body: bytes
    exchange: str
    routing_key: str
    properties: Basic.Properties
    mandatory: bool
    confirm: asyncio.Future[object]


class PublishBatch:
    """Collects the publishes of one confirm channel and writes them at the end of the loop turn."""

    def __init__(self, channel: aiormq.Channel) -> None:
        self.channel = channel
        self._pending: list[_Publish] = []
        self._backlog: deque[ChannelFrame] = deque()
        self._draining: asyncio.Task[None] | None = None

    def publish(
        self, body: bytes, exchange: str, routing_key: str, properties: Basic.Properties, mandatory: bool
    ) -> asyncio.Future[object]:
        """Queue one publish; the future holds RabbitMQ's confirm (or the error: nack, return, closed channel).

        Raises:
            TypeError, ValueError: a property or header pamqp cannot encode (checked now, alone).
        """
        if len(routing_key) > 255:
            raise ValueError("routing key longer than 255 bytes")
        ContentHeader(0, len(body), properties).marshal()  # refuse what cannot be encoded before it is queued
        confirm: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._pending.append(_Publish(body, exchange, routing_key, properties, mandatory, confirm))
        if len(self._pending) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        return confirm

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        channel = self.channel
        if channel.is_closed:
            for item in batch:
                if not item.confirm.done():
                    item.confirm.set_exception(aiormq.exceptions.ChannelInvalidStateError(f"{channel!r} closed"))
            return
        frames: list[object] = []
        for item in batch:
            channel.delivery_tag += 1
            tag = channel.delivery_tag
            confirmation = channel.create_future()  # rejected by aiormq when the channel closes
            channel.confirmations[tag] = confirmation
            message_id = item.properties.message_id or uuid.uuid4().hex
            item.properties.message_id = message_id
            channel.message_id_delivery_tag[message_id] = tag
            confirmation.add_done_callback(_forget(channel, message_id, tag))
            _chain(confirmation, item.confirm)
            frames.append(Basic.Publish(exchange=item.exchange, routing_key=item.routing_key, mandatory=item.mandatory))
            frames.append(ContentHeader(0, len(item.body), item.properties))
            frames.extend(channel._split_body(item.body))
        payload = ChannelFrame.marshall(channel.number, frames)  # type: ignore[arg-type]
        if not self._backlog:
            try:
                channel.write_queue.put_nowait(payload)
                return
            except asyncio.QueueFull:
                pass
        self._backlog.append(payload)
        if self._draining is None or self._draining.done():
            self._draining = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        """Hand the backlog to the writer in order, waiting for room."""
        while self._backlog:
            if self.channel.is_closed:  # frames of a closed channel would break the connection
                self._backlog.clear()
                return
            await self.channel.write_queue.put(self._backlog[0])
            self._backlog.popleft()


def _forget(channel: aiormq.Channel, message_id: str, tag: int) -> Callable[[asyncio.Future[object]], None]:
    def forget(_: asyncio.Future[object]) -> None:
        if channel.message_id_delivery_tag.get(message_id) == tag:
            del channel.message_id_delivery_tag[message_id]

    return forget


def _chain(source: asyncio.Future[object], target: asyncio.Future[object]) -> None:
    def copy(done: asyncio.Future[object]) -> None:
        if target.done():
            return
        if done.cancelled():
            target.set_exception(aiormq.exceptions.ChannelInvalidStateError("the channel closed before the confirm"))
        elif (error := done.exception()) is not None:
            target.set_exception(error)
        else:
            target.set_result(done.result())

    source.add_done_callback(copy)

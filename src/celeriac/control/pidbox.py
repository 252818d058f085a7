"""The mailbox (pidbox), the caller's side: `Mailbox.call` broadcasts a command and collects the replies
(celery-wire.md §5.1-§5.3; the messages themselves are in `messages`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from celeriac.control.messages import (
    EXCHANGE,
    JSON_ONLY,
    REPLY_EXCHANGE,
    ControlRequest,
    reply_queue,
    request_message,
)
from celeriac.control.signing import sign_message
from celeriac.errors import ProtocolError, TransportError
from celeriac.protocol.clock import LamportClock
from celeriac.protocol.message import Message
from celeriac.protocol.serializers import loads
from celeriac.transports.base import Delivery, Transport

log = logging.getLogger("celeriac.control")


class Mailbox:
    """The caller's side: broadcast commands on ``transport`` (connected; not owned) and collect replies.

    Args:
        transport: where to publish and consume.
        clock: the mailbox clock (request header ``clock``); a new one by default.
        signing_key: ``control_signing_key``: when set, every request is signed with it (`signing`).
    """

    def __init__(self, transport: Transport, clock: LamportClock | None = None, signing_key: str | None = None) -> None:
        self.transport = transport
        self.clock = clock or LamportClock()
        self.signing_key = signing_key

    async def call(
        self,
        method: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        destination: Sequence[str] | None = None,
        pattern: str | None = None,
        matcher: str | None = None,
        reply: bool = False,
        timeout: float = 1.0,
        limit: int | None = None,
        every_receiver_replies: bool = False,
    ) -> list[dict[str, Any]]:
        """Broadcast ``method``; with ``reply``, return the replies (``[{node: value}, ...]``).

        Replies are collected until ``timeout`` seconds pass without one, or ``limit`` arrived (``limit``
        defaults to the number of ``destination`` nodes). With ``every_receiver_replies`` (a command every node
        answers, sent to all), a broker that counts the broadcast's receivers (Redis) also ends the wait once
        that many replies came: no receivers, no wait. Without ``reply`` it returns ``[]`` at once.
        Raises `TransportError` when the broker cannot be reached.
        """
        oid = str(uuid.uuid4())
        request = ControlRequest(
            method,
            dict(arguments or {}),
            tuple(destination) if destination else None,
            pattern,
            matcher,
            ticket=str(uuid.uuid4()) if reply else None,
            reply_exchange=REPLY_EXCHANGE if reply else None,
            reply_routing_key=oid if reply else None,
        )
        message = sign_message(request_message(request, self.clock.forward(), timeout), self.signing_key)
        if not reply:
            await self.transport.fanout(EXCHANGE, message)
            return []
        if limit is None and destination:
            limit = len(destination)
        queue = reply_queue(oid)
        await self.transport.bind(queue, REPLY_EXCHANGE, oid)
        try:
            return await self._collect(queue, request, message, timeout, limit, every_receiver_replies)
        finally:
            with contextlib.suppress(TransportError):
                await self.transport.delete(queue)

    async def _collect(
        self,
        queue: str,
        request: ControlRequest,
        message: Message,
        timeout: float,
        limit: int | None,
        counted: bool = False,
    ) -> list[dict[str, Any]]:
        consumer = self.transport.consume([queue], prefetch=0)
        inbox: asyncio.Queue[Delivery] = asyncio.Queue()

        async def read() -> None:
            async for delivery in consumer:
                inbox.put_nowait(delivery)

        reader = asyncio.create_task(read(), name="pidbox replies")
        replies: list[dict[str, Any]] = []
        try:
            receivers = await self.transport.fanout_counted(EXCHANGE, message)
            if counted and receivers is not None:
                limit = receivers if limit is None else min(limit, receivers)
            while limit is None or len(replies) < limit:
                got = asyncio.ensure_future(inbox.get())
                done, _ = await asyncio.wait({got, reader}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if got not in done:
                    got.cancel()
                    if reader in done:
                        reader.result()  # the link broke: raise why
                    break
                delivery = got.result()
                body = self._reply_body(delivery, request.ticket)
                with contextlib.suppress(TransportError):
                    await delivery.ack()
                if body is not None:
                    replies.append(body)
        finally:
            with contextlib.suppress(TransportError):
                await consumer.cancel()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, TransportError, StopAsyncIteration):
                await reader
        return replies

    def _reply_body(self, delivery: Delivery, ticket: str | None) -> dict[str, Any] | None:
        headers = delivery.message.headers
        if headers.get("ticket") != ticket:
            return None
        clock = headers.get("clock")
        if isinstance(clock, int) and not isinstance(clock, bool):
            self.clock.adjust(clock)
        try:
            body = loads(
                delivery.message.body, delivery.message.content_type, delivery.message.content_encoding, JSON_ONLY
            )
        except ProtocolError as exc:
            log.warning("skipped an unreadable control reply: %s", exc)
            return None
        return body if isinstance(body, dict) else None

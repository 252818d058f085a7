"""One AMQP channel: synchronous methods one at a time, consumers called as their deliveries complete, and
publisher confirms.

A delivery is complete when its body is; the consumer's callback is then called at once (a plain function, on
the event loop), so a consumer sees its deliveries in the order RabbitMQ sent them. A confirm channel numbers
its publishes from 1 as RabbitMQ does; ``basic.ack``/``basic.nack`` (with ``multiple``) settle their futures, and
a ``basic.return`` (which RabbitMQ sends before the confirm of the same message) fails the publish it names by
message id. When the channel ends, every waiter gets the reason: `ChannelClosed` when RabbitMQ closed it,
`LinkError` when the connection went.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pamqp import commands

from celeriac._amqp.wire import codec, encode
from celeriac._amqp.wire.errors import AMQPError, ChannelClosed, ChannelUnusable, PublishFailed

if TYPE_CHECKING:
    from celeriac._amqp.wire.connection import Connection

log = logging.getLogger("celeriac.amqp")

_CHANNEL_CLOSE = (20 << 16) | 40
_CHANNEL_CLOSE_OK = (20 << 16) | 41
_CHANNEL_FLOW = (20 << 16) | 20
_BASIC_CANCEL = (60 << 16) | 30
GONE_KEPT = 64


class Delivered:
    """A complete message from a consumer (or a returned one)."""

    __slots__ = ("body", "consumer_tag", "delivery_tag", "exchange", "properties", "redelivered", "routing_key")

    def __init__(self, method: codec.Deliver, properties: codec.Properties, body: bytes) -> None:
        self.body = body
        self.properties = properties
        self.consumer_tag = method.consumer_tag
        self.delivery_tag = method.delivery_tag
        self.redelivered = method.redelivered
        self.exchange = method.exchange
        self.routing_key = method.routing_key


OnMessage = Callable[[Delivered], None]


class Channel:
    """A channel of a `Connection` (open it with ``Connection.channel``)."""

    def __init__(self, connection: Connection, number: int) -> None:
        self.connection = connection
        self.number = number
        self.closing: asyncio.Future[None] = connection.loop.create_future()
        self.confirming = False
        self.on_consumer_cancel_callbacks: set[Callable[[str], None]] = set()
        self._consumers: dict[str, tuple[OnMessage, bool]] = {}  # tag -> (callback, no_ack)
        # Cancelled consumers' tags -> no_ack, so their late deliveries go back; the latest GONE_KEPT only (late
        # deliveries come right after a cancel, and per-consumer QoS changes re-create consumers all day).
        self._gone: dict[str, bool] = {}
        self._lock = asyncio.Lock()
        self._waiter: asyncio.Future[Any] | None = None
        self._content: tuple[codec.Deliver, bool] | None = None  # (method, is a return) awaiting header/body
        self._props: codec.Properties | None = None
        self._size = 0
        self._parts: list[bytes] = []
        self._got = 0
        self._undecodable: str | None = None  # why the current message's properties did not decode
        self._unsettled: set[int] = set()  # delivered to an acking consumer, neither acked nor rejected yet
        self._acks: list[int] = []  # acked in this loop turn, not yet handed to the connection
        self._published = 0
        self._confirms: dict[int, asyncio.Future[None]] = {}
        self._by_message_id: dict[str, int] = {}

    @property
    def is_closed(self) -> bool:
        """Whether the channel has ended (closed by us or RabbitMQ, or with its connection)."""
        return self.closing.done()

    # -- frames in ------------------------------------------------------------------------------------------
    def on_frame(self, kind: int, payload: bytes) -> None:
        """One frame for this channel, in the order it arrived."""
        if kind == codec.FRAME_METHOD:
            key = codec.method_key(payload)
            if key == codec.BASIC_DELIVER:
                self._content = (codec.decode_deliver(payload), False)
            elif key == codec.BASIC_ACK or key == codec.BASIC_NACK:
                self._confirmed(*codec.decode_confirm(payload), key == codec.BASIC_ACK)
            elif key == codec.BASIC_RETURN:
                self._content = (codec.decode_return(payload), True)
            else:
                self._on_method(key, payload)
        elif kind == codec.FRAME_HEADER:
            if self._content is None:
                raise codec.FrameError(f"content header without a method on channel {self.number}")
            self._parts, self._got, self._undecodable = [], 0, None
            try:
                self._size, self._props = codec.decode_header(payload)
            except codec.FrameError as exc:  # one bad message, not a bad link: its body is skipped, it is rejected
                self._size, self._props, self._undecodable = codec.body_size(payload), codec.Properties(), str(exc)
            if self._size == 0:
                self._complete()
        elif kind == codec.FRAME_BODY:
            if self._props is None:
                raise codec.FrameError(f"content body without a header on channel {self.number}")
            self._parts.append(payload)
            self._got += len(payload)
            if self._got >= self._size:
                self._complete()

    def _complete(self) -> None:
        assert self._content is not None and self._props is not None
        (method, returned), props = self._content, self._props
        body = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        self._content, self._props, self._parts = None, None, []
        if self._undecodable is not None:
            self._drop_undecodable(method, returned)
            return
        message = Delivered(method, props, body)
        if returned:
            self._returned(message, method)
            return
        consumer = self._consumers.get(method.consumer_tag)
        if consumer is not None:
            if not consumer[1]:
                self._unsettled.add(method.delivery_tag)
            try:
                consumer[0](message)
            except Exception:  # a consumer's bug must not break the connection's reading
                log.exception("consumer %s failed on a delivery", method.consumer_tag)
        elif self._gone.get(method.consumer_tag) is False:  # acked consumer cancelled: give the message back
            self.reject(method.delivery_tag, requeue=True)

    def _drop_undecodable(self, method: codec.Deliver, returned: bool) -> None:
        consumer = self._consumers.get(method.consumer_tag)
        acked = consumer is not None and not consumer[1]
        log.error("message %s from exchange %r (routing key %r) has properties that do not decode (%s): %s",
                  method.delivery_tag, method.exchange, method.routing_key, self._undecodable,
                  "rejected (dead-lettered where the queue has a dead-letter exchange)" if acked and not returned
                  else "dropped")  # fmt: skip
        if acked and not returned:
            self.reject(method.delivery_tag, requeue=False)

    def _on_method(self, key: int, payload: bytes) -> None:
        method = codec.decode_method(payload)
        if key == _CHANNEL_CLOSE:
            self._send(encode.method(self.number, commands.Channel.CloseOk()))
            self.teardown(ChannelClosed(int(method.reply_code or 0), str(method.reply_text or "")))
        elif key == _CHANNEL_CLOSE_OK:
            self.teardown(None)
        elif key == _BASIC_CANCEL:  # RabbitMQ cancelled a consumer (its queue was deleted, say)
            tag = str(method.consumer_tag)
            entry = self._consumers.pop(tag, None)
            if entry is not None:
                self._forget_consumer(tag, entry[1])
            if not method.nowait:
                self._send(encode.method(self.number, commands.Basic.CancelOk(tag)))
            for callback in list(self.on_consumer_cancel_callbacks):
                callback(tag)
        elif key == _CHANNEL_FLOW:
            self._send(encode.method(self.number, commands.Channel.FlowOk(method.active)))
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(method)
        else:
            log.warning("unexpected %s on channel %d: ignored", type(method).__name__, self.number)

    def _forget_consumer(self, tag: str, no_ack: bool) -> None:
        self._gone[tag] = no_ack
        if len(self._gone) > GONE_KEPT:
            del self._gone[next(iter(self._gone))]

    # -- synchronous methods --------------------------------------------------------------------------------
    async def rpc(self, method: Any) -> Any:
        """Send ``method`` and wait for its reply (one at a time per channel)."""
        async with self._lock:
            if self.is_closed:
                raise self._why()
            waiter: asyncio.Future[Any] = self.connection.loop.create_future()
            self._waiter = waiter
            self._send(encode.method(self.number, method))
            try:
                return await waiter
            finally:
                self._waiter = None

    def _why(self) -> AMQPError:
        if self.closing.done() and not self.closing.cancelled():
            reason = self.closing.exception()
            if isinstance(reason, AMQPError):
                return reason
        return ChannelUnusable(f"channel {self.number} is closed")

    async def basic_qos(self, prefetch_count: int, global_: bool = False) -> Any:
        """Set the prefetch window (per consumer, or for the channel when ``global_``)."""
        return await self.rpc(commands.Basic.Qos(prefetch_count=prefetch_count, global_=global_))

    async def basic_consume(self, queue: str, callback: OnMessage, *, no_ack: bool = False) -> str:
        """Start consuming ``queue``; ``callback`` gets each complete delivery. Returns the consumer tag."""
        # The tag is ours and registered first: deliveries may follow the consume-ok in the same read.
        tag = f"ctag{self.number}.{uuid.uuid4().hex}"
        self._consumers[tag] = (callback, no_ack)
        try:
            await self.rpc(commands.Basic.Consume(queue=queue, consumer_tag=tag, no_ack=no_ack))
        except BaseException:
            self._consumers.pop(tag, None)
            raise
        return tag

    async def basic_cancel(self, consumer_tag: str) -> None:
        """Stop a consumer; its deliveries still in flight go back to the queue."""
        entry = self._consumers.pop(consumer_tag, None)
        if entry is not None:
            self._forget_consumer(consumer_tag, entry[1])
        await self.rpc(commands.Basic.Cancel(consumer_tag=consumer_tag))

    async def queue_declare(self, queue: str, *, passive: bool = False, durable: bool = False,
                            exclusive: bool = False, auto_delete: bool = False,
                            arguments: dict[str, Any] | None = None) -> Any:  # fmt: skip
        """``queue.declare``; the reply has ``message_count`` and ``consumer_count``."""
        return await self.rpc(commands.Queue.Declare(queue=queue, passive=passive, durable=durable,
                              exclusive=exclusive, auto_delete=auto_delete, arguments=arguments))  # fmt: skip

    async def queue_bind(self, queue: str, exchange: str, routing_key: str = "") -> Any:
        """``queue.bind``."""
        return await self.rpc(commands.Queue.Bind(queue=queue, exchange=exchange, routing_key=routing_key))

    async def queue_purge(self, queue: str) -> Any:
        """``queue.purge``; the reply's ``message_count`` is what was removed."""
        return await self.rpc(commands.Queue.Purge(queue=queue))

    async def queue_delete(self, queue: str) -> Any:
        """``queue.delete``."""
        return await self.rpc(commands.Queue.Delete(queue=queue))

    async def exchange_declare(self, exchange: str, exchange_type: str, *, durable: bool = False,
                               auto_delete: bool = False, passive: bool = False) -> Any:  # fmt: skip
        """``exchange.declare``."""
        return await self.rpc(commands.Exchange.Declare(exchange=exchange, exchange_type=exchange_type,
                              durable=durable, auto_delete=auto_delete, passive=passive))  # fmt: skip

    async def exchange_bind(self, destination: str, source: str, routing_key: str = "") -> Any:
        """``exchange.bind`` (RabbitMQ's extension)."""
        return await self.rpc(commands.Exchange.Bind(destination=destination, source=source, routing_key=routing_key))

    # -- asynchronous methods -------------------------------------------------------------------------------
    def ack(self, tags: list[int]) -> None:
        """Ack deliveries. They go out with this loop turn's write, together with every other ack of the turn:
        the tags below every delivery still unsettled on this channel as one ``multiple`` ack (RabbitMQ does one
        ack's work instead of one per tag), the rest one by one. A multiple ack acks every unacked tag up to it, so
        it is only used up to the lowest delivery that is neither acked nor rejected."""
        if self.is_closed:
            raise self._why()
        if not self._acks:
            self.connection.acks_pending(self)
        self._acks.extend(tags)

    def write_acks(self) -> None:
        """Hand the acks collected so far to the connection (at its flush, and before any other frame of this
        channel, so frames keep the order they were asked in)."""
        tags, self._acks = self._acks, []
        if not tags or self.is_closed:
            return
        unsettled = self._unsettled
        unsettled.difference_update(tags)
        if len(tags) > 1:
            floor = min(unsettled) if unsettled else 1 << 64
            below = [tag for tag in tags if tag < floor]
            if len(below) > 1:
                rest = [tag for tag in tags if tag >= floor]
                self.connection.send(encode.ack_frames(self.number, rest, multiple=max(below)))
                return
        self.connection.send(encode.ack_frames(self.number, tags))

    def _send(self, data: bytes) -> None:
        if self._acks:
            self.write_acks()
        self.connection.send(data)

    def reject(self, delivery_tag: int, *, requeue: bool) -> None:
        """Reject a delivery (back to its queue when ``requeue``, else dropped or dead-lettered)."""
        if self.is_closed:
            raise self._why()
        self._unsettled.discard(delivery_tag)
        method = commands.Basic.Reject(delivery_tag=delivery_tag, requeue=requeue)
        self._send(encode.method(self.number, method))

    def publish(self, body: bytes, exchange: str, routing_key: str, properties: codec.Properties, *,
                mandatory: bool = False) -> asyncio.Future[None] | None:  # fmt: skip
        """Publish; on a confirm channel the future settles with RabbitMQ's confirm (`PublishFailed` for a nack or
        a returned message), else None.

        Raises:
            TypeError, ValueError: a name, property or header AMQP cannot carry (nothing was sent).
        """
        if self.is_closed:
            raise self._why()
        connection = self.connection
        if mandatory and self.confirming and not properties.message_id:
            # a returned message is matched to its publish by message id (RabbitMQ returns it before the confirm)
            properties.message_id = uuid.uuid4().hex
        self._send(
            encode.publish(self.number, exchange, routing_key, mandatory, body, properties, connection.frame_max)
        )
        if not self.confirming:
            return None
        self._published += 1
        confirm: asyncio.Future[None] = connection.loop.create_future()
        self._confirms[self._published] = confirm
        if mandatory and properties.message_id:
            self._by_message_id[properties.message_id] = self._published
        return confirm

    def _confirmed(self, tag: int, multiple: bool, ack: bool) -> None:
        # ``multiple``: every tag up to this one (dict order is publish order)
        tags = [t for t in self._confirms if t <= tag] if multiple else [tag] if tag in self._confirms else []
        for one in tags:
            confirm = self._confirms.pop(one)
            if confirm.done():
                continue
            if ack:
                confirm.set_result(None)
            else:
                confirm.set_exception(PublishFailed(returned=False))
        if self._by_message_id and tags:
            done = set(tags)
            self._by_message_id = {m: t for m, t in self._by_message_id.items() if t not in done}

    def _returned(self, message: Delivered, method: codec.Deliver) -> None:
        message_id = message.properties.message_id
        tag = self._by_message_id.pop(message_id, None) if message_id else None
        confirm = self._confirms.get(tag) if tag is not None else None
        if confirm is None or confirm.done():
            log.warning("RabbitMQ returned a message no publish waits for (%d %s, exchange %r, key %r)",
                        method.reply_code, method.reply_text, method.exchange, method.routing_key)  # fmt: skip
            return
        confirm.set_exception(PublishFailed(returned=True, reply_code=method.reply_code, reply_text=method.reply_text,
                                            exchange=method.exchange, routing_key=method.routing_key))  # fmt: skip

    # -- closing --------------------------------------------------------------------------------------------
    async def close(self, timeout: float = 2.0) -> None:
        """Close the channel (``channel.close``, wait for the ``close-ok``); idempotent."""
        if self.is_closed:
            return
        self._send(encode.method(self.number, commands.Channel.Close(200, "", 0, 0)))
        with contextlib.suppress(Exception):  # timed out, or the connection went: the channel is over either way
            await asyncio.wait_for(asyncio.shield(self.closing), timeout)
        self.teardown(None)

    def teardown(self, reason: BaseException | None) -> None:
        """End the channel: waiters and unconfirmed publishes get ``reason`` (None: closed by us)."""
        if self.closing.done():
            return
        failure = reason if reason is not None else ChannelUnusable(f"channel {self.number} was closed")
        if reason is None:
            self.closing.set_result(None)
        else:
            self.closing.set_exception(reason)
            self.closing.exception()  # retrieved: readers of ``closing`` get it; nobody else is warned
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(failure)
        for confirm in self._confirms.values():
            if not confirm.done():
                confirm.set_exception(failure)
                confirm.exception()
        self._confirms.clear()
        self._consumers.clear()
        if self._acks:
            log.info("%d acks skipped: their channel closed, RabbitMQ delivers those messages again", len(self._acks))
            self._acks.clear()
        if self.connection.channels.get(self.number) is self:
            del self.connection.channels[self.number]

"""One AMQP 0-9-1 connection as an asyncio protocol: the opening handshake, heartbeats, channel 0, and writes.

Frames are split from the received bytes in ``data_received`` and handed to their channel at once, in order, on
the event loop: no reader task, no queue between the socket and a consumer. Everything written in one loop turn
(acks, publishes, replies of all channels) goes out in one ``write``: one system call, where a write per frame
hands the CPU to RabbitMQ each time on a small machine.

A lost link (socket closed or reset, heartbeats missed, RabbitMQ closing the connection) ends every channel with
the same `LinkError`; ``closing`` is the future that tells it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any, cast

from pamqp import commands

from celeriac._amqp.wire import codec, encode
from celeriac._amqp.wire.channel import Channel
from celeriac._amqp.wire.errors import AMQPError, LinkError, LoginRefused, VhostRefused
from celeriac._sockets import enable_keepalive

log = logging.getLogger("celeriac.amqp")

FRAME_MAX = 131072  # what we ask for; RabbitMQ's default
CHANNEL_MAX = 2047
CAPABILITIES = {
    "authentication_failure_close": True,
    "basic.nack": True,
    "connection.blocked": True,
    "consumer_cancel_notify": True,
    "exchange_exchange_bindings": True,
    "per_consumer_qos": True,
    "publisher_confirms": True,
}


class Connection(asyncio.Protocol):
    """An open connection; make one with `connect`."""

    def __init__(self, heartbeat: int | None) -> None:
        self.loop = asyncio.get_running_loop()
        self.closing: asyncio.Future[None] = self.loop.create_future()
        self.server_properties: dict[str, Any] = {}
        self.frame_max = FRAME_MAX
        self.channel_max = CHANNEL_MAX
        self._wanted_heartbeat = heartbeat
        self.heartbeat = 0
        self.channels: dict[int, Channel] = {}
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._out: list[bytes] = []
        self._acking: list[Channel] = []  # channels with acks to write in this turn
        self._flush_handle: asyncio.Handle | None = None
        self._opening: asyncio.Queue[Any] | None = asyncio.Queue()  # channel-0 methods until the link is open
        self._last_read = self.loop.time()
        self._beat: asyncio.TimerHandle | None = None
        self._close_ok: asyncio.Future[None] | None = None

    # -- asyncio.Protocol -----------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses
        sock = transport.get_extra_info("socket")  # uvloop's is a pseudo-socket, with setsockopt
        if sock is not None:  # with heartbeats off, keepalive is what finds a silently dead link
            enable_keepalive(sock)
        self._transport.write(codec.PROTOCOL_HEADER)

    def data_received(self, data: bytes) -> None:
        self._last_read = self.loop.time()
        buffer = self._buffer
        buffer += data
        if self._opening is not None and buffer[:4] == b"AMQP":
            self._lost(LinkError(f"the server does not speak AMQP 0-9-1 (it offered {bytes(buffer[:8])!r})"))
            return
        try:
            frames, used = codec.split_frames(buffer, self.frame_max)
            del buffer[:used]
            for kind, number, payload in frames:
                if number == 0:
                    self._on_channel0(kind, payload)
                    continue
                channel = self.channels.get(number)
                if channel is not None:
                    channel.on_frame(kind, payload)
                else:
                    log.debug("frame type %d for channel %d, which is closed: dropped", kind, number)
        except Exception as exc:  # a frame that does not decode: nothing after it on this link can be trusted
            log.error("RabbitMQ link broken: %s", exc, exc_info=not isinstance(exc, codec.FrameError))
            self._lost(LinkError(f"malformed frame from RabbitMQ ({exc})"))
            if self._transport is not None:
                self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"connection lost ({exc})" if exc else "connection closed by RabbitMQ"
        self._lost(LinkError(reason))

    # -- channel 0 ------------------------------------------------------------------------------------------
    def _on_channel0(self, kind: int, payload: bytes) -> None:
        if kind != codec.FRAME_METHOD:
            return  # heartbeats: reading anything counts as life
        method = codec.decode_method(payload)
        name = type(method).__name__
        if self._opening is not None and name != "Close":
            self._opening.put_nowait(method)
        elif name == "Close":
            code, text = int(method.reply_code or 0), str(method.reply_text or "")
            self.send(encode.method(0, commands.Connection.CloseOk()))
            self._flush()
            if self._opening is not None:
                self._opening.put_nowait(method)
            self._lost(LinkError(f"RabbitMQ closed the connection ({code} {text})", code))
        elif name == "CloseOk":
            if self._close_ok is not None and not self._close_ok.done():
                self._close_ok.set_result(None)
        elif name == "Blocked":
            log.warning("RabbitMQ blocked this connection's publishes (%s)", method.reason)
        elif name == "Unblocked":
            log.info("RabbitMQ unblocked this connection's publishes")
        else:
            log.debug("unexpected %s on channel 0: ignored", name)

    async def _expect(self, name: str) -> Any:
        assert self._opening is not None
        method = await self._opening.get()
        if isinstance(method, BaseException):
            raise method
        if type(method).__name__ != name:
            raise _refusal(method)
        return method

    async def open(self, login: str, password: str, vhost: str, properties: dict[str, Any]) -> None:
        """The opening handshake (``start``, ``tune``, ``open``); ``_lost`` ends it with the reason."""
        start = await self._expect("Start")
        self.server_properties = dict(start.server_properties or {})
        client = dict(properties, capabilities=CAPABILITIES)
        response = f"\0{login}\0{password}"
        self.send(encode.method(0, commands.Connection.StartOk(client, "PLAIN", response, "en_US")))
        try:
            tune = await self._expect("Tune")
        except LoginRefused:
            raise
        except LinkError as exc:  # without authentication_failure_close RabbitMQ just drops the socket
            raise LoginRefused(f"login refused ({exc})") from exc
        self.channel_max = min(tune.channel_max or CHANNEL_MAX, CHANNEL_MAX)
        self.frame_max = min(tune.frame_max or FRAME_MAX, FRAME_MAX)
        wanted = self._wanted_heartbeat
        self.heartbeat = int(tune.heartbeat or 0) if wanted is None else wanted
        self.send(encode.method(0, commands.Connection.TuneOk(self.channel_max, self.frame_max, self.heartbeat)))
        self.send(encode.method(0, commands.Connection.Open(vhost)))
        await self._expect("OpenOk")
        self._opening = None
        if self.heartbeat > 0:
            self._beat = self.loop.call_later(self.heartbeat / 2, self._on_beat)

    def _on_beat(self) -> None:
        """Send a heartbeat every half period; two silent periods from RabbitMQ mean the link is dead."""
        if self.closing.done():
            return
        silent = self.loop.time() - self._last_read
        if silent > 2 * self.heartbeat:
            log.warning("RabbitMQ sent nothing for %.0f s (heartbeat %d s): the link is dead", silent, self.heartbeat)
            self._lost(LinkError(f"no heartbeat from RabbitMQ for {silent:.0f} s"))
            if self._transport is not None:
                self._transport.abort()
            return
        self.send(encode.frame(codec.FRAME_HEARTBEAT, 0, b""))
        self._beat = self.loop.call_later(self.heartbeat / 2, self._on_beat)

    # -- writing --------------------------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        """Queue ``data`` for this loop turn's write."""
        self._out.append(data)
        if self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self._flush)

    def acks_pending(self, channel: Channel) -> None:
        """``channel`` has acks to write with this loop turn's write (`Channel.write_acks`)."""
        self._acking.append(channel)
        if self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        acking, self._acking = self._acking, []
        for channel in acking:
            channel.write_acks()
        out, self._out = self._out, []
        transport = self._transport
        if out and transport is not None and not transport.is_closing():
            transport.write(b"".join(out))

    # -- channels and closing -------------------------------------------------------------------------------
    @property
    def is_closed(self) -> bool:
        """Whether the link is gone (or closed by us)."""
        return self.closing.done()

    async def channel(self, *, publisher_confirms: bool = False) -> Channel:
        """Open a new channel (``confirm.select`` on it when ``publisher_confirms``)."""
        if self.closing.done():
            raise LinkError("connection closed")
        number = next((n for n in range(1, self.channel_max + 1) if n not in self.channels), None)
        if number is None:
            raise AMQPError(f"all {self.channel_max} channels are in use")
        channel = Channel(self, number)
        self.channels[number] = channel
        try:
            await channel.rpc(commands.Channel.Open())
            if publisher_confirms:
                await channel.rpc(commands.Confirm.Select())
                channel.confirming = True
        except BaseException:
            channel.teardown(None)
            raise
        return channel

    async def close(self, timeout: float = 2.0) -> None:
        """Close the connection cleanly (``connection.close``, wait for the ``close-ok``); idempotent."""
        if self.closing.done():
            return
        self._close_ok = self.loop.create_future()
        self.send(encode.method(0, commands.Connection.Close(200, "Normal shutdown", 0, 0)))
        self._flush()
        try:
            await asyncio.wait_for(asyncio.shield(self._close_ok), timeout)
        except (TimeoutError, asyncio.CancelledError):
            pass
        finally:
            self._lost(None)
            if self._transport is not None:
                self._transport.close()

    def _lost(self, reason: LinkError | None) -> None:
        """End the connection and every channel on it (``reason`` None: closed by us)."""
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None
        if self._opening is not None and reason is not None:
            self._opening.put_nowait(reason)
        if not self.closing.done():
            if reason is None:
                self.closing.set_result(None)
            else:
                self.closing.set_exception(reason)
                self.closing.exception()  # retrieved: whoever cares reads it; nobody else is told it was missed
        for channel in list(self.channels.values()):
            channel.teardown(reason or LinkError("connection closed"))
        self.channels.clear()


def _refusal(method: Any) -> LinkError:
    """What a ``connection.close`` during the opening means."""
    code = int(getattr(method, "reply_code", 0) or 0)
    text = str(getattr(method, "reply_text", "") or type(method).__name__)
    if code == 403 and "login" in text.lower():
        return LoginRefused(f"login refused ({code} {text})", code)
    if code in (403, 530):
        return VhostRefused(f"virtual host refused ({code} {text})", code)
    return LinkError(f"RabbitMQ refused the connection ({code} {text})", code)


async def connect(
    host: str,
    port: int,
    *,
    login: str,
    password: str,
    vhost: str,
    heartbeat: int | None,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    properties: dict[str, Any] | None = None,
) -> Connection:
    """Open a connection (TCP, TLS when ``ssl_context``, login with PLAIN, the virtual host).

    ``heartbeat``: seconds (0: off; None: what RabbitMQ proposes). ``server_hostname``: the name the TLS
    certificate is checked against (default ``host``). Bound the call with a timeout: a silent server is waited for.

    Raises:
        LoginRefused, VhostRefused, LinkError: refused or broken opening; OSError: unreachable.
    """
    loop = asyncio.get_running_loop()
    _, connection = await loop.create_connection(
        lambda: Connection(heartbeat),
        host,
        port,
        ssl=ssl_context,
        server_hostname=(server_hostname or host) if ssl_context is not None else None,
    )
    try:
        await connection.open(login, password, vhost, properties or {})
    except BaseException:
        connection._lost(LinkError("opening abandoned"))
        if connection._transport is not None:
            connection._transport.abort()
        raise
    return connection

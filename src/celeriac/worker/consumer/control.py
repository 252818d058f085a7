"""RemoteControl step: answer remote-control commands broadcast on ``celery.pidbox`` (celery-wire.md §5.2, §5.3).

Celery calls this step Control; here that name is the caller's (`celeriac.app.control.Control`) alone.

It runs on the worker's loop, so commands are answered while every pool slot is busy (sync bodies run in
threads). A malformed request is logged and dropped; a failing command becomes an error reply; neither ever
stops the step. ``worker_enable_remote_control=False`` leaves the step out; ``control_signing_key``,
``worker_control_disabled`` and ``worker_control_readonly`` limit what is obeyed (`ControlGuard`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from celeriac.control.arguments import shown
from celeriac.control.commands import NO_REPLY, CommandRegistry
from celeriac.control.guard import ControlGuard
from celeriac.control.messages import EXCHANGE, REPLY_EXCHANGE, ControlRequest, parse_request, reply_message
from celeriac.control.shapes import json_safe
from celeriac.errors import CeleriacError, TransportError
from celeriac.protocol.clock import LamportClock
from celeriac.protocol.message import Message
from celeriac.transports.base import Subscription, Transport
from celeriac.worker.bootsteps import Step
from celeriac.worker.consumer.connection import Connection
from celeriac.worker.consumer.node import WorkerNode
from celeriac.worker.consumer.tasks import Tasks

if TYPE_CHECKING:
    from celeriac.worker.consumer.consumer import Consumer

log = logging.getLogger("celeriac.worker")


class RemoteControl(Step["Consumer"]):
    """Subscribes to the mailbox, runs the commands meant for this node, replies to ``reply_to``.

    Args:
        registry: the commands answered; by default the app's (``app.control_commands``: the built-ins and
            the app's own commands), taken when the step starts.
    """

    requires = (Tasks,)

    def __init__(self, registry: CommandRegistry | None = None) -> None:
        self.registry = registry
        self.clock = LamportClock()  # the mailbox clock (reply headers), apart from the worker's app clock
        self.handled = 0
        self.guard = ControlGuard()
        self._ignored: dict[str, tuple[float, int]] = {}  # kind of reason -> (last logged, ignored since)
        self._subscription: Subscription | None = None
        self._reader: asyncio.Task[None] | None = None

    def include_if(self, consumer: Consumer) -> bool:
        return bool(consumer.app.conf.worker_enable_remote_control)

    async def start(self, consumer: Consumer) -> None:
        self.registry = self.registry or consumer.app.control_commands
        conf = consumer.app.conf
        self.guard = ControlGuard.of(
            conf.worker_control_disabled, conf.worker_control_readonly, conf.control_signing_key
        )
        for name in self.guard.unknown_names(self.registry):
            log.warning("worker_control_disabled names %r, which is no command of this worker", name)
        transport = consumer.blueprint.get(Connection).transport
        assert transport is not None
        # Celery's node queue name, so `celery inspect` and RabbitMQ's queue list show this worker (§3.2)
        self._subscription = await transport.subscribe([EXCHANGE], name=f"{consumer.worker.hostname}.{EXCHANGE}")
        node = WorkerNode(consumer, transport)
        self._reader = asyncio.create_task(self._serve(consumer, transport, node, self._subscription), name="control")

    async def stop(self, consumer: Consumer) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self._subscription is not None:
            with contextlib.suppress(TransportError):
                await self._subscription.close()
            self._subscription = None

    async def _serve(self, consumer: Consumer, transport: Transport, node: WorkerNode, sub: Subscription) -> None:
        try:
            async for _, message in sub:
                try:
                    await self.handle(message, transport, node)
                except (asyncio.CancelledError, TransportError):
                    raise
                except Exception:  # a bug in one command must not end remote control
                    log.exception("control: error while handling a command")
        except TransportError as exc:
            consumer.connection_lost(exc)

    async def handle(self, message: Message, transport: Transport, node: WorkerNode) -> None:
        """Run one request if it is meant for this node (and the guard lets it), and reply when asked to."""
        ignored = self.guard.ignores(message)
        if ignored is not None:
            self._log_ignored(ignored)
            return
        try:
            request = parse_request(message, node.app.accept)
        except CeleriacError as exc:
            log.warning("control: dropped a malformed command: %s", exc)
            return
        if request.clock is not None:
            self.clock.adjust(request.clock)
        if not request.selects(node.hostname):
            return
        node.clock.forward()
        assert self.registry is not None  # set by start()
        if log.isEnabledFor(logging.DEBUG):  # the repr of a 100,000-id revoke is megabytes: only when shown
            log.debug("control: %s %s", request.method, shown(dict(request.arguments), 500))
        refused = self.guard.refusal(request.method, self.registry.get(request.method))
        if refused is not None:
            log.warning("control: %s", refused)
            value: object = {"error": refused}
        else:
            value = await self.registry.dispatch(node, request.method, request.arguments)
        self.handled += 1
        if value is NO_REPLY or not request.wants_reply:
            return
        await self.reply(transport, node.hostname, request, value)

    def _log_ignored(self, reason: str) -> None:
        """Log an ignored command; a flood of them (anyone can publish) is one line per kind every 10 s."""
        kind = " ".join(reason.split()[:2])
        logged_at, since = self._ignored.get(kind, (-1e9, 0))
        now = time.monotonic()
        if now - logged_at < 10.0:
            self._ignored[kind] = (logged_at, since + 1)
            return
        more = f" (and {since} more like it since the last line)" if since else ""
        log.warning("control: ignored a command: %s%s", reason, more)
        self._ignored[kind] = (now, 0)

    async def reply(self, transport: Transport, hostname: str, request: ControlRequest, value: object) -> None:
        """Publish ``{hostname: value}`` to the request's reply exchange and routing key."""
        assert request.ticket is not None and request.reply_routing_key is not None
        try:
            message = reply_message(hostname, value, request.ticket, self.clock.forward())
        except (TypeError, ValueError):
            message = reply_message(hostname, json_safe(value), request.ticket, self.clock.forward())
        try:
            await transport.publish(message, request.reply_routing_key, request.reply_exchange or REPLY_EXCHANGE)
        except TransportError as exc:
            log.warning("control: could not reply to %s: %s", request.method, exc)

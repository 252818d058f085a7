"""Direct sends: a sync ``delay()``/``apply_async()``/``send_task()`` published from the caller's own thread.

The sync facades run their coroutines on the portal loop (`celeriac._portal`), and a send used to as well: two
thread wake-ups per call (~76 us on the 2-core benchmark VM) around the async publish. When the broker's
transport offers a blocking publisher (Redis, SQLite), a send that needs nothing from the loop is built, encoded
and published in the calling thread instead, on a connection that thread owns (`Transport.blocking_publisher`);
a loop of ``delay()`` calls went from ~4,100 to ~9,600 sends/s on Redis, from ~4,800 to ~16,000 on SQLite
(bench/README.md, "Producer").

"Needs nothing from the loop" means: the portal loop's transport is connected and the queue already declared
(the first send to a queue goes through the loop and does both), the default exchange routes the message, and
no step of its own surrounds the publish (`Sender.has_per_message_steps`). Everything else is the same code as
the loop's path (`Sender.shaped`, else `Sender.build` and `Sender.encode`; `Sender._route`), with the same
result. The result backend is
told about the task (`Sender._expect_result`) on the portal loop without waiting for it, which is all the loop's
path does too: it never waits for the backend's answer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from celeriac._portal import portal
from celeriac.app.options import SendOptions
from celeriac.app.result import AsyncResult
from celeriac.app.sending import add_to_parent
from celeriac.errors import TransportClosed
from celeriac.transports.base import BlockingPublisher, Transport

if TYPE_CHECKING:
    from celeriac.app.sending import Sender
    from celeriac.app.task import Task


class DirectSends:
    """The direct path of one app's sync sends (see the module docstring); a publisher per thread."""

    def __init__(self, sender: Sender) -> None:
        self._sender = sender
        self._local = threading.local()  # .transport, .publisher: this thread's publisher and what made it
        self._expecting: set[asyncio.Task[None]] = set()  # on the portal loop: kept until done

    def send_blocking(
        self,
        name: str,
        args: tuple[Any, ...] | list[Any],
        kwargs: Mapping[str, Any] | None,
        task: Task[Any, Any] | None,
        options: SendOptions,
    ) -> AsyncResult[Any]:
        """The sync facades' send: from this thread when it can (`send`), else on the portal loop."""
        sent = self.send(name, args, kwargs, task, options)
        if sent is not None:
            return sent
        return portal.run(self._sender.send(name, args, kwargs, task, options))

    def send(
        self,
        name: str,
        args: tuple[Any, ...] | list[Any],
        kwargs: Mapping[str, Any] | None,
        task: Task[Any, Any] | None,
        options: SendOptions,
    ) -> AsyncResult[Any] | None:
        """Send ``name`` from this thread; returns once the broker has it. None (nothing sent) when this send
        needs the loop's path (`Sender.send` through the portal), which the caller then takes."""
        sender = self._sender
        app = sender.app
        loop = portal.running_loop()
        producer = app._resources.connected_producer(loop) if loop is not None else None
        if loop is None or producer is None or sender.has_per_message_steps():
            return None
        transport = producer.transport
        app.finalize()
        if transport.has_delayed_delivery and (options.get("eta") or options.get("countdown")):
            return None  # the loop's publish hands the ETA to the broker
        task = task or app.tasks.get(name)
        queue, exchange, routing_key, bound = sender._route(name, task, options)
        if exchange or bound or not producer.declared(queue):
            return None
        publisher = self._publisher(transport)
        if publisher is None:
            return None
        wire = sender.shaped(name, args, kwargs, task, options)
        if wire is None:
            wire = sender.encode(sender.build(name, args, kwargs, task, options), task, options)
        task_id: str = wire.headers["id"]
        if not wire.headers["ignore_result"] and sender._subscribes_on_send():
            loop.call_soon_threadsafe(self._expect, task_id)
        try:
            publisher.publish(wire, routing_key)
        except TransportClosed:
            return None  # the app closed its connections meanwhile: the loop's path opens new ones
        if options.get("add_to_parent", True):
            add_to_parent(task_id)
        return AsyncResult(task_id, app=app)

    def _publisher(self, transport: Transport) -> BlockingPublisher | None:
        local = self._local
        if getattr(local, "transport", None) is not transport:
            try:
                local.publisher = transport.blocking_publisher()
            except TransportClosed:
                return None
            local.transport = transport
        publisher: BlockingPublisher | None = local.publisher
        return publisher

    def _expect(self, task_id: str) -> None:
        """On the portal loop: tell its result backend about ``task_id`` (as `Sender.send` does)."""
        expecting = asyncio.get_running_loop().create_task(self._sender._expect_result(task_id))
        self._expecting.add(expecting)
        expecting.add_done_callback(self._expecting.discard)

"""``task_send_sent_event``: the ``task-sent`` event a client publishes after each send, as Celery's does.

Monitors (Flower, ``celery events``, `celeriac.events.cluster`) then know a task is PENDING before any worker
received it. The event goes straight to the ``celeryev`` fanout once the message is on the broker; a failure
to publish it is logged, never raised (the task itself was sent).
"""

from __future__ import annotations

import logging
import os
import time
from reprlib import Repr
from typing import Any

from celeriac.errors import TransportError
from celeriac.events.dispatcher import event_message
from celeriac.events.model import EXCHANGE, TASK_SENT, routing_key_of, utcoffset
from celeriac.protocol.clock import LamportClock
from celeriac.protocol.message import TaskMessage
from celeriac.transports.base import Transport

log = logging.getLogger("celeriac.app")

_short = Repr()  # args/kwargs travel as a bounded repr, as Celery's saferepr
_short.maxstring = _short.maxother = 1024


class SentEvents:
    """Publishes ``task-sent`` for the messages one app sends (one Lamport clock for the process)."""

    def __init__(self) -> None:
        self.clock = LamportClock()

    def event(self, hostname: str, message: TaskMessage, queue: str, exchange: str, key: str) -> dict[str, Any]:
        """The ``task-sent`` event of ``message`` sent by ``hostname`` (Celery's fields)."""
        return {
            "hostname": hostname,
            "utcoffset": utcoffset(),
            "pid": os.getpid(),
            "clock": self.clock.forward(),
            "uuid": message.id,
            "root_id": message.root_id,
            "parent_id": message.parent_id,
            "name": message.task,
            "args": _short.repr(tuple(message.args)),
            "kwargs": _short.repr(dict(message.kwargs)),
            "retries": message.retries,
            "eta": message.eta.isoformat() if message.eta else None,
            "expires": message.expires.isoformat() if message.expires else None,
            "queue": queue,
            "exchange": exchange,
            "routing_key": key,
            "timestamp": time.time(),
            "type": TASK_SENT,
        }

    async def publish(
        self, transport: Transport, hostname: str, message: TaskMessage, queue: str, exchange: str, key: str
    ) -> None:
        """Publish the event of ``message``; a broker error is logged (the task itself is on the broker)."""
        event = self.event(hostname, message, queue, exchange, key)
        try:
            await transport.fanout(f"{EXCHANGE}/{routing_key_of(TASK_SENT)}", event_message(event, hostname))
        except (TransportError, OSError) as exc:
            log.warning("task-sent event of %s not published: %s", message.id, exc)

"""What celeriac declares on RabbitMQ, exactly as Celery 5.7 does (celery-wire.md §3.1-§3.4); pure, no I/O.

Every exchange and queue name maps to one `ExchangeSpec` / `QueueSpec`: task queues (durable, bound to a
direct exchange of their own name), the pidbox and reply queues (``*.pidbox``), event subscriber queues
(``<event_queue_prefix>.<uuid>``), the 28 ``celery_delayed_*`` levels of native delayed delivery, and the
``<queue>.dead`` queue that takes what a quorum queue's delivery limit gives up on.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from celeriac.transports.amqp.options import AMQPOptions

DELAY_BITS = 28
DELAYED_LEVELS = DELAY_BITS - 1
DELAYED_DELIVERY = "celery_delayed_delivery"
PIDBOX = ".pidbox"
REPLY = "reply."
DEAD = ".dead"
_DELAY_PREFIX = re.compile(rf"^(?:[01]\.){{{DELAY_BITS}}}")


@dataclass(frozen=True, slots=True)
class ExchangeSpec:
    """One exchange's attributes (a redeclaration with others closes the channel)."""

    name: str
    type: str
    durable: bool = True
    auto_delete: bool = False


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """One queue's attributes and arguments."""

    name: str
    durable: bool = True
    auto_delete: bool = False
    exclusive: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)

    def key(self) -> tuple[Any, ...]:
        """What makes two declarations the same (for the per-connection cache)."""
        return (self.name, self.durable, self.auto_delete, self.exclusive, sorted(self.arguments.items()))


def delayed_level(level: int) -> str:
    """The name of one native-delayed-delivery level (exchange and queue alike)."""
    return f"celery_delayed_{level}"


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


def _expiring(expires: float | None, ttl: float | None) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    if (value := _ms(expires)) is not None:
        arguments["x-expires"] = value
    if (value := _ms(ttl)) is not None:
        arguments["x-message-ttl"] = value
    return arguments


class Topology:
    """The attributes of every entity, from the transport's `AMQPOptions`."""

    def __init__(self, options: AMQPOptions) -> None:
        self.options = options

    def is_control(self, name: str) -> bool:
        """A pidbox node queue or a reply queue (``*.pidbox``)."""
        return name.endswith(PIDBOX)

    def is_event(self, name: str) -> bool:
        """An event subscriber queue (``celeryev.<uuid>``)."""
        return name.startswith(self.options.event_prefix + ".")

    def is_delayed(self, name: str) -> bool:
        """A native-delayed-delivery level."""
        return name.startswith("celery_delayed_")

    def exchange(self, name: str) -> ExchangeSpec:
        """The attributes of exchange ``name``: pidbox exchanges are not durable (§3.1), a task queue's exchange
        has ``task_default_exchange_type``."""
        if name.endswith(PIDBOX):
            return ExchangeSpec(name, "direct" if name.startswith(REPLY) else "fanout", durable=False)
        if self.is_delayed(name):
            return ExchangeSpec(name, "topic")
        return ExchangeSpec(name, self.options.exchange_type)

    def broadcast_exchange(self, name: str, topic: bool) -> ExchangeSpec:
        """The exchange of a broadcast channel: ``exch/key`` is a durable topic exchange (``celeryev``); a bare
        name a fanout one (non-durable, like ``celery.pidbox``)."""
        if topic:
            return ExchangeSpec(name, "topic")
        return self.exchange(name) if name.endswith(PIDBOX) else ExchangeSpec(name, "fanout", durable=False)

    def queue(self, name: str) -> QueueSpec:
        """The attributes of queue ``name`` (a task queue unless its name says otherwise)."""
        options = self.options
        if self.is_control(name):
            return QueueSpec(
                name,
                durable=False,
                auto_delete=True,
                exclusive=options.control_exclusive,
                arguments=_expiring(options.control_expires, options.control_ttl),
            )
        if self.is_event(name):
            return QueueSpec(
                name,
                durable=False,
                auto_delete=True,
                exclusive=options.event_exclusive,
                arguments=_expiring(options.event_expires, options.event_ttl),
            )
        if name.endswith(DEAD):
            return QueueSpec(name)
        given = dict(options.queue_arguments.get(name) or {})
        arguments: dict[str, Any] = {}
        if given.get("x-queue-type", options.queue_type) == "quorum":
            arguments["x-queue-type"] = "quorum"
            if options.delivery_limit > 0:
                arguments["x-delivery-limit"] = options.delivery_limit
                arguments["x-dead-letter-exchange"] = ""
                arguments["x-dead-letter-routing-key"] = name + DEAD
        elif options.max_priority is not None:
            arguments["x-max-priority"] = options.max_priority
        arguments.update(given)  # a task_queues declaration's own arguments win
        return QueueSpec(name, arguments=arguments)

    def subscriber_queue(self, name: str) -> QueueSpec:
        """A broadcast subscriber's own queue: pidbox attributes for ``*.pidbox``, else event attributes."""
        options = self.options
        if self.is_control(name):
            return self.queue(name)
        return QueueSpec(
            name,
            durable=False,
            auto_delete=True,
            exclusive=options.event_exclusive,
            arguments=_expiring(options.event_expires, options.event_ttl),
        )

    def dead_letter_queue(self, name: str) -> str | None:
        """The ``<queue>.dead`` queue to declare along with task queue ``name``, if it has one."""
        spec = self.queue(name)
        return spec.arguments.get("x-dead-letter-routing-key")

    # -- native delayed delivery (§3.4) ------------------------------------------------------------------

    @property
    def delays_natively(self) -> bool:
        """Whether a not_before publish goes through the delayed levels: quorum detected and a task exchange
        type that is not direct (Celery warns and holds the ETA in the worker for a direct exchange)."""
        return self.options.quorum and self.options.exchange_type != "direct"

    def delayed_queues(self) -> list[QueueSpec]:
        """The 28 level queues, level 27 first (kombu's arguments)."""
        specs = []
        for level in range(DELAYED_LEVELS, -1, -1):
            arguments: dict[str, Any] = {
                "x-queue-type": self.options.delayed_queue_type,
                "x-overflow": "reject-publish",
                "x-message-ttl": 2**level * 1000,
                "x-dead-letter-exchange": delayed_level(level - 1) if level > 0 else DELAYED_DELIVERY,
            }
            if self.options.delayed_queue_type == "quorum":
                arguments["x-dead-letter-strategy"] = "at-least-once"
            specs.append(QueueSpec(delayed_level(level), arguments=arguments))
        return specs

    @staticmethod
    def delayed_bindings() -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
        """``(queue bindings, exchange-to-exchange bindings)`` as ``(destination, source, routing key)``."""
        queues = []
        key = "1.#"
        for level in range(DELAYED_LEVELS, -1, -1):
            queues.append((delayed_level(level), delayed_level(level), key))
            key = "*." + key
        exchanges = []
        key = "0.#"
        for level in range(DELAYED_LEVELS, 0, -1):
            exchanges.append((delayed_level(level - 1), delayed_level(level), key))
            key = "*." + key
        exchanges.append((DELAYED_DELIVERY, delayed_level(0), key))
        return queues, exchanges

    @staticmethod
    def delayed_routing_key(delay: float, routing_key: str) -> str:
        """The binary routing key of a message delayed ``delay`` seconds (rounded up, so never early)."""
        seconds = min(max(1, math.ceil(delay)), 2**DELAY_BITS - 1)
        routing_key = _DELAY_PREFIX.sub("", routing_key, count=1)
        return ".".join(f"{seconds:0{DELAY_BITS}b}") + f".{routing_key}"

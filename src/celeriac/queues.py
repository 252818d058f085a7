"""`Queue` and `Exchange`: the queue declarations of ``task_queues``, read with kombu's argument names.

``task_queues = [Queue("default"), Queue("videos", Exchange("media"), routing_key="media.video")]`` says which
queues a worker consumes when ``-Q`` is not given (all of them), and how a task sent to one of them is routed:
through its exchange with its routing key (the binding is made in the broker, so Celery clients and workers
sharing it see the same), or, for a queue without an exchange, straight to the queue. On RabbitMQ a queue's
``queue_arguments`` / ``max_priority`` are declared with it. Exchanges are direct (a binding matches one routing key
exactly). Any other kombu argument is refused by name (a ``TypeError``), never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from celeriac.errors import ConfigurationError

EXCHANGE_TYPES = ("direct",)
# RabbitMQ queue arguments celeriac declares as given (the others would change how it delivers, unseen by it).
QUEUE_ARGUMENTS = frozenset(
    {"x-max-priority", "x-queue-type", "x-message-ttl", "x-expires", "x-max-length", "x-max-length-bytes",
     "x-overflow", "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-delivery-limit", "x-queue-mode"}
)  # fmt: skip


@dataclass(frozen=True)
class Exchange:
    """A direct exchange by name (kombu's ``Exchange(name, type="direct")``); ``durable`` must stay True."""

    name: str = ""
    type: str = "direct"
    durable: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ConfigurationError(f"Exchange name must be a string, not {self.name!r}")
        if self.type not in EXCHANGE_TYPES:
            raise ConfigurationError(
                f"Exchange({self.name!r}, type={self.type!r}): task_queues exchanges are direct "
                "(topic and fanout routing of task queues is not supported)"
            )
        if self.durable is not True:
            raise ConfigurationError(f"Exchange({self.name!r}): non-durable exchanges are not supported")


@dataclass(frozen=True)
class Queue:
    """A task queue: ``Queue(name, exchange=None, routing_key=None, queue_arguments=None, max_priority=None)``.

    ``exchange`` is an `Exchange` or its name; without one (or with ``""``) the queue is reached by its own name.
    ``routing_key`` defaults to the queue's name. ``max_priority`` is ``x-max-priority``.
    """

    name: str
    exchange: Exchange | str | None = None
    routing_key: str | None = None
    queue_arguments: Mapping[str, Any] | None = None
    max_priority: int | None = None
    durable: bool = True
    exclusive: bool = False
    auto_delete: bool = False
    arguments: dict[str, Any] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigurationError(f"Queue name must be a non-empty string, not {self.name!r}")
        if isinstance(self.exchange, str):
            object.__setattr__(self, "exchange", Exchange(self.exchange))
        elif self.exchange is not None and not isinstance(self.exchange, Exchange):
            raise ConfigurationError(f"Queue({self.name!r}): exchange must be an Exchange or a name")
        if (self.durable, self.exclusive, self.auto_delete) != (True, False, False):
            raise ConfigurationError(f"Queue({self.name!r}): task queues are durable, not exclusive, not auto-deleted")
        arguments = dict(self.queue_arguments or {})
        unknown = sorted(set(arguments) - QUEUE_ARGUMENTS)
        if unknown:
            raise ConfigurationError(
                f"Queue({self.name!r}): queue_arguments {', '.join(map(repr, unknown))} not supported "
                f"(supported: {', '.join(sorted(QUEUE_ARGUMENTS))})"
            )
        if self.max_priority is not None:
            if type(self.max_priority) is not int or not 1 <= self.max_priority <= 255:
                raise ConfigurationError(f"Queue({self.name!r}): max_priority must be 1-255, not {self.max_priority!r}")
            arguments["x-max-priority"] = self.max_priority
        object.__setattr__(self, "arguments", arguments)

    @property
    def exchange_name(self) -> str:
        """The exchange's name ("" for none: the queue is reached by its own name)."""
        return self.exchange.name if isinstance(self.exchange, Exchange) else ""

    @property
    def key(self) -> str:
        """The routing key of its binding (the queue's name unless given)."""
        return self.routing_key or self.name

    @property
    def bound(self) -> bool:
        """Whether messages reach it through a named exchange (a binding) rather than by its name."""
        return bool(self.exchange_name)


def queue_table(value: object) -> dict[str, Queue]:
    """``task_queues`` by queue name; a one-line error for anything but `Queue` objects or a repeated name."""
    if value is None:
        return {}
    items = list(value.values()) if isinstance(value, Mapping) else value
    if not isinstance(items, list | tuple):
        raise ConfigurationError("setting 'task_queues' must be a list of Queue(...)")
    table: dict[str, Queue] = {}
    for item in items:
        if not isinstance(item, Queue):
            raise ConfigurationError(f"setting 'task_queues' holds Queue(...) declarations, not {item!r}")
        if item.name in table:
            raise ConfigurationError(f"setting 'task_queues' declares queue {item.name!r} twice")
        table[item.name] = item
    return table


def queue_arguments(queues: Mapping[str, Queue], rabbitmq: bool) -> dict[str, dict[str, Any]]:
    """The arguments each declared queue is declared with; on Redis and SQLite, where only priorities exist
    (always on), any other argument is a one-line error rather than dropped unseen."""
    arguments = {name: dict(q.arguments) for name, q in queues.items() if q.arguments}
    for name, given in arguments.items():
        other = sorted(set(given) - {"x-max-priority"})
        if other and not rabbitmq:
            raise ConfigurationError(
                f"task_queues: Queue({name!r}) queue_arguments {', '.join(map(repr, other))} apply to RabbitMQ only"
            )
    return arguments


__all__ = ["Exchange", "Queue", "queue_arguments", "queue_table"]

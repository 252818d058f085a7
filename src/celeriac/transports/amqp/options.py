"""The AMQP transport's settings, read once from `TransportOptions` (``broker_settings`` and
``broker_transport_options``); no I/O. Unknown ``broker_transport_options`` keys and bad values are refused."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from celeriac.errors import ConfigurationError
from celeriac.settings.amqp import AMQPSettings
from celeriac.transports.base import TransportOptions

TRANSPORT_OPTIONS = frozenset({"confirm_publish", "max_retries", "interval_start", "interval_step", "interval_max"})
"""The ``broker_transport_options`` keys the AMQP transport reads (kombu's names)."""

QUEUE_TYPES = ("classic", "quorum")
EXCHANGE_TYPES = ("direct", "topic", "fanout")


@dataclass(frozen=True, slots=True)
class AMQPOptions:
    """Everything the AMQP transport needs to know besides the URL.

    Attributes:
        heartbeat: AMQP heartbeat in seconds (0: off).
        use_ssl: ``broker_use_ssl``.
        connect_timeout: seconds one connection may take to open.
        queue_type: ``classic`` or ``quorum`` for task queues.
        exchange_type: the type of each task queue's own exchange.
        max_priority: ``x-max-priority`` of task queues (None: no priorities).
        delivery_limit: quorum ``x-delivery-limit`` before a message goes to ``<queue>.dead`` (0: off).
        detect_quorum: quorum task queues turn global QoS off and native delayed delivery on.
        delayed_queue_type: the type of the ``celery_delayed_*`` queues.
        control_expires / control_ttl / control_exclusive: the pidbox queues' attributes (seconds).
        event_expires / event_ttl / event_exclusive / event_prefix: the event subscriber queues' attributes.
        retry_intervals: pauses (seconds) before each reconnect attempt of a publishing link.
        queue_arguments: arguments of named task queues (``task_queues``); a given ``x-queue-type`` decides
            that queue's type.
    """

    heartbeat: float = 120.0
    use_ssl: bool | Mapping[str, Any] = False
    connect_timeout: float = 4.0
    queue_type: str = "classic"
    exchange_type: str = "direct"
    max_priority: int | None = None
    delivery_limit: int = 10
    detect_quorum: bool = True
    delayed_queue_type: str = "quorum"
    control_expires: float | None = 10.0
    control_ttl: float | None = 300.0
    control_exclusive: bool = True
    event_expires: float | None = 60.0
    event_ttl: float | None = 5.0
    event_exclusive: bool = True
    event_prefix: str = "celeryev"
    retry_intervals: tuple[float, ...] = (0.0, 0.2, 0.4, 0.8)
    queue_arguments: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def quorum(self) -> bool:
        """Whether task queues are quorum queues that Celery would detect (global QoS off, delayed delivery on)."""
        return self.queue_type == "quorum" and self.detect_quorum

    @classmethod
    def from_options(cls, options: TransportOptions) -> AMQPOptions:
        """Read and check ``options``.

        Raises:
            ConfigurationError: an unknown ``broker_transport_options`` key or a bad value (one line naming it).
        """
        for key in options.extra:
            if key not in TRANSPORT_OPTIONS:
                close = difflib.get_close_matches(key, TRANSPORT_OPTIONS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(sorted(TRANSPORT_OPTIONS))})"
                raise ConfigurationError(f"unknown broker_transport_options key {key!r} for RabbitMQ{hint}")
        if options.extra.get("confirm_publish", True) is not True:
            raise ConfigurationError("confirm_publish cannot be turned off: every publish waits for its confirm")
        given = options.broker_settings

        def setting(name: str) -> Any:
            return given[name] if name in given else getattr(AMQPSettings, name).default

        queue_type = _choice("task_default_queue_type", setting("task_default_queue_type"), QUEUE_TYPES)
        if queue_type == "quorum" and setting("task_queue_max_priority") is not None:
            raise ConfigurationError("task_queue_max_priority needs classic queues: quorum queues have no priorities")
        limit = setting("task_queue_delivery_limit")
        start = float(options.extra.get("interval_start", 0.0))
        step = float(options.extra.get("interval_step", 0.2))
        most = float(options.extra.get("interval_max", 1.0))
        retries = int(options.extra.get("max_retries", 3))
        return cls(
            heartbeat=float(setting("broker_heartbeat") or 0.0),
            use_ssl=setting("broker_use_ssl"),
            connect_timeout=float(setting("broker_connection_timeout")),
            queue_type=queue_type,
            exchange_type=_choice("task_default_exchange_type", setting("task_default_exchange_type"), EXCHANGE_TYPES),
            max_priority=setting("task_queue_max_priority"),
            delivery_limit=int(options.max_deliveries if limit is None else limit),
            detect_quorum=bool(setting("worker_detect_quorum_queues")),
            delayed_queue_type=_choice(
                "broker_native_delayed_delivery_queue_type",
                setting("broker_native_delayed_delivery_queue_type"),
                QUEUE_TYPES,
            ),
            control_expires=setting("control_queue_expires"),
            control_ttl=setting("control_queue_ttl"),
            control_exclusive=bool(setting("control_queue_exclusive")),
            event_expires=setting("event_queue_expires"),
            event_ttl=setting("event_queue_ttl"),
            event_exclusive=bool(setting("event_queue_exclusive")),
            event_prefix=str(setting("event_queue_prefix")),
            retry_intervals=tuple(min(start + step * i, most) for i in range(retries + 1)),
            queue_arguments={name: dict(arguments) for name, arguments in options.queue_arguments.items()},
        )


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigurationError(f"setting {name!r} must be one of {', '.join(allowed)}, not {value!r}")
    return str(value)

"""Settings: RabbitMQ (AMQP 0-9-1) only, with Celery's names and defaults (``celery/app/defaults.py``).

The AMQP transport reads them from `TransportOptions.broker_settings`; other brokers do not look at them.
"""

from __future__ import annotations

from typing import Any

from celeriac.settings.setting import NUM, OPT_NUM, Setting, SettingsBase

_OPT_INT = (int, type(None))


class AMQPSettings(SettingsBase):
    """How celeriac talks to RabbitMQ: heartbeats, TLS, queue types, priorities, control and event queues."""

    __slots__ = ()

    broker_heartbeat = Setting[float | None](120.0, OPT_NUM, "AMQP heartbeat in seconds (0 or None: off)")
    broker_use_ssl = Setting[bool | dict[str, Any]](False, (bool, dict), "True or kombu's TLS dict (amqp://)")
    broker_connection_timeout = Setting[float](4.0, NUM, "seconds to open one connection")
    task_default_queue_type = Setting[str]("classic", (str,), "classic or quorum: the type of task queues")
    task_default_exchange_type = Setting[str]("direct", (str,), "direct, topic or fanout: task queues' exchange")
    task_queue_max_priority = Setting[int | None](None, _OPT_INT, "x-max-priority of task queues (classic)")
    task_queue_delivery_limit = Setting[int | None](
        None, _OPT_INT, "quorum x-delivery-limit, then <queue>.dead (None: broker_max_deliveries; 0: off)"
    )
    worker_detect_quorum_queues = Setting[bool](True, (bool,), "quorum queues turn global QoS off, delayed on")
    broker_native_delayed_delivery_queue_type = Setting[str]("quorum", (str,), "classic or quorum")
    control_queue_expires = Setting[float | None](10.0, OPT_NUM, "x-expires of pidbox queues (seconds)")
    control_queue_ttl = Setting[float | None](300.0, OPT_NUM, "x-message-ttl of pidbox queues (seconds)")
    control_queue_exclusive = Setting[bool](True, (bool,), "pidbox queues exclusive (Celery 5.7)")
    event_queue_expires = Setting[float | None](60.0, OPT_NUM, "x-expires of celeryev.* queues (seconds)")
    event_queue_ttl = Setting[float | None](5.0, OPT_NUM, "x-message-ttl of celeryev.* queues (seconds)")
    event_queue_exclusive = Setting[bool](True, (bool,), "celeryev.* queues exclusive (Celery 5.7)")
    event_queue_prefix = Setting[str]("celeryev", (str,), "name prefix of event subscriber queues")


AMQP_SETTING_NAMES: tuple[str, ...] = tuple(
    name for name, value in vars(AMQPSettings).items() if isinstance(value, Setting)
)
"""Every setting of this group, in declaration order (what `App.transport_options` hands the transport)."""

__all__ = ["AMQP_SETTING_NAMES", "AMQPSettings"]

"""The app's settings as the typed options of the transport and backend layers (which never read settings)."""

from __future__ import annotations

from celeriac.backends.base import BackendOptions
from celeriac.queues import queue_arguments, queue_table
from celeriac.settings import Settings
from celeriac.settings.amqp import AMQP_SETTING_NAMES
from celeriac.transports import is_amqp
from celeriac.transports.base import TransportOptions


def transport_options(conf: Settings, broker_url: str) -> TransportOptions:
    """``broker_transport_options`` (and the AMQP settings, the ``task_queues`` arguments) for the transport."""
    extra = dict(conf.broker_transport_options)
    return TransportOptions(
        visibility_timeout=float(extra.pop("visibility_timeout", 3600.0)),
        polling_interval=float(extra.pop("polling_interval", 0.05)),
        max_deliveries=int(extra.pop("max_deliveries", conf.broker_max_deliveries)),
        extra=extra,
        broker_settings={name: conf[name] for name in AMQP_SETTING_NAMES},
        queue_arguments=queue_arguments(queue_table(conf.task_queues), is_amqp(broker_url)),
    )


def backend_options(conf: Settings, broker_url: str) -> BackendOptions:
    """The result settings for the result backend."""
    expires = conf.result_expires
    return BackendOptions(
        serializer=conf.result_serializer,
        accept=tuple(conf.result_accept_content or conf.accept_content),
        expires=float(expires) if expires else None,
        extra=dict(conf.result_backend_transport_options),
        unread_limit=conf.result_subscribe_max_unread,
        broker_url=broker_url,
        broker_use_ssl=conf.broker_use_ssl,
        broker_heartbeat=conf.broker_heartbeat,
        broker_connection_timeout=conf.broker_connection_timeout,
    )

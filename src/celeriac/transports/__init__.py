"""Broker URL -> transport: one scheme table whose entries import their module only when used.

``from_url("sqlite://")`` works with no extras installed; ``redis://`` imports its client library only when
such a URL is used, and a missing library is a one-line `ConfigurationError`; so do ``amqp://``, ``amqps://`` and
``pyamqp://`` (RabbitMQ: the ``amqp`` extra).
"""

from __future__ import annotations

from celeriac._schemes import SchemeEntry, redact_url, scheme_of
from celeriac.transports.base import Transport, TransportOptions

_SQLITE = SchemeEntry("celeriac.transports.sqlite.transport", "SQLiteTransport")
_REDIS = SchemeEntry("celeriac.transports.redis.transport", "RedisTransport", extra="redis")
_AMQP = SchemeEntry("celeriac.transports.amqp.transport", "AMQPTransport", extra="amqp")

SCHEMES: dict[str, SchemeEntry] = {
    "sqlite": _SQLITE,
    "redis": _REDIS,
    "rediss": _REDIS,
    "redis+socket": _REDIS,
    "amqp": _AMQP,
    "amqps": _AMQP,
    "pyamqp": _AMQP,
}


def is_amqp(url: str) -> bool:
    """Whether ``url`` names a RabbitMQ broker."""
    return SCHEMES.get(url.partition("://")[0].lower()) is _AMQP


def from_url(url: str, options: TransportOptions | None = None) -> Transport:
    """A new, unconnected transport for the broker ``url`` names.

    Raises:
        ConfigurationError: unknown scheme (``unknown broker scheme 'X'; did you mean 'Y'?``), a client
            library that is not installed, or a URL the transport cannot use.
    """
    scheme = scheme_of(url, SCHEMES, "broker")
    make = SCHEMES[scheme].load(scheme, Transport)
    transport: Transport = make(url, options or TransportOptions())
    return transport


__all__ = ["SCHEMES", "SchemeEntry", "from_url", "is_amqp", "redact_url", "scheme_of"]

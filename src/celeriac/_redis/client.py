"""Making redis-py clients and connections for a Redis URL and the connection options of a transport or backend.

A command that finds its connection broken (killed while idle, server restarted) is sent once more on a
fresh connection; if that fails too, the caller gets `ConnectionLost`. Nothing else is retried. The price of
the one retry: a command whose *reply* was lost may have run twice (an LPUSH publishes a duplicate, which
at-least-once delivery allows; a fetch script's first batch waits in ``unacked`` for the visibility timeout).
"""

from __future__ import annotations

import os
import socket
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
import redis.exceptions as redis_exc
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from celeriac._redis import compat, heartbeat
from celeriac._redis.urls import redact, redis_py_url
from celeriac._sockets import keepalive_options
from celeriac.errors import ConfigurationError

CLIENT_OPTIONS = frozenset(
    {
        "client_name",
        "socket_connect_timeout",
        "socket_timeout",
        "socket_keepalive",
        "max_connections",
        "health_check_interval",
        "pubsub_ping_interval",
        "ssl",
    }
)
"""The options `make_client` reads (and any ``ssl_*`` key): every user of it accepts these names."""

_NUMBERS = ("socket_connect_timeout", "socket_timeout", "health_check_interval", "pubsub_ping_interval")


class Client(aioredis.Redis):
    """A redis-py client that also knows the ping interval of the pub/sub connections made from it."""

    pubsub_ping_interval: float = heartbeat.DEFAULT_INTERVAL


def client_name(options: dict[str, Any]) -> str:
    """The ``CLIENT SETNAME`` of our connections: the ``client_name`` option, else ``celeriac-<host>-<pid>``."""
    name = options.get("client_name")
    if name:
        return str(name)
    host = "".join(c if c.isalnum() or c in "-_." else "_" for c in socket.gethostname())
    return f"celeriac-{host}-{os.getpid()}"


def check_options(options: dict[str, Any], what: str) -> None:
    """Raise `ConfigurationError` naming the first of the `CLIENT_OPTIONS` in ``options`` with an unusable value.

    ``what`` names the options in the message (``broker transport option``).
    """
    for name in _NUMBERS:
        value = options.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
            raise ConfigurationError(f"{what} {name!r} must be a number >= 0, not {value!r}")
    limit = options.get("max_connections")
    if limit:
        try:
            int(limit)
        except (TypeError, ValueError):
            raise ConfigurationError(f"{what} 'max_connections' must be a whole number, not {limit!r}") from None


def make_client(
    url: str, options: dict[str, Any], *, socket_timeout: float | None = None, retries: int = 1
) -> aioredis.Redis:
    """A client with its own connection pool for ``url``, which sends a command ``retries`` more times when its
    connection turns out broken. No I/O.

    ``options`` are transport options; used here: ``client_name``, ``socket_connect_timeout`` (default 10 s),
    ``socket_timeout`` (default 30 s, overridden by the argument), ``socket_keepalive`` (default on, with the
    short intervals of `KEEPALIVE` on TCP), ``max_connections``, ``pubsub_ping_interval`` (`raw_connection`;
    default 10 s, 0: no pings), and any ``ssl_*`` key (as Celery's ``broker_use_ssl``/``redis_backend_use_ssl``).

    Raises:
        ConfigurationError: not a Redis URL, an unknown or malformed URL option (`celeriac._redis.urls`), an
            option above with an unusable value, or a parameter redis-py refuses.
    """
    target, kwargs = connection_kwargs(url, options, socket_timeout)
    kwargs["retry"] = Retry(NoBackoff(), retries, supported_errors=(redis_exc.ConnectionError,))
    if options.get("max_connections"):
        kwargs["max_connections"] = int(options["max_connections"])
    try:
        client = Client.from_url(target, **kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"bad Redis URL {redact(url)!r}: {exc}") from exc
    assert isinstance(client, Client)  # from_url builds its own class; redis-py types it as Redis
    pool = client.connection_pool
    pool.connection_class = compat.connection_class(pool.connection_class)  # the class redis-py chose for the URL
    client.pubsub_ping_interval = float(options.get("pubsub_ping_interval", heartbeat.DEFAULT_INTERVAL))
    return client


def connection_kwargs(
    url: str, options: dict[str, Any], socket_timeout: float | None = None
) -> tuple[str, dict[str, Any]]:
    """``(redis-py URL, connection keyword arguments)`` for ``url`` and the transport ``options`` (see
    `make_client`; without the retry policy and pool size, which differ between users). No I/O.

    Raises:
        ConfigurationError: as `make_client`.
    """
    target = redis_py_url(url)  # checks the URL
    check_options(options, "Redis option")
    scheme = urlsplit(url).scheme
    kwargs: dict[str, Any] = {
        "client_name": client_name(options),
        "socket_connect_timeout": options.get("socket_connect_timeout", 10.0),
        "socket_timeout": socket_timeout if socket_timeout is not None else options.get("socket_timeout", 30.0),
        "socket_keepalive": options.get("socket_keepalive", True),
        "health_check_interval": options.get("health_check_interval", 0),
        "protocol": compat.RESP_PROTOCOL,
    }
    if kwargs["socket_keepalive"] and scheme in ("redis", "rediss"):
        kwargs["socket_keepalive_options"] = keepalive_options()
    tls_keys = sorted(k for k in options if k == "ssl" or k.startswith("ssl_"))
    if tls_keys and scheme != "rediss":
        # TLS settings on a plain-TCP URL would be dropped: the connection would silently run unencrypted.
        raise ConfigurationError(f"Redis option {tls_keys[0]!r} needs a rediss:// URL, not {redact(url)!r}")
    if scheme == "rediss":
        ssl = options.get("ssl")
        tls = {**options, **(ssl if isinstance(ssl, dict) else {})}
        kwargs.update({k: v for k, v in tls.items() if k.startswith("ssl_")})
    return target, kwargs


def database(client: aioredis.Redis) -> int:
    """The database number the client selects (part of fanout channel names)."""
    return int(client.connection_pool.connection_kwargs.get("db", 0) or 0)


def raw_connection(client: aioredis.Redis) -> AbstractConnection:
    """A new pub/sub connection outside the pool, configured like the pool's but without a read timeout (pub/sub
    connections wait for messages indefinitely: TCP keepalive notices a dead peer, and the owner's
    `heartbeat.Heartbeat` a silent one, every ``pubsub_ping_interval``, read by `heartbeat.interval_of`). No I/O."""
    pool = client.connection_pool
    interval = client.pubsub_ping_interval if isinstance(client, Client) else heartbeat.DEFAULT_INTERVAL
    kwargs = {**pool.connection_kwargs, "socket_timeout": None, "health_check_interval": interval}
    connection: AbstractConnection = pool.connection_class(**kwargs)
    return connection


def dedicated_connection(client: aioredis.Redis) -> AbstractConnection:
    """A new connection outside the pool, configured exactly like the pool's (read timeout included). No I/O.

    For a caller that pipelines commands and reads their replies itself; it must ``disconnect()`` it when done.
    """
    pool = client.connection_pool
    connection: AbstractConnection = pool.connection_class(**pool.connection_kwargs)
    return connection

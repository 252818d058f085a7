"""The Redis transport's settings, read once from `TransportOptions` (``broker_transport_options``); no I/O.

kombu's option names are kept where kombu has the option (``visibility_timeout``, ``global_keyprefix``,
``priority_steps``, ``sep``, ``unacked_key``, ``unacked_index_key``, ``unacked_mutex_key``,
``unacked_mutex_expire``, ``unacked_restore_limit``, ``fanout_prefix``, ``fanout_patterns``); the others are
celeriac's and documented on `RedisSettings`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from celeriac._redis.client import CLIENT_OPTIONS, check_options
from celeriac.errors import ConfigurationError
from celeriac.transports.base import TransportOptions
from celeriac.transports.redis.keys import PRIORITY_STEPS, SEP, RedisKeys

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """How the Redis transport behaves.

    Attributes:
        keys: the key and channel names.
        visibility_timeout: seconds after which an un-acked delivery whose consumer stopped renewing it is
            restored to its queue.
        renew_interval: seconds between two renewals of a live consumer's in-flight deliveries
            (``renew_interval``; default a third of the visibility timeout).
        restore_interval: seconds between two looks for expired deliveries (``unacked_restore_interval``;
            default a quarter of the visibility timeout, at most 10 s).
        restore_limit: most deliveries restored per look (``unacked_restore_limit``; None: all).
        mutex_expire: seconds the restore lock lives if its holder dies (``unacked_mutex_expire``; 10, where
            kombu uses 300: the lock only saves work, since every restore is a conditional script; a sweep
            renews it every third of this while it runs, so a killed holder blocks restores for at most this).
        max_deliveries: deliveries after which a message is dead-lettered (0: never).
        counter_ttl: seconds a delivery counter lives without being touched (``delivery_counter_ttl``;
            default the larger of 7 days and ``visibility_timeout * (max_deliveries + 1)``).
        dead_letter_ttl: seconds a dead-letter list lives after its last push (``dead_letter_ttl``, 7 days).
        block_timeout: seconds one blocking wait for a message lasts before it is re-issued
            (``block_timeout``, 5 s).
        fetch_limit: most messages moved per fetch when prefetch is unlimited (``fetch_limit``, 256).
        ack_batch: most acks (or publishes) sent in one round trip (``ack_batch``, 1000).
        claim_ttl: seconds an idle consumer's claim key lives without being renewed (not an option: the larger
            of ``visibility_timeout``, 4 blocking waits and a minute, so a claim outlives any reply about it
            that its consumer can still use).
    """

    keys: RedisKeys
    visibility_timeout: float
    renew_interval: float
    restore_interval: float
    restore_limit: int | None
    mutex_expire: float
    max_deliveries: int
    counter_ttl: int
    dead_letter_ttl: int
    block_timeout: float
    fetch_limit: int
    ack_batch: int
    claim_ttl: float


OPTIONS = frozenset(
    {
        "visibility_timeout",
        "max_deliveries",
        "global_keyprefix",
        "sep",
        "priority_steps",
        "fanout_prefix",
        "fanout_patterns",
        "unacked_key",
        "unacked_index_key",
        "unacked_mutex_key",
        "unacked_mutex_expire",
        "unacked_restore_limit",
        "unacked_restore_interval",
        "renew_interval",
        "delivery_counter_ttl",
        "dead_letter_ttl",
        "block_timeout",
        "fetch_limit",
        "ack_batch",
        # connection options (`celeriac._redis.client`): client_name, socket_connect_timeout, socket_timeout,
        # socket_keepalive, max_connections, health_check_interval, ssl, and pubsub_ping_interval (seconds of
        # silence after which a pub/sub link is pinged; unanswered for as long again, it is replaced; 0: never)
        *CLIENT_OPTIONS,
    }
)
"""Every ``broker_transport_options`` key the Redis transport reads (and any ``ssl_*`` key, for ``rediss://``)."""


def check_names(extra: dict[str, Any]) -> None:
    """Raise `ConfigurationError` for a key of ``extra`` the Redis transport does not read, or a malformed
    connection option (the message names it; kombu options celeriac does not implement are refused too)."""
    for name in extra:
        if name in OPTIONS or name.startswith("ssl_"):
            continue
        close = difflib.get_close_matches(name, OPTIONS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigurationError(f"unknown broker transport option {name!r} for Redis{hint}")
    check_options(extra, "broker transport option")


def _number(extra: dict[str, Any], name: str, default: float, minimum: float = 0.0) -> float:
    value = extra.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"broker transport option {name!r} must be a number, not {value!r}") from exc
    if number < minimum:
        raise ConfigurationError(f"broker transport option {name!r} must be at least {minimum}, not {value!r}")
    return number


def _steps(value: Any) -> tuple[int, ...]:
    try:
        steps = tuple(int(step) for step in value)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"broker transport option 'priority_steps' is not a list of ints: {value!r}") from exc
    if not steps or any(step < 0 for step in steps):
        raise ConfigurationError(f"broker transport option 'priority_steps' must be non-negative ints: {value!r}")
    return steps


def settings_from(options: TransportOptions, db: int) -> RedisSettings:
    """Read `RedisSettings` from ``options`` for database ``db``.

    Raises:
        ConfigurationError: an unknown option, or one with a value of the wrong type or range (the message
            names it).
    """
    extra = options.extra
    check_names(extra)
    # kombu's own option wins over the generic field when both are given (a Celery config sets only the option).
    visibility = _number(extra, "visibility_timeout", options.visibility_timeout, minimum=0.001)
    max_deliveries = int(_number(extra, "max_deliveries", options.max_deliveries))
    fanout_prefix = extra.get("fanout_prefix", True)
    keys = RedisKeys(
        prefix=str(extra.get("global_keyprefix") or ""),
        db=db,
        sep=str(extra.get("sep", SEP)),
        priority_steps=_steps(extra.get("priority_steps", PRIORITY_STEPS)),
        fanout_prefix=fanout_prefix if isinstance(fanout_prefix, bool | str) else bool(fanout_prefix),
        fanout_patterns=bool(extra.get("fanout_patterns", True)),
        unacked_key=str(extra.get("unacked_key", "unacked")),
        unacked_index_key=str(extra.get("unacked_index_key", "unacked_index")),
        unacked_mutex_key=str(extra.get("unacked_mutex_key", "unacked_mutex")),
    )
    limit = extra.get("unacked_restore_limit")
    block_timeout = _number(extra, "block_timeout", 5.0, minimum=0.01)
    return RedisSettings(
        keys=keys,
        visibility_timeout=visibility,
        renew_interval=_number(extra, "renew_interval", visibility / 3, minimum=0.001),
        restore_interval=_number(extra, "unacked_restore_interval", min(visibility / 4, 10.0), minimum=0.001),
        restore_limit=int(limit) if limit else None,
        mutex_expire=_number(extra, "unacked_mutex_expire", 10.0, minimum=0.001),
        max_deliveries=max_deliveries,
        counter_ttl=int(_number(extra, "delivery_counter_ttl", max(7 * DAY, visibility * (max_deliveries + 1)), 1)),
        dead_letter_ttl=int(_number(extra, "dead_letter_ttl", 7 * DAY, minimum=1)),
        block_timeout=block_timeout,
        fetch_limit=int(_number(extra, "fetch_limit", 256, minimum=1)),
        ack_batch=int(_number(extra, "ack_batch", 1000, minimum=1)),
        claim_ttl=max(visibility, 4 * block_timeout, 60.0),
    )

"""TCP keepalive for every broker connection: a peer gone without a FIN or RST (a crashed host, a dropped NAT or
firewall entry) is noticed in ~25 s instead of the operating system's default of two hours, and the probes keep
such an entry alive. Redis connections (through redis-py's ``socket_keepalive_options``) and RabbitMQ connections
(`celeriac._amqp.wire.connection`, heartbeats or not) both use it."""

from __future__ import annotations

import socket
from typing import Any

KEEPALIVE = {"TCP_KEEPIDLE": 10, "TCP_KEEPALIVE": 10, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3}
"""The first probe after 10 s idle, then every 5 s, dead after 3 unanswered (25 s). ``TCP_KEEPALIVE`` is macOS's
name of the idle time."""


def keepalive_options() -> dict[int, int]:
    """`KEEPALIVE` as the ``IPPROTO_TCP`` socket options this platform has (redis-py's ``socket_keepalive_options``)."""
    options: dict[int, int] = {}
    for name, value in KEEPALIVE.items():
        number = getattr(socket, name, None)
        if isinstance(number, int) and not (name == "TCP_KEEPALIVE" and hasattr(socket, "TCP_KEEPIDLE")):
            options[number] = value
    return options


def enable_keepalive(sock: Any) -> None:
    """Turn `KEEPALIVE` on for a TCP socket (a `socket.socket`, or uvloop's pseudo-socket: anything with ``family``
    and ``setsockopt``); a Unix socket, or a platform that refuses an option, is left as is."""
    if getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in keepalive_options().items():
            sock.setsockopt(socket.IPPROTO_TCP, option, value)
    except OSError:  # pragma: no cover - a platform without these options keeps its defaults
        pass

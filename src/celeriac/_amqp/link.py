"""Opening one AMQP connection: heartbeat, timeout, TLS; failures as celeriac's `ConnectionLost` (no password)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import aiormq
import aiormq.abc
import aiormq.exceptions as amqp_exc

from celeriac._amqp.urls import AMQPAddress
from celeriac.errors import ConnectionLost

PRODUCT = "celeriac"


def aiormq_url(address: AMQPAddress, heartbeat: float | None) -> str:
    """The URL aiormq reads: its own scheme, the vhost quoted so a ``/`` in it survives, the heartbeat."""
    scheme = "amqps" if address.tls else "amqp"
    user = quote(address.userid, safe="")
    password = quote(address.password, safe="")
    vhost = "" if address.virtual_host == "/" else quote(address.virtual_host, safe="")
    beat = int(heartbeat) if heartbeat else 0
    host = f"[{address.host}]" if ":" in address.host else address.host
    return f"{scheme}://{user}:{password}@{host}:{address.port}/{vhost}?heartbeat={beat}"


async def open_connection(
    address: AMQPAddress, *, heartbeat: float | None, timeout: float, name: str | None = None
) -> aiormq.abc.AbstractConnection:
    """A connected aiormq connection to ``address``.

    ``heartbeat`` is the AMQP heartbeat in seconds (None or 0: off); ``timeout`` bounds the whole opening
    handshake (TCP, TLS, login, vhost). ``name`` shows in RabbitMQ's connection list.

    Raises:
        ConnectionLost: unreachable, refused login, unknown vhost or no permission, or too slow; the message
            names the redacted URL and the reason, never the password.
        ConfigurationError: a TLS option that cannot be used.
    """
    context = address.ssl_context()
    properties: dict[str, Any] = {"product": PRODUCT}
    if name:
        properties["connection_name"] = name
    connection = aiormq.Connection(aiormq_url(address, heartbeat), context=context, client_properties=properties)
    try:
        await asyncio.wait_for(connection.connect(), timeout)
    except TimeoutError as exc:
        await _abandon(connection)
        raise ConnectionLost(f"RabbitMQ at {address.url}: no connection within {timeout:g} s") from exc
    except (amqp_exc.ProbableAuthenticationError, amqp_exc.AuthenticationError) as exc:
        await _abandon(connection)
        raise ConnectionLost(
            f"RabbitMQ at {address.url}: login refused for user {address.userid!r} (wrong password, or the user "
            f"may not use virtual host {address.virtual_host!r})"
        ) from exc
    except (amqp_exc.ConnectionNotAllowed, amqp_exc.InvalidFrameError) as exc:  # a vhost refusal is Connection.Close
        await _abandon(connection)
        raise ConnectionLost(
            f"RabbitMQ at {address.url}: virtual host {address.virtual_host!r} does not exist or user "
            f"{address.userid!r} has no access to it"
        ) from exc
    except (amqp_exc.AMQPError, OSError, EOFError, ConnectionError) as exc:
        await _abandon(connection)
        reason = _reason(exc)
        raise ConnectionLost(f"RabbitMQ at {address.url}: cannot connect ({reason})") from exc
    return connection


def _reason(exc: BaseException) -> str:
    args = [arg for arg in exc.args if isinstance(arg, str)]
    return args[-1] if args else (str(exc) or type(exc).__name__)


async def _abandon(connection: aiormq.Connection) -> None:
    try:
        await asyncio.wait_for(connection.close(), 2.0)
    except Exception:  # a connection that never opened has nothing left worth reporting
        return

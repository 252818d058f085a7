"""Opening one AMQP connection: heartbeat, timeout, TLS; failures as celeriac's `ConnectionLost` (no password)."""

from __future__ import annotations

import asyncio
from typing import Any

from celeriac._amqp.urls import AMQPAddress
from celeriac._amqp.wire.connection import Connection, connect
from celeriac._amqp.wire.errors import AMQPError, LoginRefused, VhostRefused
from celeriac.errors import ConnectionLost

PRODUCT = "celeriac"


async def open_connection(
    address: AMQPAddress, *, heartbeat: float | None, timeout: float, name: str | None = None
) -> Connection:
    """A connected AMQP connection to ``address``.

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
    opening = connect(
        address.host,
        address.port,
        login=address.userid,
        password=address.password,
        vhost=address.virtual_host,
        heartbeat=int(heartbeat) if heartbeat else 0,
        ssl_context=context,
        server_hostname=(address.ssl_options or {}).get("server_hostname"),
        properties=properties,
    )
    try:
        return await asyncio.wait_for(opening, timeout)
    except TimeoutError as exc:
        raise ConnectionLost(f"RabbitMQ at {address.url}: no connection within {timeout:g} s") from exc
    except LoginRefused as exc:
        raise ConnectionLost(
            f"RabbitMQ at {address.url}: login refused for user {address.userid!r} (wrong password, or the user "
            f"may not use virtual host {address.virtual_host!r})"
        ) from exc
    except VhostRefused as exc:
        raise ConnectionLost(
            f"RabbitMQ at {address.url}: virtual host {address.virtual_host!r} does not exist or user "
            f"{address.userid!r} has no access to it"
        ) from exc
    except (AMQPError, OSError, EOFError, ConnectionError) as exc:
        raise ConnectionLost(f"RabbitMQ at {address.url}: cannot connect ({_reason(exc)})") from exc


def _reason(exc: BaseException) -> str:
    args = [arg for arg in exc.args if isinstance(arg, str)]
    return args[-1] if args else (str(exc) or type(exc).__name__)

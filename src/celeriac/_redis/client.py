"""Redis URLs, client construction and the translation of redis-py errors; the one place that knows redis-py's
connection API (the result backend uses it too).

URLs: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (TLS; ``ssl_*`` query parameters or
options), and kombu's ``redis+socket:///path/to/redis.sock[?virtual_host=db]`` for a Unix socket.

A command that finds its connection broken (killed while idle, server restarted) is sent once more on a
fresh connection; if that fails too, the caller gets `ConnectionLost`. Nothing else is retried. The price of
the one retry: a command whose *reply* was lost may have run twice (an LPUSH publishes a duplicate, which
at-least-once delivery allows; a fetch script's first batch waits in ``unacked`` for the visibility timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
import redis.exceptions as redis_exc
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from celeriac.errors import ConfigurationError, ConnectionLost, TransportError

SCHEMES = ("redis", "rediss", "redis+socket")
_SECRET_PARAMS = frozenset({"password"})


def redact(url: str) -> str:
    """``url`` with the password (in the user info or a ``password=`` parameter) replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if has_password else netloc
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(k in _SECRET_PARAMS for k, _ in pairs):
        query = urlencode([(k, "***" if k in _SECRET_PARAMS else v) for k, v in pairs], safe="*")
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # nothing secret: keep the URL exactly as given
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _redis_py_url(url: str) -> str:
    """The URL in a form redis-py parses: ``redis+socket://`` becomes ``unix://`` with ``db`` set."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ConfigurationError(f"not a Redis URL: {redact(url)!r} (expected one of {', '.join(SCHEMES)})")
    if parts.scheme != "redis+socket":
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    db = next((v for k, v in pairs if k in ("virtual_host", "db")), "0") or "0"
    rest = [(k, v) for k, v in pairs if k not in ("virtual_host", "db")]
    return f"unix://{parts.netloc}{parts.path}?{urlencode([('db', db), *rest])}"


def client_name(options: dict[str, Any]) -> str:
    """The ``CLIENT SETNAME`` of our connections: the ``client_name`` option, else ``celeriac-<host>-<pid>``."""
    name = options.get("client_name")
    if name:
        return str(name)
    host = "".join(c if c.isalnum() or c in "-_." else "_" for c in socket.gethostname())
    return f"celeriac-{host}-{os.getpid()}"


class _TimelyWrite(AbstractConnection):
    """A redis-py connection whose writes are bounded by ``asyncio.timeout`` instead of ``asyncio.wait_for``.

    On Python 3.11, redis-py's ``wait_for`` around every write (when ``socket_timeout`` is set, as on our
    clients) runs the write in a task of its own: the command leaves one event-loop iteration late and the task
    costs ~10 us of CPU, on every command a worker or client sends. ``asyncio.timeout`` bounds the same write
    in the caller's task. From Python 3.12 on, ``wait_for`` needs no task and this class is not used.
    """

    async def send_packed_command(self, command: bytes | str | Iterable[bytes], check_health: bool = True) -> None:
        if not self.socket_timeout or not self.is_connected:  # connecting: redis-py's own path
            await super().send_packed_command(command, check_health)
            return
        if check_health:
            await self.check_health()  # type: ignore[no-untyped-call]
        chunks = (
            [command.encode()] if isinstance(command, str) else [command] if isinstance(command, bytes) else command
        )
        writer = self._writer
        if writer is None:  # the health check dropped the connection: reconnect the usual way
            await super().send_packed_command(chunks, check_health=False)
            return
        try:
            async with asyncio.timeout(self.socket_timeout):
                writer.writelines(chunks)
                await writer.drain()
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise redis_exc.TimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            await self.disconnect(nowait=True)
            raise redis_exc.ConnectionError(f"Error while writing to socket: {exc}") from exc
        except BaseException:
            await self.disconnect(nowait=True)  # part of the command may be written: the link is unusable
            raise


_TIMELY: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def _timely(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    """``connection_class`` with `_TimelyWrite`'s writes (Python 3.11 only, see there); one subclass per class."""
    if sys.version_info >= (3, 12) or issubclass(connection_class, _TimelyWrite):
        return connection_class
    timely = _TIMELY.get(connection_class)
    if timely is None:
        timely = _TIMELY[connection_class] = type(
            f"Timely{connection_class.__name__}", (_TimelyWrite, connection_class), {}
        )
    return timely


def make_client(
    url: str, options: dict[str, Any], *, socket_timeout: float | None = None, retries: int = 1
) -> aioredis.Redis:
    """A client with its own connection pool for ``url``, which sends a command ``retries`` more times when its
    connection turns out broken. No I/O.

    ``options`` are transport options; used here: ``client_name``, ``socket_connect_timeout`` (default 10 s),
    ``socket_timeout`` (default 30 s, overridden by the argument), ``socket_keepalive`` (default on),
    ``max_connections``, and any ``ssl_*`` key (as Celery's ``broker_use_ssl``/``redis_backend_use_ssl``).

    Raises:
        ConfigurationError: not a Redis URL, or a parameter redis-py refuses.
    """
    kwargs: dict[str, Any] = {
        "client_name": client_name(options),
        "socket_connect_timeout": options.get("socket_connect_timeout", 10.0),
        "socket_timeout": socket_timeout if socket_timeout is not None else options.get("socket_timeout", 30.0),
        "socket_keepalive": options.get("socket_keepalive", True),
        "retry": Retry(NoBackoff(), retries, supported_errors=(redis_exc.ConnectionError,)),
        "health_check_interval": options.get("health_check_interval", 0),
        # RESP2, as kombu and Celery speak it: pub/sub messages are plain replies to read_response(), not
        # RESP3 pushes that redis-py 8 (whose default is RESP3) would route to a push handler instead.
        "protocol": 2,
    }
    if options.get("max_connections"):
        kwargs["max_connections"] = int(options["max_connections"])
    if urlsplit(url).scheme == "rediss":
        ssl = options.get("ssl")
        tls = {**options, **(ssl if isinstance(ssl, dict) else {})}
        kwargs.update({k: v for k, v in tls.items() if k.startswith("ssl_")})
    try:
        client = aioredis.Redis.from_url(_redis_py_url(url), **kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"bad Redis URL {redact(url)!r}: {exc}") from exc
    pool = client.connection_pool
    pool.connection_class = _timely(pool.connection_class)
    return client


def database(client: aioredis.Redis) -> int:
    """The database number the client selects (part of fanout channel names)."""
    return int(client.connection_pool.connection_kwargs.get("db", 0) or 0)


def raw_connection(client: aioredis.Redis) -> AbstractConnection:
    """A new connection outside the pool, configured like the pool's but without a read timeout (pub/sub
    connections wait for messages indefinitely; TCP keepalive notices a dead peer). No I/O."""
    pool = client.connection_pool
    kwargs = {**pool.connection_kwargs, "socket_timeout": None}
    connection: AbstractConnection = pool.connection_class(**kwargs)
    return connection


def dedicated_connection(client: aioredis.Redis) -> AbstractConnection:
    """A new connection outside the pool, configured exactly like the pool's (read timeout included). No I/O.

    For a caller that pipelines commands and reads their replies itself; it must ``disconnect()`` it when done.
    """
    pool = client.connection_pool
    connection: AbstractConnection = pool.connection_class(**pool.connection_kwargs)
    return connection


CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    redis_exc.ConnectionError,
    redis_exc.TimeoutError,
    ConnectionError,
    OSError,
)


@contextlib.contextmanager
def redis_errors(
    where: str, lost: type[Exception] = ConnectionLost, other: type[Exception] = TransportError
) -> Iterator[None]:
    """Turn redis-py (and socket) errors into celeriac's: a broken link into ``lost``, the rest into ``other``.

    ``where`` must already be redacted: it goes into the message.
    """
    try:
        yield
    except redis_exc.AuthenticationError as exc:
        raise other(f"redis at {where}: authentication failed: {exc}") from exc
    except CONNECTION_ERRORS as exc:
        raise lost(f"redis at {where}: {exc or type(exc).__name__}") from exc
    except redis_exc.RedisError as exc:
        raise other(f"redis at {where}: {exc}") from exc


def raise_if_cancelled() -> None:
    """Raise CancelledError if the current task was cancelled but the cancellation was swallowed.

    redis-py 8.1's asyncio client can swallow ``task.cancel()`` when it arrives while a connection is being
    set up (the command then completes normally). Loops that must stop when cancelled call this at their
    head; ``Task.cancelling()`` still counts the lost request.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError

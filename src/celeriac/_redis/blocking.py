"""A blocking Redis connection for one thread: the sync facades' direct path to the broker.

A sync ``delay()`` used to hand its send to the portal loop and wait for it there: two thread wake-ups (~76 us on
the 2-core benchmark VM) around a round trip through redis-py's asyncio connection (~62 us of CPU). A
`BlockingLink` belongs to the calling thread instead: redis-py opens it (TCP or Unix socket, TLS, AUTH, SELECT,
CLIENT SETNAME, keepalive, timeouts: the same settings as the transport's own connections), then commands are
written to its socket and the replies read back with hiredis, which costs ~20 us of CPU per round trip against
~36 us through redis-py's blocking connection (``LPUSH`` of a 900-byte envelope, 20,000 times).

The rules are the asyncio lanes' (`celeriac._redis.lane`): a command that finds its connection broken is sent once
more on a fresh one, then the caller gets `ConnectionLost`; a round trip that did not end cleanly (an error, a
timeout, an interrupt) drops the connection, so no half-read reply can reach the next command.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import struct
from typing import Any

import hiredis
import redis
import redis.exceptions as redis_exc
from redis.backoff import NoBackoff
from redis.retry import Retry

from celeriac._redis.client import connection_kwargs
from celeriac._redis.errors import redis_errors
from celeriac.errors import ConfigurationError, ConnectionLost, TransportClosed, TransportError

_READ_SIZE = 65536


def _kernel_timeouts(sock: socket.socket) -> None:
    """Move a plain socket's timeout into the kernel (``SO_RCVTIMEO``/``SO_SNDTIMEO``), where Python would ``poll``
    before every send and receive (two system calls more per round trip, ~3 us on the benchmark VM). A call that
    times out then fails with ``EAGAIN``, an `OSError` like any broken link. TLS sockets keep Python's timeout."""
    timeout = sock.gettimeout()
    if isinstance(sock, ssl.SSLSocket) or not timeout or not hasattr(socket, "SO_RCVTIMEO"):
        return
    seconds = int(timeout)
    value = struct.pack("ll", seconds, int((timeout - seconds) * 1_000_000))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
    except OSError:
        return  # not on this platform: Python's own timeout stays
    sock.settimeout(None)


class BlockingLink:
    """One thread's blocking connection to Redis (see the module docstring). No I/O until the first command.

    Raises:
        ConfigurationError: as `celeriac._redis.client.make_client`.
    """

    def __init__(self, url: str, options: dict[str, Any], where: str) -> None:
        target, kwargs = connection_kwargs(url, options)
        kwargs["retry"] = Retry(NoBackoff(), 0)  # one retry, done here (`round_trip`)
        try:
            pool = redis.Redis.from_url(target, **kwargs).connection_pool
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"bad Redis URL {where!r}: {exc}") from exc
        self._connection_class = pool.connection_class
        self._connection_kwargs = pool.connection_kwargs
        self._where = where
        self._connection: Any = None  # redis-py's connection: it opened the socket and owns its closing
        self._socket: socket.socket | None = None
        self._reader = hiredis.Reader()  # empty between round trips; a new one with each new connection
        self._pid = os.getpid()
        self._closed = False
        self.retries = 0  # commands sent a second time after a broken link: the first may have run

    def round_trip(self, packed: bytes, replies: int = 1) -> list[Any]:
        """Write ``packed`` (commands packed by ``hiredis.pack_command``) and read ``replies`` replies.

        Raises:
            ConnectionLost: the link broke twice, or could not be opened, or timed out.
            TransportError: Redis answered a command with an error (the link stays up), or refused the login.
            TransportClosed: `close` was called.
        """
        if self._closed:
            raise TransportClosed(f"the blocking Redis link to {self._where} is closed")
        fresh = self._socket is None
        try:
            return self._exchange(packed, replies)
        except OSError as exc:
            if fresh:
                raise ConnectionLost(f"redis at {self._where}: {exc or type(exc).__name__}") from exc
        if self._closed:
            raise TransportClosed(f"the blocking Redis link to {self._where} is closed")
        self.retries += 1
        try:
            return self._exchange(packed, replies)  # once more, on a fresh connection
        except OSError as exc:
            raise ConnectionLost(f"redis at {self._where}: {exc or type(exc).__name__}") from exc

    def _exchange(self, packed: bytes, replies: int) -> list[Any]:
        sock = self._socket or self._connect()
        reader = self._reader
        try:
            sock.sendall(packed)
            answers: list[Any] = []
            while len(answers) < replies:
                answer = reader.gets()
                if answer is False:
                    data = sock.recv(_READ_SIZE)
                    if not data:
                        raise ConnectionResetError("Redis closed the connection")
                    reader.feed(data)
                else:
                    answers.append(answer)
        except BaseException:
            self._drop()
            raise
        for answer in answers:
            if isinstance(answer, hiredis.ReplyError):
                raise TransportError(f"redis at {self._where}: {answer}")
        return answers

    def _connect(self) -> socket.socket:
        if self._pid != os.getpid():  # a forked child: the parent's socket is not ours to use (or to close)
            self._connection, self._socket, self._pid = None, None, os.getpid()
        connection = self._connection_class(**self._connection_kwargs)
        try:
            with redis_errors(self._where):
                connection.connect()
        except TransportError:
            connection.disconnect()
            raise
        sock = getattr(connection, "_sock", None)  # redis-py 5 to 8 keep the socket there
        if not isinstance(sock, socket.socket):
            connection.disconnect()
            raise ConnectionLost(f"redis at {self._where}: redis-py opened no socket to write to")
        _kernel_timeouts(sock)
        self._connection, self._socket, self._reader = connection, sock, hiredis.Reader()
        return sock

    def _drop(self) -> None:
        connection, self._connection, self._socket = self._connection, None, None
        if connection is not None and self._pid == os.getpid():
            with contextlib.suppress(OSError, redis_exc.RedisError):  # closing a broken socket may complain
                connection.disconnect()

    def close(self) -> None:
        """Close the connection; any later command raises `TransportClosed`. Idempotent, any thread."""
        self._closed = True
        self._drop()

"""HealthServer step (``--health-port``): a tiny HTTP server on the worker's loop for orchestrator probes.

``GET /healthz`` answers 200 while the process lives and its event loop runs (the answer comes from that loop,
so a blocked loop makes the probe time out). ``GET /readyz`` answers 200 while the consumer is connected to the
broker and consuming, else 503; both bodies are short JSON. Plain ``asyncio.start_server``: no dependency, one
request per connection, bounded reads, loopback by default (``worker_health_address``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from celeriac.errors import ConfigurationError
from celeriac.worker.bootsteps import Step
from celeriac.worker.steps import ConsumerStep

if TYPE_CHECKING:
    from celeriac.worker.worker import Worker

log = logging.getLogger("celeriac.worker")

#: Seconds a client has to send its request line and headers.
READ_TIMEOUT = 5.0
#: The most header lines read from one request.
MAX_HEADER_LINES = 100
_REASONS = {
    200: "OK",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def readiness(worker: Worker) -> str | None:
    """Why ``worker`` is not ready to take tasks now, or None when it is connected and consuming."""
    if worker.shutting_down:
        return "shutting down"
    if not worker.blueprint.has(ConsumerStep):
        return "starting"
    consumer = worker.blueprint.get(ConsumerStep).consumer
    if consumer is None:
        return "starting"
    if not consumer.ready.is_set():
        return "not connected to the broker" if consumer.connection_errors or worker.started else "starting"
    return None


class HealthServer(Step["Worker"]):
    """Serves ``/healthz`` (alive) and ``/readyz`` (connected and consuming) for the worker's life."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self.port: int | None = None

    def include_if(self, worker: Worker) -> bool:
        return worker.health_port is not None

    async def start(self, worker: Worker) -> None:
        assert worker.health_port is not None

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve(worker, reader, writer)

        self._server = await listen(serve, worker.health_address, worker.health_port, "--health-port")
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("Health checks on http://%s:%d/healthz and /readyz", worker.health_address, self.port)

    async def stop(self, worker: Worker) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    async def _serve(self, worker: Worker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def reply(method: str, path: str) -> tuple[int, str, bytes]:
            status, body = await self.answer(worker, method, path)
            return status, "application/json", json.dumps(body).encode()

        await serve_http(reader, writer, reply)

    async def answer(self, worker: Worker, method: str, path: str) -> tuple[int, dict[str, Any]]:
        """The status and JSON body for one request."""
        if path not in ("/healthz", "/readyz"):
            return 404, {"error": f"no such path {path!r}; try /healthz or /readyz"}
        if method not in ("GET", "HEAD"):
            return 405, {"error": f"{method} is not allowed; use GET"}
        if path == "/healthz":
            loop = asyncio.get_running_loop()
            before = loop.time()
            await asyncio.sleep(0)  # one trip round the loop: how long other work keeps it busy
            lag = loop.time() - before
            return 200, {"status": "ok", "pid": worker.pid, "loop_lag_ms": round(lag * 1000, 1)}
        reason = readiness(worker)
        if reason is not None:
            return 503, {"status": "unavailable", "reason": reason}
        return 200, {"status": "ready", "uptime": int(time.monotonic() - worker.started_at)}


Answer = Callable[[str, str], Awaitable[tuple[int, str, bytes]]]
"""``(method, path) -> (status, content type, body)`` of a tiny HTTP server (`serve_http`)."""


async def serve_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answer: Answer) -> None:
    """Read one request, write ``answer``'s response, close: bounded reads, a bad or slow client gets nothing, an
    error of ``answer`` is logged and a 500 (shared by the health and metrics servers)."""
    try:
        async with asyncio.timeout(READ_TIMEOUT):
            method, path = await _read_request(reader)
        try:
            status, content_type, payload = await answer(method, path)
        except Exception as exc:  # a bug here must not look like a dead worker, nor stay unseen
            log.exception("HTTP %s %s failed", method, path)
            status, content_type, payload = 500, "application/json", json.dumps({"error": type(exc).__name__}).encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode() + (payload if method != "HEAD" else b""))
        await writer.drain()
    except (TimeoutError, ValueError, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass  # a bad or slow client gets no answer; the server goes on
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def listen(
    serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]], address: str, port: int, option: str
) -> asyncio.Server:
    """``asyncio.start_server``; a port in use is a one-line start-up error naming ``option``."""
    try:
        return await asyncio.start_server(serve, address, port)
    except OSError as exc:
        raise ConfigurationError(f"{option}: cannot listen on {address}:{port}: {reason(exc)}") from None


def reason(exc: OSError) -> str:
    """An OS error's message, lower case."""
    return os.strerror(exc.errno).lower() if exc.errno else str(exc)


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str]:
    """``(method, path)`` of one HTTP request (headers read and dropped); ValueError when it is not one."""
    words = (await reader.readline()).decode("latin-1").split()
    if len(words) != 3 or not words[2].startswith("HTTP/"):
        raise ValueError("not an HTTP request line")
    for _ in range(MAX_HEADER_LINES):
        if (await reader.readline()).strip() == b"":
            break
    else:
        raise ValueError("too many header lines")
    return words[0].upper(), words[1].split("?", 1)[0]

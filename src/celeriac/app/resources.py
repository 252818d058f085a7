"""Resources: the app's connections per event loop (one producer transport, producer and result backend each).

asyncio connections belong to the loop that opened them, so each loop (the portal loop of the sync facades, a
worker's loop) gets its own, made lazily on first use and shared by concurrent callers on that loop.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from celeriac._resource import AsyncResource
from celeriac.app.producer import Producer
from celeriac.backends.base import ResultBackend
from celeriac.transports.base import Transport

T = TypeVar("T", bound=AsyncResource)

_Cache = weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Future[Any]]


def _ready(cache: _Cache, loop: asyncio.AbstractEventLoop) -> Any:
    """``loop``'s connected resource in ``cache``, or None while there is none yet (or its connecting failed).

    Every send asks for its loop's transport and backend: once they are connected, this answers without the
    coroutine and the shield of `_shared`.
    """
    future = cache.get(loop)
    if future is None or not future.done() or future.cancelled() or future.exception() is not None:
        return None
    return future.result()


async def _shared(cache: _Cache, make: Callable[[], T]) -> T:
    """This loop's resource in ``cache``, made and connected by the first caller; concurrent callers share it."""
    loop = asyncio.get_running_loop()
    future = cache.get(loop)
    if future is None:
        future = loop.create_future()
        cache[loop] = future
        try:
            resource = make()  # may refuse its URL: concurrent and later callers must not wait forever
            await resource.connect()
        except BaseException as exc:
            del cache[loop]
            future.set_exception(exc)
            future.exception()  # mark retrieved: concurrent waiters (if any) get it too
            raise
        future.set_result(resource)
    found: T = await asyncio.shield(future)
    return found


class Resources:
    """Per-loop connections made with ``make_transport`` / ``make_backend``.

    Args:
        make_transport: a new, unconnected producer transport.
        make_backend: a new, unconnected result backend (may raise `ConfigurationError`).
        declare_queues: whether producers declare each queue on first publish (read when a producer is made).
    """

    def __init__(
        self,
        make_transport: Callable[[], Transport],
        make_backend: Callable[[], ResultBackend],
        declare_queues: Callable[[], bool],
    ) -> None:
        self._make_transport = make_transport
        self._make_backend = make_backend
        self._declare_queues = declare_queues
        self._transports: _Cache = weakref.WeakKeyDictionary()
        self._backends: _Cache = weakref.WeakKeyDictionary()
        self._producers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Producer] = weakref.WeakKeyDictionary()

    async def transport(self) -> Transport:
        """This loop's shared producer transport, connected on first use."""
        transport: Transport | None = _ready(self._transports, asyncio.get_running_loop())
        if transport is None:
            transport = await _shared(self._transports, self._make_transport)
        return transport

    async def producer(self) -> Producer:
        """This loop's producer (on the shared transport; a new one after the transport was reopened)."""
        loop = asyncio.get_running_loop()
        transport = await self.transport()
        producer = self._producers.get(loop)
        if producer is None or producer.transport is not transport:
            producer = Producer(transport, declare=self._declare_queues())
            self._producers[loop] = producer
        return producer

    async def backend(self) -> ResultBackend:
        """This loop's shared result backend, connected on first use."""
        backend: ResultBackend | None = _ready(self._backends, asyncio.get_running_loop())
        if backend is None:
            backend = await _shared(self._backends, self._make_backend)
        return backend

    def connected_producer(self, loop: asyncio.AbstractEventLoop) -> Producer | None:
        """``loop``'s producer if its transport is connected, else None; no I/O, callable from any thread."""
        transport = _ready(self._transports, loop)
        producer = self._producers.get(loop)
        return producer if producer is not None and producer.transport is transport else None

    def connected_backend(self, loop: asyncio.AbstractEventLoop) -> ResultBackend | None:
        """``loop``'s result backend if it is connected, else None; no I/O, callable from any thread."""
        backend: ResultBackend | None = _ready(self._backends, loop)
        return backend

    def opened_on(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether ``loop`` has a transport or backend of these resources (connected or connecting)."""
        return loop in self._transports or loop in self._backends

    async def close(self, also: asyncio.AbstractEventLoop | None = None) -> None:
        """Close this loop's transport and backend (they reopen on next use), then ``also``'s (another loop's,
        on that loop: the portal's, which the sync facades use), if it opened any."""
        loop = asyncio.get_running_loop()
        if also is not None and also is not loop and self.opened_on(also):
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.close(), also))
        for cache in (self._transports, self._backends):
            future = cache.pop(loop, None)
            if future is not None and not future.done():  # still connecting: close it once it is connected
                await asyncio.wait([future])
            if future is not None and not future.cancelled() and not future.exception():
                await future.result().close()

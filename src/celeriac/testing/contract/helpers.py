"""The shared pieces of the contract suite: the factories that make what is under test, and the helpers every
check uses (waiting on conditions with timeouts, asserting that something raises, the next delivery)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from celeriac.backends.base import BackendOptions, ResultBackend
from celeriac.protocol.message import Message
from celeriac.transports.base import Delivery, QueueConsumer, Subscription, Transport, TransportOptions

VISIBILITY_TIMEOUT = 1.0  # small, so "comes back after the visibility timeout" is quick to see
TIMEOUT = 10.0  # longest wait for something that must happen
QUIET = 0.3  # how long "nothing more is delivered" is watched (only where the contract says so)


@dataclass(frozen=True)
class TransportFactory:
    """How the suite makes transports of one kind.

    Attributes:
        make: a new, unconnected transport with the given options (add isolation such as key prefixes here).
        higher_priority_first: the broker's priority direction (AMQP and SQLite: 9 before 0; Redis: 0 first).
        queue_order: the broker serves a consumer's earlier queues first (RabbitMQ does not: it shares a
            consumer's window between its queues, so only each queue's own order holds).
    """

    make: Callable[[TransportOptions], Transport]
    higher_priority_first: bool = True
    queue_order: bool = True

    def __call__(self, options: TransportOptions | None = None) -> Transport:
        return self.make(options or TransportOptions(visibility_timeout=VISIBILITY_TIMEOUT))


@dataclass(frozen=True)
class BackendFactory:
    """How the suite makes result backends of one kind: ``make(options)`` is new and unconnected."""

    make: Callable[[BackendOptions], ResultBackend]
    options: BackendOptions = field(default_factory=BackendOptions)

    def __call__(self, options: BackendOptions | None = None) -> ResultBackend:
        return self.make(options or self.options)


TransportCheck = Callable[[TransportFactory, str], Awaitable[None]]
BackendCheck = Callable[[BackendFactory], Awaitable[None]]


# -- helpers -----------------------------------------------------------------------------------------------


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float = TIMEOUT, what: str = "") -> None:
    """Return once ``await predicate()`` is true; AssertionError after ``timeout`` s (polls up to 20/s)."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout:g} s: {what or predicate}")
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.05)


@contextlib.contextmanager
def raises(kind: type[BaseException]) -> Iterator[None]:
    """Assert that the block raises ``kind`` (the suite does not depend on pytest)."""
    try:
        yield
    except kind:
        return
    raise AssertionError(f"{kind.__name__} was not raised")


async def next_delivery(consumer: QueueConsumer, timeout: float = TIMEOUT) -> Delivery:
    """The consumer's next delivery; AssertionError when none comes within ``timeout`` s."""
    try:
        async with asyncio.timeout(timeout):
            return await anext(consumer)
    except TimeoutError:
        raise AssertionError(f"no delivery within {timeout:g} s") from None


async def next_broadcast(subscription: Subscription, timeout: float = TIMEOUT) -> tuple[str, Message]:
    try:
        async with asyncio.timeout(timeout):
            return await anext(subscription)
    except TimeoutError:
        raise AssertionError(f"no broadcast within {timeout:g} s") from None


async def is_pending(task: asyncio.Future[Any], seconds: float = QUIET) -> bool:
    """True when ``task`` is still not done after ``seconds`` (a bounded watch for "nothing happens")."""
    done, _ = await asyncio.wait({task}, timeout=seconds)
    return not done


def message(body: bytes, **headers: Any) -> Message:
    return Message(body=body, headers=headers)


def check_id(check: Callable[..., Any]) -> str:
    """A short test id for a check: its name without ``check_``."""
    return check.__name__.removeprefix("check_")


def with_options(make: TransportFactory, **changes: Any) -> TransportFactory:
    """``make`` whose default options have ``changes`` applied (e.g. ``max_deliveries=2``)."""
    base = make.make
    return replace(make, make=lambda options: base(replace(options, **changes)))

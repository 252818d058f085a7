"""The bounded bookkeeping of send-time result subscriptions (`celeriac.backends.redis.unread`) and the sync portal."""

from __future__ import annotations

import asyncio
import threading

import pytest

from celeriac._portal import Portal
from celeriac.backends.base import TaskMeta
from celeriac.backends.redis.unread import Unread


def meta(task_id: str) -> TaskMeta:
    return TaskMeta(task_id=task_id, status="SUCCESS", result=task_id, traceback=None, children=[], date_done=None)


async def test_pending_subscriptions_drop_the_oldest_beyond_the_limit() -> None:
    unread = Unread(limit=2)
    confirms = [asyncio.get_running_loop().create_future() for _ in range(3)]
    assert unread.add_pending("a", confirms[0]) == []
    assert unread.add_pending("b", confirms[1]) == []
    assert unread.add_pending("c", confirms[2]) == ["a"]
    assert unread.pending_channels() == ["b", "c"]
    assert unread.pending_confirm("b") is confirms[1]
    assert unread.take_pending("b") is confirms[1]
    assert not unread.is_pending("b") and unread.is_pending("c")
    assert unread.counts() == (1, 0)


def test_received_records_drop_the_oldest_beyond_the_limit() -> None:
    unread = Unread(limit=2)
    for channel in "abc":
        unread.keep(channel, meta(channel))
    assert unread.peek("a") is None
    assert unread.peek("b") == meta("b")  # a peek leaves it
    assert unread.take("b") == meta("b")
    assert unread.take("b") is None  # handed over once
    unread.discard("c")
    assert unread.counts() == (0, 0)


def test_a_negative_limit_keeps_nothing() -> None:
    unread = Unread(limit=-5)
    unread.keep("a", meta("a"))
    assert unread.limit == 0 and unread.counts() == (0, 0)


def test_portal_returns_values_and_raises_errors() -> None:
    portal = Portal()

    async def value() -> int:
        await asyncio.sleep(0)
        return 7

    async def boom() -> None:
        raise KeyError("boom")

    assert portal.run(value()) == 7
    with pytest.raises(KeyError, match="boom"):
        portal.run(boom())


def test_portal_timeout_cancels_the_coroutine() -> None:
    portal = Portal()
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError):
        portal.run(forever(), timeout=0.05)
    assert cancelled.wait(10)


def test_portal_refuses_a_call_from_its_own_thread() -> None:
    portal = Portal()

    async def nested() -> None:
        async def inner() -> None:
            return None

        portal.run(inner())

    with pytest.raises(RuntimeError, match="async twin"):
        portal.run(nested())

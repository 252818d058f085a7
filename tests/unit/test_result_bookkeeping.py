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


async def test_another_thread_waits_for_a_pending_record_and_gets_it_directly() -> None:
    unread = Unread(limit=10)
    unread.add_pending("a", asyncio.get_running_loop().create_future())
    taken: list[TaskMeta | None] = []
    waiter = threading.Thread(target=lambda: taken.append(unread.take("a", wait=30.0)))
    waiter.start()
    unread.keep("a", meta("a"))  # what the listener does when the record comes: keep, then drop the pending entry
    unread.take_pending("a")
    await asyncio.to_thread(waiter.join, 10)
    assert taken == [meta("a")]
    assert unread.counts() == (0, 0)


async def test_a_thread_stops_waiting_when_the_record_is_no_longer_expected() -> None:
    unread = Unread(limit=10)
    unread.add_pending("a", asyncio.get_running_loop().create_future())
    unread.add_pending("b", asyncio.get_running_loop().create_future())
    taken: list[TaskMeta | None] = []
    waiter = threading.Thread(target=lambda: taken.append(unread.take("a", wait=30.0)))
    waiter.start()
    unread.take_pending("a")  # a waiter on the loop took the subscription over: the thread must not wait on
    await asyncio.to_thread(waiter.join, 10)
    assert not waiter.is_alive() and taken == [None]
    # Not pending at all: no wait. On the listener's own thread: never a wait (it would block the loop).
    assert unread.take("x", wait=30.0) is None
    assert unread.take("b", wait=30.0) is None


def test_a_thread_waits_at_most_the_time_given() -> None:
    unread = Unread(limit=10)
    loop = asyncio.new_event_loop()
    try:
        unread.add_pending("a", loop.create_future())
    finally:
        loop.close()
    result: list[TaskMeta | None] = []
    waiter = threading.Thread(target=lambda: result.append(unread.take("a", wait=0.05)))
    waiter.start()
    waiter.join(10)
    assert result == [None]


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

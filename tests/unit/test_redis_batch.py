"""`Batcher`: a lone item goes out from its caller's task at once; what queues behind a round trip shares the next.

The round trip is a fake (`Wire`): the Batcher only needs an async ``send``; every test holds a batch on the
wire with an event and waits on conditions, never on the clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from celeriac.errors import ConnectionLost, TransportClosed
from celeriac.testing import wait_for
from celeriac.transports._batch import Batcher

NAME = "test-batch-flusher"


class Wire:
    """A fake ``send``: records each batch and the task that sent it; a held batch stays on the wire."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.senders: list[asyncio.Task[object] | None] = []
        self.gates: dict[int, asyncio.Event] = {}
        self.failures: dict[int, Exception] = {}
        self.swallow_cancel: set[int] = set()
        self.in_flight = 0
        self.most_in_flight = 0

    def hold(self, index: int) -> asyncio.Event:
        """Keep batch number ``index`` on the wire until the returned event is set."""
        gate = self.gates[index] = asyncio.Event()
        return gate

    async def send(self, batch: Sequence[int]) -> None:
        index = len(self.batches)
        self.batches.append(list(batch))
        self.senders.append(asyncio.current_task())
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            gate = self.gates.get(index)
            if gate is not None:
                try:
                    await gate.wait()
                except asyncio.CancelledError:
                    if index not in self.swallow_cancel:
                        raise
            if index in self.failures:
                raise self.failures[index]
        finally:
            self.in_flight -= 1


async def let_ready_tasks_run() -> None:
    """One pass of the event loop: tasks created before this call have run up to their first suspension."""
    await asyncio.sleep(0)


async def lone_send(batcher: Batcher[int], wire: Wire) -> asyncio.Task[None]:
    """Submit item 0 to an idle batcher; return once it is on the wire (sent from the submitting task)."""
    first = asyncio.create_task(batcher.submit(0))
    await wait_for(lambda: len(wire.batches) == 1)
    return first


async def queue_behind(batcher: Batcher[int], items: Sequence[int]) -> list[asyncio.Task[None]]:
    """Submit ``items`` from tasks of their own while a round trip is on the wire; they queue behind it."""
    tasks = [asyncio.create_task(batcher.submit(i)) for i in items]
    await let_ready_tasks_run()
    return tasks


async def test_a_lone_submit_is_sent_at_once_by_its_callers_task() -> None:
    wire = Wire()
    batcher = Batcher(wire.send, 10, NAME)
    await batcher.submit(1)
    await batcher.submit(2)
    assert wire.batches == [[1], [2]]
    assert wire.senders == [asyncio.current_task()] * 2


async def test_submits_during_a_round_trip_share_the_next_one_in_order() -> None:
    wire = Wire()
    gate = wire.hold(0)
    batcher = Batcher(wire.send, 10, NAME)
    first = await lone_send(batcher, wire)
    others = await queue_behind(batcher, range(1, 5))
    assert len(wire.batches) == 1  # one round trip at a time
    gate.set()
    await asyncio.gather(first, *others)
    assert wire.batches == [[0], [1, 2, 3, 4]]
    assert wire.senders[0] is first
    sender = wire.senders[1]
    assert sender is not None and sender.get_name() == NAME
    assert wire.most_in_flight == 1


async def test_max_batch_splits_what_queued() -> None:
    wire = Wire()
    gate = wire.hold(0)
    batcher = Batcher(wire.send, 2, NAME)
    first = await lone_send(batcher, wire)
    others = await queue_behind(batcher, range(1, 6))
    gate.set()
    await asyncio.gather(first, *others)
    assert wire.batches == [[0], [1, 2], [3, 4], [5]]


async def test_an_error_reaches_every_item_of_its_batch_and_only_those() -> None:
    wire = Wire()
    gate = wire.hold(0)
    failure = ConnectionLost("redis at test: gone")
    wire.failures[1] = failure
    batcher = Batcher(wire.send, 10, NAME)
    first = await lone_send(batcher, wire)
    others = await queue_behind(batcher, range(1, 4))
    gate.set()
    results = await asyncio.gather(first, *others, return_exceptions=True)
    assert results == [None, failure, failure, failure]
    assert wire.batches == [[0], [1, 2, 3]]
    # A lone item's failure is its caller's alone; the next one goes out as usual.
    wire.failures[2] = failure
    with pytest.raises(ConnectionLost):
        await batcher.submit(4)
    await batcher.submit(5)
    assert wire.batches[2:] == [[4], [5]]


async def test_a_cancelled_caller_does_not_strand_the_items_queued_behind_it() -> None:
    wire = Wire()
    wire.hold(0)  # never released: the lone send is cut short by its caller's cancellation
    batcher = Batcher(wire.send, 10, NAME)
    first = await lone_send(batcher, wire)
    others = await queue_behind(batcher, (1, 2))
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.gather(*others)
    assert wire.batches == [[0], [1, 2]]


async def test_a_cancel_swallowed_by_send_still_reaches_the_caller() -> None:
    wire = Wire()
    gate = wire.hold(0)
    wire.swallow_cancel.add(0)  # as redis-py may while it connects: the command then completes normally
    batcher = Batcher(wire.send, 10, NAME)
    first = await lone_send(batcher, wire)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    gate.set()
    await batcher.submit(1)  # the batcher is free again
    assert wire.batches == [[0], [1]]


async def test_a_caller_that_stops_waiting_leaves_its_queued_item_in_the_batch() -> None:
    wire = Wire()
    gate = wire.hold(0)
    batcher = Batcher(wire.send, 10, NAME)
    first = await lone_send(batcher, wire)
    queued = asyncio.create_task(batcher.submit(1))
    await let_ready_tasks_run()
    queued.cancel()
    gate.set()
    await first
    await wait_for(lambda: len(wire.batches) == 2)
    assert wire.batches == [[0], [1]]


async def test_after_a_shared_round_trip_submits_go_through_the_flusher_until_one_goes_alone() -> None:
    wire = Wire()
    gate = wire.hold(0)
    batcher = Batcher(wire.send, 10, NAME)
    first = await lone_send(batcher, wire)
    others = await queue_behind(batcher, (1, 2))
    gate.set()
    await asyncio.gather(first, *others)
    # Senders that overlapped wake together: each of them queues, so that they share one round trip.
    await batcher.submit(3)
    await batcher.submit(4)
    assert wire.batches == [[0], [1, 2], [3], [4]]
    flusher, inline = wire.senders[2], wire.senders[3]
    assert flusher is not None and flusher.get_name() == NAME
    assert inline is asyncio.current_task()


async def test_enqueue_during_a_lone_send_waits_for_the_next_round_trip() -> None:
    wire = Wire()
    gate = wire.hold(0)
    batcher = Batcher(wire.send, 10, NAME)
    first = await lone_send(batcher, wire)
    ack = batcher.enqueue(1)
    await let_ready_tasks_run()
    assert len(wire.batches) == 1 and not ack.done()
    gate.set()
    await asyncio.gather(first, ack)
    assert wire.batches == [[0], [1]]
    assert wire.most_in_flight == 1


async def test_close_waits_for_a_lone_send_and_what_queued_behind_it_then_refuses() -> None:
    wire = Wire()
    gate = wire.hold(0)
    batcher = Batcher(wire.send, 10, NAME)
    first = await lone_send(batcher, wire)
    others = await queue_behind(batcher, (1, 2))
    closing = asyncio.create_task(batcher.close())
    await let_ready_tasks_run()
    assert not closing.done()
    with pytest.raises(TransportClosed):
        await batcher.submit(9)
    gate.set()
    await closing
    await asyncio.gather(first, *others)
    assert wire.batches == [[0], [1, 2]]
    with pytest.raises(TransportClosed):
        batcher.enqueue(9)
    await batcher.close()  # idempotent


async def test_close_gives_up_on_a_stuck_round_trip_and_fails_what_queued() -> None:
    wire = Wire()
    gate = wire.hold(0)
    batcher = Batcher(wire.send, 10, NAME)
    first = await lone_send(batcher, wire)
    queued = asyncio.create_task(batcher.submit(1))
    await let_ready_tasks_run()
    await batcher.close(timeout=0.01)
    with pytest.raises(TransportClosed):
        await queued
    gate.set()
    await first  # the lone send itself was never interrupted
    assert wire.batches == [[0]]


async def test_many_items_share_one_future_done_when_their_last_batch_is() -> None:
    wire = Wire()
    gate0, gate2 = wire.hold(0), wire.hold(2)
    batcher = Batcher(wire.send, 2, NAME)
    first = await lone_send(batcher, wire)
    many = batcher.enqueue_many([1, 2, 3, 4, 5])
    gate0.set()
    await wait_for(lambda: len(wire.batches) == 3)  # [0], [1, 2], then [3, 4] held on the wire
    assert not many.done()  # the items of the first batch were sent, not those of the held one
    gate2.set()
    await asyncio.gather(first, many)
    assert wire.batches == [[0], [1, 2], [3, 4], [5]]
    assert batcher.enqueue_many([]).done()


async def test_many_items_fail_with_the_first_batch_that_fails_and_the_rest_still_go() -> None:
    wire = Wire()
    failure = ConnectionLost("redis at test: gone")
    wire.failures[0] = failure
    batcher = Batcher(wire.send, 2, NAME)
    many = batcher.enqueue_many([1, 2, 3])
    with pytest.raises(ConnectionLost):
        await many
    await wait_for(lambda: len(wire.batches) == 2)
    assert wire.batches == [[1, 2], [3]]


async def test_many_items_queued_at_close_fail_as_closed() -> None:
    wire = Wire()
    wire.hold(0)  # stuck
    batcher = Batcher(wire.send, 10, NAME)
    await lone_send(batcher, wire)
    many = batcher.enqueue_many([1, 2])
    await batcher.close(timeout=0.01)
    with pytest.raises(TransportClosed):
        await many
    with pytest.raises(TransportClosed):
        batcher.enqueue_many([3])

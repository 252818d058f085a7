"""RabbitMQ quorum queue: a poison task that kills every worker running it is dead-lettered to ``<queue>.dead``
after the delivery limit (``broker_max_deliveries`` = 2 here), instead of looping forever; the innocent tasks
published with it all run.

RabbitMQ counts every return of an unacked delivery (``x-delivery-count``), also of messages that were only
prefetched alongside the poison when its worker died: with a larger prefetch window those innocents reach the
limit together with the poison (measured: 7 of 12 dead-lettered with ``-c 2``, a window of 8). So the worker here
holds one message at a time (``-P solo --prefetch-multiplier 1``), which is what a queue that may carry poison
needs on RabbitMQ.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiormq
import pytest

from celeriac import App
from celeriac._portal import portal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relkit import Ledger, RabbitVhost, open_vhost, wait_until

pytestmark = pytest.mark.amqp

ENV = {"REL_QUEUE_TYPE": "quorum", "REL_MAX_DELIVERIES": "2"}


@pytest.fixture
def vhost() -> Iterator[RabbitVhost]:
    made = open_vhost("rel-poison")
    yield made
    made.delete()


async def dead_letters(url: str, queue: str) -> list[dict[str, Any]]:
    """The headers of every message in ``queue`` (read and left there)."""
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel()
        found = []
        while True:
            try:
                message = await channel.basic_get(queue, no_ack=False)
            except aiormq.exceptions.AMQPError:
                break
            if message.delivery_tag is None or message.header.class_id is None or message.body is None:
                break
            found.append(dict(message.header.properties.headers or {}))
            if not message.delivery.message_count:  # type: ignore[union-attr]
                break
        return found
    finally:
        await connection.close()


def test_poison_on_a_quorum_queue_is_dead_lettered_after_the_limit(
    vhost: RabbitVhost, queue_name: str, ledger: Ledger, workers: Callable[..., Any]
) -> None:
    producer = App("relapp", broker=vhost.url)
    producer.conf.update(task_default_queue_type="quorum", broker_max_deliveries=2)
    try:

        async def publish() -> str:
            poison = await producer.asend_task("relapp.poison", [], queue=queue_name)
            for i in range(12):
                await producer.asend_task("relapp.mark_late", [f"t{i}", 0.05], queue=queue_name)
                ledger.published.append(f"t{i}")
            return poison.id

        poison_id = portal.run(publish())
    finally:
        producer.close()
    args = ["-Q", queue_name, "-P", "solo", "--prefetch-multiplier", "1"]
    started = [workers(vhost.url, "", ledger, args, ENV)]
    deadline = time.monotonic() + 90
    while ledger.ran(ledger.published) < len(ledger.published) or not vhost.messages(f"{queue_name}.dead"):
        if started[-1].proc.poll() is not None:  # the poison killed it: start the next one
            assert len(started) <= 4, f"the poison killed {len(started)} workers (delivery limit 2)"
            started.append(workers(vhost.url, "", ledger, args, ENV))
        assert time.monotonic() < deadline, (
            f"not dead-lettered / innocent tasks lost: runs {dict(ledger.executed())}, "
            f"{len(started)} workers, queues {vhost.listing()}\n" + started[-1].output[-3000:]
        )
        time.sleep(0.1)
    lost, _ = ledger.report("innocent tasks published with a poison task on a quorum queue")
    assert lost == 0
    wait_until(lambda: vhost.messages(f"{queue_name}.dead") == 1, 20, "exactly the poison dead-lettered")
    [headers] = asyncio.run(dead_letters(vhost.url, f"{queue_name}.dead"))
    assert headers.get("id") == poison_id
    print(f"[poison] workers killed: {len(started) - 1}, runs of the poison: {ledger.executed()['poison']}")

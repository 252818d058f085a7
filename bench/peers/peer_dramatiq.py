"""Dramatiq 2.2 on Redis: its defaults (one process per core, 8 threads each), ``send()`` loop."""

from __future__ import annotations

import dramatiq
from common import REDIS_URL, mark_done
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=REDIS_URL)
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="noop")
def noop() -> None:
    """Nothing."""


@dramatiq.actor(actor_name="sentinel")
def sentinel() -> None:
    mark_done()


def enqueue(n: int) -> None:
    for _ in range(n):
        noop.send()
    sentinel.send()

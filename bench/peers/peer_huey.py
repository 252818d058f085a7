"""Huey 3.5 on Redis: a consumer with 8 worker threads; calling a task enqueues it."""

from __future__ import annotations

from common import REDIS_URL, mark_done
from huey import RedisHuey

huey = RedisHuey("peers", url=REDIS_URL, results=False)


@huey.task()
def noop() -> None:
    """Nothing."""


@huey.task()
def sentinel() -> None:
    mark_done()


def enqueue(n: int) -> None:
    for _ in range(n):
        noop()
    sentinel()

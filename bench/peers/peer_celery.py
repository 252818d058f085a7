"""Celery 5.7: prefork (its default pool, one process per core), ``def`` no-op; the ``delay()`` loop."""

from __future__ import annotations

from celery import Celery
from common import REDIS_URL, mark_done

app = Celery("peers", broker=REDIS_URL)
app.conf.broker_connection_retry_on_startup = True


@app.task(name="peers.noop", ignore_result=True)
def noop() -> None:
    """Nothing."""


@app.task(name="peers.sentinel", ignore_result=True)
def sentinel() -> None:
    mark_done()


def enqueue(n: int) -> None:
    for _ in range(n):
        noop.delay()
    sentinel.delay()

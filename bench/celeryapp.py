"""The Celery app of the benchmarks: the task names of `benchapp`, for Celery's worker and Celery's client.

Imported only inside ``bench/.venv-celery`` (by ``celery -A celeryapp worker`` and by `celery_client`). The
environment chooses the broker, as for `benchapp`: ``BENCH_BROKER_URL`` (a Redis URL; Celery has no SQLite
broker; or an AMQP URL) and ``BENCH_KEYPREFIX`` (kombu's and the result backend's ``global_keyprefix``),
``BENCH_RESULT_URL`` (``rpc://`` on RabbitMQ). Celery tasks cannot be
coroutines, so ``bench.noop_async`` is a plain function here.
"""

from __future__ import annotations

import os

from celery import Celery

BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13")
KEYPREFIX = os.environ.get("BENCH_KEYPREFIX", "")
RESULT_URL = os.environ.get("BENCH_RESULT_URL") or BROKER_URL

app = Celery("celeryapp", broker=BROKER_URL, backend=RESULT_URL)
if KEYPREFIX:
    app.conf.broker_transport_options = {"global_keyprefix": KEYPREFIX}
    app.conf.result_backend_transport_options = {"global_keyprefix": KEYPREFIX}


@app.task(name="bench.noop_async", ignore_result=True)
def noop_async() -> None:
    """Nothing (the same name as celeriac's async no-op)."""


@app.task(name="bench.noop_sync", ignore_result=True)
def noop_sync() -> None:
    """Nothing."""


@app.task(name="bench.sentinel")
def sentinel(value: int = 0) -> int:
    """Return ``value``: a task whose result a client can wait for."""
    return value


@app.task(name="bench.cpu", ignore_result=True)
def cpu() -> None:
    """CPU-bound, ~4 ms: ``sum(range(200000))`` (bench/cpu.py)."""
    sum(range(200_000))

# Celery has no type hints.
# mypy: disallow-untyped-calls=False, disallow-untyped-decorators=False
"""The Celery app of the RabbitMQ interop tests (worker and client): the task names of `amqp_celeriac_app`.

The same environment as `amqp_celeriac_app` (``TEST_BROKER_URL``, ``TEST_RESULT_URL``, ``TEST_KEYPREFIX``,
``TEST_QUEUE_TYPE``, ``TEST_LEDGER``), so both kinds of worker and client declare the same queues.
"""

from __future__ import annotations

import os

from amqp_settings import configure
from celery import Celery  # type: ignore[import-untyped]

RESULT_URL = os.environ.get("TEST_RESULT_URL", "rpc://")
PREFIX = os.environ.get("TEST_KEYPREFIX", "")
LEDGER = os.environ.get("TEST_LEDGER")
QUEUE_TYPE = os.environ.get("TEST_QUEUE_TYPE", "classic")


app = Celery("celery_amqp_app", broker=os.environ.get("TEST_BROKER_URL"), backend=RESULT_URL)
configure(app, QUEUE_TYPE, PREFIX)


@app.task(name="taskapp.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="taskapp.fail")
def fail(message: str) -> None:
    raise ValueError(message)


@app.task(name="taskapp.mark")
def mark(tag: str) -> str:
    if LEDGER:
        with open(LEDGER, "a") as handle:
            handle.write(f"{tag} celery\n")
    return tag

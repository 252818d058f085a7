# Celery has no type hints.
# mypy: disallow-untyped-calls=False, disallow-untyped-decorators=False
"""A real Celery app with the task names of tests/integration/taskapp.py, for ``celery -A celery_taskapp worker``.

Configured from the environment by the interop tests: ``TEST_BROKER_URL`` (broker and result backend, one Redis
database), ``TEST_KEYPREFIX`` (``global_keyprefix`` of both, so a test's keys are its own) and ``TEST_LEDGER`` (a
file every run of ``taskapp.mark`` appends to; celeriac's twin task writes to the same file).
"""

from __future__ import annotations

import os

from celery import Celery  # type: ignore[import-untyped]

URL = os.environ.get("TEST_BROKER_URL", "redis://127.0.0.1:6379/15")
PREFIX = os.environ.get("TEST_KEYPREFIX", "")
LEDGER = os.environ.get("TEST_LEDGER")

app = Celery("celery_taskapp", broker=URL, backend=URL)
app.conf.update(
    broker_transport_options={"global_keyprefix": PREFIX},
    result_backend_transport_options={"global_keyprefix": PREFIX},
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=True,
    task_default_queue=os.environ.get("TEST_DEFAULT_QUEUE", "celery"),  # where canvas steps sent by the worker go
)


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


@app.task(name="taskapp.tsum")
def tsum(values: list[int]) -> int:
    return sum(values)

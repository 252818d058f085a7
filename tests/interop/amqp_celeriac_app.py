"""The celeriac worker app of the RabbitMQ interop tests: the task names of `celery_amqp_app`, the same settings.

Configured from the environment: ``TEST_BROKER_URL`` (the test's own virtual host), ``TEST_RESULT_URL``
(``rpc://`` or a Redis URL), ``TEST_KEYPREFIX`` (Redis results' ``global_keyprefix``), ``TEST_QUEUE_TYPE``
(classic or quorum), ``TEST_LEDGER`` (every run of ``taskapp.mark`` appends ``<tag> celeriac``).
"""

from __future__ import annotations

import os

from celeriac import App

RESULT_URL = os.environ.get("TEST_RESULT_URL", "rpc://")
PREFIX = os.environ.get("TEST_KEYPREFIX", "")
LEDGER = os.environ.get("TEST_LEDGER")
QUEUE_TYPE = os.environ.get("TEST_QUEUE_TYPE", "classic")

app = App("amqp_celeriac_app", broker=os.environ.get("TEST_BROKER_URL"), backend=RESULT_URL)
app.conf.task_default_queue_type = QUEUE_TYPE
if QUEUE_TYPE == "quorum":
    app.conf.task_default_exchange_type = "topic"  # native delayed delivery needs a topic exchange (Celery too)
    # Celery declares quorum queues with x-queue-type alone: no delivery limit, no <queue>.dead.
    app.conf.task_queue_delivery_limit = 0
else:
    app.conf.task_queue_max_priority = 10
if PREFIX:
    app.conf.result_backend_transport_options = {"global_keyprefix": PREFIX}


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
            handle.write(f"{tag} celeriac\n")
    return tag

"""The Dramatiq app of the RabbitMQ comparison: the no-ops and the sentinel of `benchapp`, as Dramatiq actors.

Imported only inside ``bench/.venv-dramatiq`` (by ``dramatiq dramatiqapp`` and `dramatiq_client`). The broker is
``BENCH_BROKER_URL`` (its own RabbitMQ virtual host per run); Dramatiq has no result store on RabbitMQ, so the
sentinel's result goes to Redis (``BENCH_DRAMATIQ_RESULTS``, default ``redis://127.0.0.1:6379/13``) under a
namespace named after the run's virtual host, kept one minute. The RabbitMQ broker runs with Dramatiq's defaults
(no publisher confirms); its queue is ``default``.
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

BROKER_URL = os.environ.get("BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
RESULTS_URL = os.environ.get("BENCH_DRAMATIQ_RESULTS", "redis://127.0.0.1:6379/13")
QUEUE = "default"

broker = RabbitmqBroker(url=BROKER_URL)
namespace = "celeriac-bench-dramatiq:" + BROKER_URL.rsplit("/", 1)[-1]
broker.add_middleware(Results(backend=RedisBackend(url=RESULTS_URL, namespace=namespace)))
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="noop_sync")
def noop_sync() -> None:
    """Nothing."""


@dramatiq.actor(actor_name="sentinel", store_results=True, result_ttl=60_000)
def sentinel(value: int = 0) -> int:
    """Return ``value``: a task whose result a client can wait for."""
    return value

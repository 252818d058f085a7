# Celery has no type hints; calling it is the point of this module.
# mypy: disallow-untyped-calls=False, disallow-untyped-decorators=False
"""A Celery 5.7 client re-raises the limit and lost-worker errors of a celeriac prefork worker as billiard's types,
and reads its ``inspect stats`` pool section as Celery's prefork reports it.

celeriac stores `TimeLimitExceeded`, `SoftTimeLimitExceeded` and `WorkerLostError` with the module Celery writes
(``billiard.exceptions``), so ``AsyncResult.get()`` in a Celery client raises the very classes Celery users catch.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from billiard.exceptions import (  # type: ignore[import-untyped]
    SoftTimeLimitExceeded,
    TimeLimitExceeded,
    WorkerLostError,
)
from celery import Celery  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))
from test_prefork import PreforkWorker

pytestmark = pytest.mark.redis


@pytest.fixture
def celery_client(redis_url: str, prefix: str, queue_name: str) -> Iterator[Celery]:
    app = Celery("client", broker=redis_url, backend=redis_url, set_as_current=False)
    app.conf.update(
        broker_transport_options={"global_keyprefix": prefix},
        result_backend_transport_options={"global_keyprefix": prefix},
        task_default_queue=queue_name,
    )
    yield app
    app.close()


def test_celery_client_re_raises_limit_and_lost_worker_errors(
    redis_url: str, prefix: str, queue_name: str, celery_client: Celery
) -> None:
    worker = PreforkWorker(redis_url, prefix, queue_name, ["-P", "prefork", "-c", "1"], {})
    try:
        worker.wait_for_output("ready.")
        hard = celery_client.send_task("prefork_app.hang", (30,), time_limit=1)
        with pytest.raises(TimeLimitExceeded):
            hard.get(timeout=20)
        soft = celery_client.send_task("prefork_app.spin", (30,), soft_time_limit=0.3)
        with pytest.raises(SoftTimeLimitExceeded):
            soft.get(timeout=20)
        lost = celery_client.send_task("prefork_app.exit_child")
        with pytest.raises(WorkerLostError, match="exited prematurely"):
            lost.get(timeout=20)
        assert celery_client.send_task("prefork_app.pid").get(timeout=20) > 0
    finally:
        code = worker.stop()
    assert code == 0, worker.output


def test_celery_inspect_stats_shows_the_prefork_children(
    redis_url: str, prefix: str, queue_name: str, celery_client: Celery
) -> None:
    worker = PreforkWorker(redis_url, prefix, queue_name, ["-P", "prefork", "-c", "2"], {})
    try:
        worker.wait_for_output("ready.")
        pids = {celery_client.send_task("prefork_app.pid").get(timeout=20) for _ in range(4)}
        replies = celery_client.control.inspect(destination=[f"{queue_name}@t"], timeout=5).stats()
        pool = replies[f"{queue_name}@t"]["pool"]
        assert pool["max-concurrency"] == 2 and len(pool["processes"]) == 2
        assert pids <= set(pool["processes"]) and worker.proc.pid not in pool["processes"]
        assert pool["writes"]["strategy"] == "fair" and pool["writes"]["inqueues"]["total"] == 2
    finally:
        code = worker.stop()
    assert code == 0, worker.output

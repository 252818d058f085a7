"""``worker --metrics-port``: Prometheus metrics scraped over HTTP from a real worker process (Redis) and read
back with prometheus-client's own parser; counters move as tasks run."""

from __future__ import annotations

import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import WorkerProcess

from celeriac import App

parser = pytest.importorskip("prometheus_client.parser")


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in parser.text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], metric: str, **labels: str) -> float:
    return samples.get((metric, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_what_the_worker_does(redis_url: str, prefix: str) -> None:
    worker = WorkerProcess(
        redis_url, ["-n", "metrics@itest", "--metrics-port", "0", "--without-mingle"], env={"TEST_KEYPREFIX": prefix}
    )
    try:
        worker.wait_for_output("ready.")
        found = re.search(r"Metrics on http://127\.0\.0\.1:(\d+)/metrics", worker.output)
        assert found, worker.output
        port = int(found.group(1))
        app = App("taskapp", broker=redis_url)
        app.conf.broker_transport_options = {"global_keyprefix": prefix}
        app.conf.result_backend_transport_options = {"global_keyprefix": prefix}
        try:
            assert app.send_task("taskapp.add", (2, 3)).get(timeout=20) == 5
            with pytest.raises(Exception, match="boom"):
                app.send_task("taskapp.fail", ("boom",)).get(timeout=20)
            # A countdown is not queueing: the wait counts from the ETA, so it lands far below the 2 s delay.
            assert app.send_task("taskapp.aadd", (1, 1), countdown=2).get(timeout=20) == 2
        finally:
            app.close()
        deadline = time.monotonic() + 20
        while True:  # the result is stored before the listeners hear of the end: wait for the counters
            samples = scrape(port)
            if value(samples, "celeriac_tasks_total", name="taskapp.fail", state="FAILURE") == 1:
                break
            assert time.monotonic() < deadline, samples
            time.sleep(0.05)
        assert value(samples, "celeriac_tasks_total", name="taskapp.add", state="RECEIVED") == 1
        assert value(samples, "celeriac_tasks_total", name="taskapp.add", state="STARTED") == 1
        assert value(samples, "celeriac_tasks_total", name="taskapp.add", state="SUCCESS") == 1
        assert value(samples, "celeriac_task_runtime_seconds_count", name="taskapp.add") == 1
        assert value(samples, "celeriac_task_queue_wait_seconds_count", name="taskapp.fail") == 1
        assert value(samples, "celeriac_task_queue_wait_seconds_count", name="taskapp.aadd") == 1
        assert value(samples, "celeriac_task_queue_wait_seconds_bucket", name="taskapp.aadd", le="1.0") == 1
        assert value(samples, "celeriac_worker_up") == 1 and value(samples, "celeriac_worker_concurrency") == 8
        assert value(samples, "process_resident_memory_bytes") > 0
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nope", timeout=5)
    finally:
        worker.stop()

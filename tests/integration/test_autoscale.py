"""``--autoscale MAX,MIN`` on a real worker process (Redis): up under load, down when idle, as ``inspect stats``
shows it (to celeriac's and to Celery's client), and the ``autoscale``/``pool_grow``/``pool_shrink`` commands."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from celeriac import App

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scalekit import SRC, Ledger, ScaleWorker, wait_until, write_app

NODE = "scale@itest"


@pytest.fixture
def celery_client(redis_url: str, prefix: str) -> Iterator[Celery]:
    app = Celery("client", broker=redis_url, set_as_current=False)
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    yield app
    app.close()


def autoscaler(app: App) -> dict[str, Any]:
    stats = app.control.inspect(destination=[NODE], timeout=2.0).stats()
    info: dict[str, Any] = stats[NODE]["autoscaler"]
    return info


def control(app: App, command: str, **arguments: Any) -> Any:
    replies = getattr(app.control, command)(destination=[NODE], reply=True, timeout=2.0, **arguments)
    return replies[0][NODE]


def test_grows_under_load_shrinks_when_idle(
    tmp_path: Path, redis_url: str, prefix: str, producer: App, celery_client: Celery
) -> None:
    write_app(tmp_path)
    settings = {"worker_autoscaler_keepalive": 1.0}
    args = ["-P", "asyncio", "--autoscale", "2,6", "-n", NODE, "--without-mingle", "--without-gossip"]
    worker = ScaleWorker(tmp_path, redis_url, args, prefix=prefix, settings=settings)
    try:
        worker.wait_for_output("ready.")
        assert autoscaler(producer) == {"max": 6, "min": 2, "current": 2, "qty": 0}
        stats = producer.control.inspect(destination=[NODE], timeout=2.0).stats()[NODE]
        assert stats["prefetch_count"] == 6 * 4  # the window is the maximum's, so waiting work is seen
        release = tmp_path / "release"
        for index in range(10):
            producer.send_task("scaleapp.hold", [f"t{index}", str(release)])
        ledger = Ledger(tmp_path / "ledger")
        full = {"max": 6, "min": 2, "current": 6, "qty": 10}
        wait_until(lambda: autoscaler(producer) == full, 30, "grown to max with all ten tasks held")
        wait_until(lambda: len(ledger.count("start")) == 6, 30, "six tasks running")
        assert autoscaler(producer)["current"] == 6  # four wait for a slot: max is max
        # Celery's own client reads the same shape (what `celery inspect stats` and Flower show).
        celery_stats = celery_client.control.inspect(destination=[NODE], timeout=2.0).stats()
        assert celery_stats[NODE]["autoscaler"] == {"max": 6, "min": 2, "current": 6, "qty": 10}
        release.touch()
        wait_until(lambda: len(ledger.count("done")) == 10, 30, "every task done")
        wait_until(lambda: autoscaler(producer)["current"] == 2, 30, "the pool shrinks back to min")
        assert "Scaling up" in worker.output and "Scaling down" in worker.output
    finally:
        assert worker.stop() == 0


def test_autoscale_pool_grow_and_pool_shrink_commands(
    tmp_path: Path, redis_url: str, prefix: str, producer: App, celery_client: Celery
) -> None:
    write_app(tmp_path)
    args = ["-P", "threads", "--autoscale", "4,1", "-n", NODE, "--without-mingle", "--without-gossip"]
    worker = ScaleWorker(tmp_path, redis_url, args, prefix=prefix)
    try:
        worker.wait_for_output("ready.")
        # As Celery 5.7: under autoscale the range is what changes, not the pool.
        refusal = "pool_grow is not supported with autoscale. Adjust autoscale range instead."
        assert control(producer, "pool_grow", n=2) == {"error": refusal}
        assert control(producer, "pool_shrink", n=1) == {"error": refusal.replace("grow", "shrink")}
        assert control(producer, "autoscale", max=8, min=3) == {"ok": "autoscale now max=8 min=3"}
        assert autoscaler(producer) == {"max": 8, "min": 3, "current": 3, "qty": 0}  # min raised: grown now
        stats = producer.control.inspect(destination=[NODE], timeout=2.0).stats()[NODE]
        assert stats["prefetch_count"] == 8 * 4 and stats["pool"]["max-concurrency"] == 3
        assert control(producer, "autoscale", max=2, min=1) == {"ok": "autoscale now max=2 min=1"}
        assert autoscaler(producer)["current"] == 2  # max lowered below the pool: shrunk now
        assert control(producer, "autoscale", max=2, min=5) == {"error": "ValueError('autoscale min 5 is above max 2')"}
        # Celery's client sends the same command and reads the same reply.
        reply = celery_client.control.autoscale(6, 2, destination=[NODE], reply=True, timeout=2.0)
        assert reply == [{NODE: {"ok": "autoscale now max=6 min=2"}}]
    finally:
        assert worker.stop() == 0


def test_without_autoscale_the_command_says_so_and_bad_values_are_one_line_errors(
    tmp_path: Path, redis_url: str, prefix: str, producer: App
) -> None:
    write_app(tmp_path)
    worker = ScaleWorker(tmp_path, redis_url, ["-n", NODE, "--without-mingle", "--without-gossip"], prefix=prefix)
    try:
        worker.wait_for_output("ready.")
        assert control(producer, "autoscale", max=4, min=1) == {"error": "ValueError('Autoscale not enabled')"}
    finally:
        assert worker.stop() == 0
    env = {"PYTHONPATH": f"{tmp_path}:{SRC}", "CELERIAC_BROKER_URL": redis_url, "SCALE_LEDGER": str(tmp_path / "l")}
    for value, words in [("ten", "integers"), ("1,2,3", "one or two"), ("0", "at least 1"), ("-1,4", "at least 0")]:
        done = subprocess.run(
            [sys.executable, "-m", "celeriac", "-A", "scaleapp", "worker", f"--autoscale={value}"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "--autoscale" in lines[0] and words in lines[0], done.stderr

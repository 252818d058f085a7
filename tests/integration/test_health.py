"""Health checks for orchestrators on a real worker: ``/healthz``, ``/readyz`` (which flips while a private
``redis-server`` is down) and ``celeriac status --node`` (exit 1 for a missing or frozen worker)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from relkit import PrivateRedis, free_port
from scalekit import SRC, ScaleWorker, wait_until, write_app

from celeriac import App
from celeriac.cli.status import check_heartbeat
from celeriac.events.dispatcher import event_message

NODE = "health@itest"


@pytest.fixture
def private_redis(tmp_path: Path, redis_url: str) -> Iterator[PrivateRedis]:  # redis_url: skip without Redis
    directory = tmp_path / "redis"
    directory.mkdir()
    server = PrivateRedis(directory)
    server.start()
    yield server
    server.kill()


def get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def status(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{SRC}", "CELERIAC_BROKER_URL": url}
    env["SCALE_LEDGER"] = str(tmp_path / "ledger")
    command = [sys.executable, "-m", "celeriac", "-A", "scaleapp", "status", *args]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_healthz_readyz_and_status_node(tmp_path: Path, private_redis: PrivateRedis) -> None:
    write_app(tmp_path)
    port = free_port()
    args = ["-n", NODE, "--health-port", str(port), "--without-mingle", "--without-gossip"]
    worker = ScaleWorker(tmp_path, private_redis.url, args)
    try:
        worker.wait_for_output("ready.")
        worker.wait_for_output(f"Health checks on http://127.0.0.1:{port}/healthz")
        code, body = get(port, "/healthz")
        assert code == 200 and body["status"] == "ok" and body["pid"] == worker.proc.pid
        assert get(port, "/readyz")[0] == 200
        assert get(port, "/metrics")[0] == 404

        alive = status(tmp_path, private_redis.url, "--node", NODE)
        assert alive.returncode == 0 and f"-> {NODE}: OK (heartbeat" in alive.stdout, alive.stderr
        missing = status(tmp_path, private_redis.url, "--node", "ghost@itest", "--max-age", "0.5")
        assert missing.returncode == 1 and "ghost@itest: no heartbeat within" in missing.stderr

        # A frozen worker (its loop stuck) sends no heartbeat: the probe says so.
        worker.signal(signal.SIGSTOP)
        try:
            frozen = status(tmp_path, private_redis.url, "--node", NODE, "--max-age", "1")
        finally:
            worker.signal(signal.SIGCONT)
        assert frozen.returncode == 1 and f"{NODE}: no heartbeat within" in frozen.stderr

        # The broker goes away: not ready (503 with the reason), still alive; back when the broker is.
        private_redis.kill()
        wait_until(lambda: get(port, "/readyz")[0] == 503, 30, "/readyz says 503")
        assert get(port, "/readyz")[1] == {"status": "unavailable", "reason": "not connected to the broker"}
        assert get(port, "/healthz")[0] == 200
        private_redis.start()
        wait_until(lambda: get(port, "/readyz")[0] == 200, 60, "/readyz is 200 again")
    finally:
        code = worker.stop()
    assert code == 0


def test_bad_or_taken_health_port_is_a_one_line_error(tmp_path: Path) -> None:
    write_app(tmp_path)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{SRC}", "SCALE_LEDGER": str(tmp_path / "ledger")}
    env["CELERIAC_BROKER_URL"] = f"sqlite:///{tmp_path / 'db'}"
    command = [sys.executable, "-m", "celeriac", "-A", "scaleapp", "worker", "--health-port"]
    done = subprocess.run([*command, "70000"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    expected = "celeriac: error: --health-port must be a TCP port (0-65535), not 70000"
    assert done.stderr.strip().splitlines() == [expected]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([*command, str(port)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    expected = f"celeriac: error: --health-port: cannot listen on 127.0.0.1:{port}: address already in use"
    assert done.stderr.strip().splitlines()[-1] == expected


async def test_status_node_calls_an_old_heartbeat_stale(tmp_path: Path) -> None:
    """A heartbeat older than --max-age (one sent while the worker was cut off, flushed late) is not health."""
    app = App("stale", broker=f"sqlite:///{tmp_path / 'db'}")
    checking = asyncio.create_task(check_heartbeat(app, "old@itest", 1.0))
    old = {"hostname": "old@itest", "timestamp": time.time() - 60, "type": "worker-heartbeat", "freq": 2.0}
    async with app.make_transport() as transport:
        while not checking.done():  # until the check ends: it hears one of these once it listens
            await transport.fanout("celeryev/worker.heartbeat", event_message(old, "old@itest"))
            await asyncio.wait({checking}, timeout=0.1)
    healthy, text = checking.result()
    assert not healthy and text.startswith("old@itest: heartbeat is stale (60.")
    await app.aclose()

"""Helpers of the reliability tests: a ledger of publishes and executions, worker subprocesses, a private Redis,
a RabbitMQ virtual host of a test's own (`RabbitVhost`).

The ledger records every publish the broker confirmed and every execution (tasks append their tag to a file,
across processes); `Ledger.report` prints the lost and duplicated counts. `PrivateRedis` is a ``redis-server`` of
the test's own (free port, AOF ``always`` in a temporary directory) that a test may SIGKILL and restart.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
from procs import LoggedProcess  # noqa: E402


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``predicate`` until true; AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.02)


class Ledger:
    """Confirmed publishes (kept here) and executions (lines of ``path``, appended by the tasks)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.published: list[str] = []

    def executed(self) -> Counter[str]:
        text = self.path.read_text() if self.path.exists() else ""
        return Counter(line for line in text.splitlines() if line)

    def ran(self, tags: Sequence[str]) -> int:
        """How many of ``tags`` ran at least once."""
        done = self.executed()
        return sum(1 for tag in tags if done[tag])

    def report(self, what: str) -> tuple[int, int]:
        """Print and return ``(lost, duplicated)``: published tags never run, and runs beyond the first."""
        done = self.executed()
        lost = sum(1 for tag in self.published if not done[tag])
        duplicated = sum(done[tag] - 1 for tag in self.published if done[tag] > 1)
        print(f"\n[ledger] {what}: published={len(self.published)} lost={lost} duplicated={duplicated}")
        return lost, duplicated


class Worker(LoggedProcess):
    """A ``celeriac -A relapp worker`` subprocess."""

    def __init__(self, url: str, prefix: str, ledger: Ledger, args: Sequence[str], env: dict[str, str]) -> None:
        full_env = {
            **os.environ,
            "CELERIAC_BROKER_URL": url,
            "PYTHONPATH": str(HERE),
            "REL_KEYPREFIX": prefix,
            "REL_LEDGER": str(ledger.path),
            **env,
        }
        full_env.pop("CELERIAC_RESULT_BACKEND", None)
        command = [sys.executable, "-m", "celeriac", "-A", "relapp", "worker", "-l", "info", *args]
        super().__init__(command, HERE, full_env)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A ``redis-server`` owned by one test: AOF ``always`` in ``directory``, on a free port; kill -9 and restart."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no",
        ]  # fmt: skip
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        try:
            wait_until(lambda: self._answers(client), 20, "private redis-server answers")
        finally:
            client.close()

    @staticmethod
    def _answers(client: redis.Redis) -> bool:
        try:
            return bool(client.ping()) and client.info("persistence").get("loading") == 0
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown save; what the AOF holds is what comes back."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


def rabbitmqctl(*args: str) -> str:
    """Run ``rabbitmqctl -q ARGS`` (the machine's RabbitMQ; the tests run as root); its output."""
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def rabbitmq_available() -> bool:
    """Whether ``rabbitmqctl`` is here and RabbitMQ answers it."""
    if shutil.which("rabbitmqctl") is None:
        return False
    return subprocess.run(["rabbitmqctl", "-q", "status"], capture_output=True, timeout=60).returncode == 0


class RabbitVhost:
    """A RabbitMQ virtual host owned by one test (guest may use it); `delete` removes it with all it holds."""

    def __init__(self, tag: str) -> None:
        self.name = f"celeriac-{tag}-{uuid.uuid4().hex[:8]}"
        self.url = f"amqp://guest:guest@127.0.0.1:5672/{self.name}"
        rabbitmqctl("add_vhost", self.name)
        rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")

    def close_all_connections(self) -> None:
        """RabbitMQ closes every client connection of this virtual host (what a broker restart looks like)."""
        rabbitmqctl("close_all_connections", "-p", self.name, "celeriac reliability test")

    def messages(self, queue: str) -> int | None:
        """Messages (ready + unacked) in ``queue``, None when there is no such queue."""
        for line in rabbitmqctl("list_queues", "-p", self.name, "name", "messages").splitlines():
            name, _, count = line.rpartition("\t")
            if name == queue:
                return int(count)
        return None

    def listing(self) -> str:
        """``name messages_ready messages_unacknowledged arguments`` of every queue (for failure messages)."""
        return rabbitmqctl(
            "list_queues", "-p", self.name, "name", "messages_ready", "messages_unacknowledged", "arguments"
        )

    def delete(self) -> None:
        rabbitmqctl("delete_vhost", self.name)


def open_vhost(tag: str) -> RabbitVhost:
    """A new `RabbitVhost`; skips the test when RabbitMQ is not here (fails under CELERIAC_REQUIRE_SERVICES=1)."""
    import pytest

    if not rabbitmq_available():
        if os.environ.get("CELERIAC_REQUIRE_SERVICES") == "1":
            pytest.fail("RabbitMQ (rabbitmqctl) is not available (CELERIAC_REQUIRE_SERVICES=1)")
        pytest.skip("RabbitMQ (rabbitmqctl) is not available")
    return RabbitVhost(tag)

"""Where a benchmark run puts its messages: ``--broker`` (sqlite | redis | amqp | a URL) made into an isolated place.

Each run gets a place of its own and leaves nothing behind:

* SQLite: a fresh database file in a new temporary directory, deleted afterwards;
* Redis (default ``redis://127.0.0.1:6379/13``): a fresh ``global_keyprefix`` ``celeriac-bench:<id>:`` for the
  broker *and* the results of both celeriac and Celery, so every key the run creates (queue lists, bindings,
  ``unacked`` bookkeeping, results) is under it; afterwards exactly those keys are deleted. The server is
  never flushed or restarted, and other users' keys in the same database are never touched.
* RabbitMQ (``amqp``: guest on ``127.0.0.1:5672``): a fresh virtual host ``celeriac-bench-<id>`` made with
  ``rabbitmqctl`` and deleted afterwards, with every queue and exchange in it. Results travel as ``rpc://``
  messages (Celery's and celeriac's natural choice on RabbitMQ); Dramatiq's go to Redis (it has no rpc results).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

DEFAULT_REDIS = "redis://127.0.0.1:6379/13"
DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672"
QUEUE = "celery"  # both apps' default queue


@dataclass(frozen=True)
class Place:
    """An isolated broker location for one run.

    Attributes:
        kind: ``"sqlite"``, ``"redis"`` or ``"amqp"``.
        url: the broker URL (results go to the same store, except on RabbitMQ: ``rpc://``).
        keyprefix: the Redis key prefix of this run ("" for SQLite and RabbitMQ).
        workdir: a temporary directory for this run (logs; the SQLite file).
    """

    kind: str
    url: str
    keyprefix: str
    workdir: Path

    @property
    def result_url(self) -> str:
        """Where results go: ``rpc://`` on RabbitMQ, else the broker's own store."""
        return "rpc://" if self.kind == "amqp" else self.url

    def env(self) -> dict[str, str]:
        """The environment variables `benchapp`, `celeryapp` and `dramatiqapp` read."""
        return {"BENCH_BROKER_URL": self.url, "BENCH_KEYPREFIX": self.keyprefix, "BENCH_RESULT_URL": self.result_url}


def kind_of(spec: str) -> str:
    """``"sqlite"``, ``"redis"`` or ``"amqp"`` for a ``--broker`` value; ValueError for anything else."""
    scheme = spec.split(":", 1)[0]
    if scheme in {"sqlite", "redis", "rediss"}:
        return "sqlite" if scheme == "sqlite" else "redis"
    if scheme in {"amqp", "pyamqp"}:
        return "amqp"
    raise ValueError(f"--broker must be sqlite, redis, amqp or a sqlite:// / redis:// / amqp:// URL, not {spec!r}")


@contextlib.contextmanager
def isolated(spec: str) -> Iterator[Place]:
    """A fresh place for one run on the broker ``spec``; its keys or files are removed when the block ends."""
    kind = kind_of(spec)
    workdir = Path(tempfile.mkdtemp(prefix="celeriac-bench-"))
    try:
        if kind == "sqlite":
            url = spec if "://" in spec else f"sqlite:///{workdir / 'broker.db'}"
            yield Place("sqlite", url, "", workdir)
        elif kind == "amqp":
            base = spec.split("://", 1)[1].split("/", 1)[0] if "://" in spec else DEFAULT_AMQP.split("://", 1)[1]
            vhost = f"celeriac-bench-{uuid.uuid4().hex[:12]}"
            _rabbitmqctl("add_vhost", vhost)
            try:
                _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
                yield Place("amqp", f"amqp://{base}/{vhost}", "", workdir)
            finally:
                _rabbitmqctl("delete_vhost", vhost)
        else:
            url = spec if "://" in spec else DEFAULT_REDIS
            prefix = f"celeriac-bench:{uuid.uuid4().hex[:12]}:"
            try:
                yield Place("redis", url, prefix, workdir)
            finally:
                delete_prefixed(url, prefix)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


def rabbitmq_pid() -> int | None:
    """The RabbitMQ server's (beam.smp) process id when it runs on this machine, else None."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip() == "beam.smp":
                    return int(proc.name)
            except OSError:
                continue
    return None


def broker_pid(place: Place) -> int | None:
    """The broker server's process id when it runs on this machine (Redis or RabbitMQ), else None."""
    if place.kind == "redis":
        return redis_server_pid(place.url)
    if place.kind == "amqp":
        return rabbitmq_pid()
    return None


def delete_prefixed(url: str, prefix: str) -> int:
    """Delete the keys under this run's own ``prefix`` (found with SCAN); return how many."""
    if not prefix.startswith("celeriac-bench:") or any(c in prefix for c in "*?[]\\"):
        raise ValueError(f"refusing to delete keys outside the benchmark's own prefixes: {prefix!r}")
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        return len(keys)
    finally:
        client.close()


def redis_server_pid(url: str) -> int | None:
    """The Redis server's process id when it runs on this machine (INFO), else None."""
    client = redis.Redis.from_url(url)
    try:
        pid = int(client.info("server")["process_id"])
    except (redis.RedisError, KeyError, ValueError):
        return None
    finally:
        client.close()
    return pid if Path(f"/proc/{pid}").exists() else None

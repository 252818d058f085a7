"""The ``inspect stats`` reply of a worker, shaped as Celery's (celery-wire.md §5.6)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from celeriac.control.shapes import masked

if TYPE_CHECKING:
    from celeriac.worker.worker import Worker

_RUSAGE_FIELDS = (
    "utime",
    "stime",
    "maxrss",
    "ixrss",
    "idrss",
    "isrss",
    "minflt",
    "majflt",
    "nswap",
    "inblock",
    "oublock",
    "msgsnd",
    "msgrcv",
    "nsignals",
    "nvcsw",
    "nivcsw",
)


def rusage() -> dict[str, Any] | str:
    """The process's resource usage, or ``"N/A"`` where the platform has none."""
    try:
        import resource
    except ImportError:
        return "N/A"
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {name: getattr(usage, f"ru_{name}") for name in _RUSAGE_FIELDS}


def broker_info(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """The ``broker`` dict: where the broker is (no password)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ("localhost" if scheme.startswith("redis") or scheme.startswith("amqp") else None)
    return {
        "hostname": host,
        "userid": parts.username,
        "virtual_host": parts.path.lstrip("/") or ("/" if scheme.startswith("amqp") else "0"),
        "port": parts.port,
        "insist": False,
        "ssl": scheme in ("rediss", "amqps"),
        "transport": scheme,
        "connect_timeout": 4,
        "transport_options": {key: masked(key, value) for key, value in options.items()},
        "login_method": None,
        "uri_prefix": None,
        "heartbeat": 120.0,
        "failover_strategy": "round-robin",
        "alternates": [],
    }


def worker_stats(worker: Worker) -> dict[str, Any]:
    """The whole ``stats`` reply of ``worker``."""
    state = worker.state
    conf = worker.app.conf
    pool_stats = worker.pool.statistics()
    pool = type(worker.pool)
    return {
        "total": dict(state.total),
        "pid": worker.pid,
        "clock": str(state.clock.value),
        "uptime": int(time.monotonic() - worker.started_at),
        "pool": {
            "implementation": f"{pool.__module__}:{pool.__qualname__}",
            "max-concurrency": pool_stats.max_concurrency,
            "processes": [worker.pid],
            "max-tasks-per-child": "N/A",
            "put-guarded-by-semaphore": False,
            "timeouts": [conf.task_soft_time_limit or 0, conf.task_time_limit or 0],
            "running": pool_stats.running,
            "waiting": pool_stats.waiting,
            "completed": pool_stats.completed,
        },
        "broker": broker_info(worker.app.broker_url, dict(conf.broker_transport_options)),
        "prefetch_count": worker.prefetch_count,
        "rusage": rusage(),
        "sw_ident": "py-celeriac",
    }

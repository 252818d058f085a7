"""The ``inspect stats`` reply of a worker, shaped as Celery's (celery-wire.md §5.6; `StatsReply`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from celeriac.control.replies import BrokerInfo, PoolStats, StatsReply
from celeriac.control.shapes import masked
from celeriac.transports.base import BrokerAddress

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


def broker_info(address: BrokerAddress, options: dict[str, Any]) -> BrokerInfo:
    """The ``broker`` dict: where the broker is (as its transport says; no password)."""
    return {
        "hostname": address.hostname,
        "userid": address.userid,
        "virtual_host": address.virtual_host,
        "port": address.port,
        "insist": False,
        "ssl": address.ssl,
        "transport": address.scheme,
        "connect_timeout": 4,
        "transport_options": {key: masked(key, value) for key, value in options.items()},
        "login_method": None,
        "uri_prefix": None,
        "heartbeat": 120.0,
        "failover_strategy": "round-robin",
        "alternates": [],
    }


def writes(per_child: dict[int, int], busy: int) -> dict[str, Any]:
    """Celery prefork's ``writes``: bodies sent in all, and each child's share of them."""
    total = sum(per_child.values())
    shares = [count / total if total else 0.0 for count in per_child.values()]
    return {
        "total": total,
        "avg": f"{sum(shares) / len(shares) if shares else 0:.2f}",
        "all": ", ".join(f"{share:.2f}" for share in shares),
        "raw": ", ".join(str(count) for count in per_child.values()),
        "strategy": "fair",
        "inqueues": {"total": len(per_child), "active": busy},
    }


def pool_section(worker: Worker) -> PoolStats:
    """The ``pool`` dict: Celery's keys (child pids for prefork, the worker's pid otherwise) and our counters."""
    conf = worker.app.conf
    stats = worker.pool.statistics()
    pool = type(worker.pool)
    section: PoolStats = {
        "implementation": f"{pool.__module__}:{pool.__qualname__}",
        "max-concurrency": stats.max_concurrency,
        "processes": list(stats.processes) or [worker.pid],
        "max-tasks-per-child": stats.max_tasks_per_child or "N/A",
        "put-guarded-by-semaphore": False,
        "timeouts": [conf.task_soft_time_limit or 0, conf.task_time_limit or 0],
        "running": stats.running,
        "waiting": stats.waiting,
        "completed": stats.completed,
    }
    if stats.writes is not None:
        section["writes"] = writes(stats.writes, stats.running)
    return section


def worker_stats(worker: Worker, broker: BrokerAddress) -> StatsReply:
    """The whole ``stats`` reply of ``worker``, whose transport is at ``broker``."""
    state = worker.state
    conf = worker.app.conf
    reply: StatsReply = {
        "total": dict(state.total),
        "pid": worker.pid,
        "clock": str(state.clock.value),
        "uptime": int(time.monotonic() - worker.started_at),
        "pool": pool_section(worker),
        "broker": broker_info(broker, dict(conf.broker_transport_options)),
        "prefetch_count": worker.prefetch_count,
        "rusage": rusage(),
        "sw_ident": "py-celeriac",
    }
    autoscaler = worker.autoscaler
    if autoscaler is not None:
        reply["autoscaler"] = autoscaler.info()
    return reply

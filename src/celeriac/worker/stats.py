"""The ``inspect stats`` reply of a worker, shaped as Celery's (celery-wire.md §5.6; `StatsReply`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from celeriac.control.replies import BrokerInfo, StatsReply
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


def worker_stats(worker: Worker, broker: BrokerAddress) -> StatsReply:
    """The whole ``stats`` reply of ``worker``, whose transport is at ``broker``."""
    state = worker.state
    conf = worker.app.conf
    pool_stats = worker.pool.statistics()
    pool = type(worker.pool)
    reply: StatsReply = {
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
        "broker": broker_info(broker, dict(conf.broker_transport_options)),
        "prefetch_count": worker.prefetch_count,
        "rusage": rusage(),
        "sw_ident": "py-celeriac",
    }
    autoscaler = worker.autoscaler
    if autoscaler is not None:
        reply["autoscaler"] = autoscaler.info()
    return reply

"""Settings: how a worker runs: pool, prefetch, events, control."""

from __future__ import annotations

from celeriac.settings.setting import NUM, OPT_NUM, OPT_STR, Setting, SettingsBase


class WorkerSettings(SettingsBase):
    """How a worker runs: pool, prefetch, events, control."""

    __slots__ = ()

    worker_concurrency = Setting[int | None](
        None, (int, type(None)), "default: 8 for asyncio/threads, CPUs for prefork"
    )
    worker_pool = Setting[str]("asyncio", (str,))
    worker_event_loop = Setting[str]("auto", (str,), "auto (uvloop when installed), asyncio or uvloop")
    worker_prefetch_multiplier = Setting[int](4, (int,))
    worker_send_task_events = Setting[bool](False, (bool,))
    worker_hostname = Setting[str | None](None, OPT_STR)
    worker_heartbeat_interval = Setting[float](2.0, NUM)
    worker_enable_remote_control = Setting[bool](True, (bool,))
    worker_state_db = Setting[str | None](None, OPT_STR)
    worker_log_format = Setting[str]("[%(asctime)s: %(levelname)s/%(processName)s] %(message)s", (str,))
    worker_max_message_bytes = Setting[int](
        64 * 1024 * 1024, (int,), "largest task body, raw or decompressed; a bigger one is rejected as undecodable"
    )
    worker_control_disabled = Setting[list[str] | tuple[str, ...]](
        (), (list, tuple), "remote-control commands this worker refuses (by name)"
    )
    worker_control_readonly = Setting[bool](
        False, (bool,), "answer inspect commands only; refuse every control command"
    )
    control_signing_key = Setting[str | None](
        None, OPT_STR, "shared secret: callers sign control commands, workers ignore unsigned or badly signed ones"
    )

    # scaling and shutdown
    worker_autoscaler = Setting[str | None](
        None, OPT_STR, "'MAX,MIN' (or 'MAX'): pool size follows the work between MIN and MAX (--autoscale)"
    )
    worker_autoscaler_keepalive = Setting[float](
        30.0, NUM, "seconds without new work before the autoscaler shrinks the pool"
    )
    worker_soft_shutdown_timeout = Setting[float | None](
        None, OPT_NUM, "seconds a warm shutdown waits for running tasks before requeueing them; None: forever"
    )
    worker_health_port = Setting[int | None](None, (int, type(None)), "serve /healthz and /readyz on this port")
    worker_metrics_port = Setting[int | None](None, (int, type(None)), "serve Prometheus /metrics on this port")
    worker_metrics_address = Setting[str]("127.0.0.1", (str,), "address of the metrics server")
    worker_health_address = Setting[str](
        "127.0.0.1", (str,), "address of the health server (0.0.0.0 for a Kubernetes httpGet probe)"
    )

    # prefork
    worker_pool_start_method = Setting[str]("fork", (str,), "how prefork starts children: fork or spawn")
    worker_max_tasks_per_child = Setting[int | None](
        None, (int, type(None)), "prefork: a child is replaced after this many tasks (None: never)"
    )
    worker_max_memory_per_child = Setting[int | None](
        None, (int, type(None)), "prefork: KiB of resident memory after a task above which the child is replaced"
    )

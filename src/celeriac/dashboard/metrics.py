"""The dashboard's Prometheus metrics, in a registry of its own (never the process-global one)."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from celeriac.dashboard.store import Observed

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, float("inf"))


class Metrics:
    """Counters and histograms fed by the ingest loop; gauges set from the broker at each scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.tasks = Counter(
            "celeriac_tasks", "Task events seen, by task name and state", ["name", "state"], registry=r
        )
        self.runtime = Histogram(
            "celeriac_task_runtime_seconds", "Task run time", ["name"], buckets=BUCKETS, registry=r
        )
        self.wait = Histogram(
            "celeriac_task_queue_wait_seconds", "Time from sent to started", ["name"], buckets=BUCKETS, registry=r
        )
        self.redeliveries = Counter(
            "celeriac_task_redeliveries", "Tasks received again without a retry", ["name"], registry=r
        )
        self.depth = Gauge("celeriac_queue_depth", "Messages waiting in a queue", ["queue"], registry=r)
        self.oldest = Gauge(
            "celeriac_queue_oldest_age_seconds", "Age of the oldest waiting message", ["queue"], registry=r
        )
        self.workers_online = Gauge("celeriac_workers_online", "Workers with a recent heartbeat", registry=r)
        self.dead = Gauge("celeriac_dead_lettered", "Messages in <queue>.dead", ["queue"], registry=r)

    def observe(self, seen: Observed) -> None:
        """Count one ingested batch."""
        for name, state in seen.states:
            self.tasks.labels(name, state).inc()
        for name, seconds in seen.runtimes:
            self.runtime.labels(name).observe(seconds)
        for name, seconds in seen.waits:
            self.wait.labels(name).observe(seconds)
        for name in seen.redeliveries:
            self.redeliveries.labels(name).inc()

    def render(
        self,
        depths: Mapping[str, int],
        oldest: Mapping[str, float],
        dead: Mapping[str, int],
        online: int,
    ) -> bytes:
        """The exposition text, gauges set to what the broker says now (labels of gone queues dropped)."""
        for gauge, values in ((self.depth, depths), (self.oldest, oldest), (self.dead, dead)):
            gauge.clear()
            for queue, value in values.items():
                gauge.labels(queue).set(value)
        self.workers_online.set(online)
        return generate_latest(self.registry)

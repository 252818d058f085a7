"""WorkerNode: the worker as remote-control commands see it — the `ControlNode` the built-in handlers drive.

It reaches the worker's parts through the consumer's steps (Tasks for the strategy and queue consumer, Events
for the dispatcher, Heart and Gossip when included), so a command never reaches for a global.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from celeriac._version import __version__
from celeriac.control.arguments import MAX_POOL, MAX_QUEUES, summarize
from celeriac.control.node import ControlNode, RequestKind, TaskRequest, TaskTable
from celeriac.control.replies import StatsReply
from celeriac.worker.consumer.events import Events
from celeriac.worker.consumer.gossip import Gossip
from celeriac.worker.consumer.heart import Heart
from celeriac.worker.consumer.tasks import Tasks
from celeriac.worker.policy import PolicyCache
from celeriac.worker.ratelimit import parse_rate
from celeriac.worker.stats import worker_stats

if TYPE_CHECKING:
    from celeriac.app.app import App
    from celeriac.protocol.clock import LamportClock
    from celeriac.transports.base import Transport
    from celeriac.worker.consumer.consumer import Consumer
    from celeriac.worker.strategy import Strategy

log = logging.getLogger("celeriac.worker")


class WorkerNode(ControlNode):
    """The `ControlNode` of one consumer (and its worker); declared as one, so mypy checks every member."""

    def __init__(self, consumer: Consumer, transport: Transport) -> None:
        self.consumer = consumer
        self.worker = consumer.worker
        self.transport = transport

    @property
    def hostname(self) -> str:
        return self.worker.hostname

    @property
    def app(self) -> App:
        return self.worker.app

    @property
    def clock(self) -> LamportClock:
        return self.worker.state.clock

    @property
    def version(self) -> str:
        return __version__

    @property
    def app_name(self) -> str:
        return self.app.main or "__main__"

    @property
    def tasks(self) -> TaskTable:
        return self.app.tasks

    def settings(self, with_defaults: bool) -> Mapping[str, Any]:
        conf = self.app.conf
        return conf.as_dict() if with_defaults else conf.changes()

    def _strategy(self) -> Strategy | None:
        blueprint = self.consumer.blueprint
        return blueprint.get(Tasks).strategy if blueprint.has(Tasks) else None

    # -- reading ---------------------------------------------------------------------------------
    def requests(self, kind: RequestKind) -> list[TaskRequest]:
        state = self.worker.state
        held = {"active": state.active, "reserved": state.reserved, "scheduled": state.scheduled}[kind]
        return list(held.values())

    def revoked(self) -> list[str]:
        revoked = self.worker.state.revoked
        revoked.purge()
        return [task_id for task_id, _ in revoked.items()]

    def merge_revoked(self, ids: Iterable[str]) -> None:
        revoked = self.worker.state.revoked
        for task_id in ids:
            if task_id not in revoked:
                revoked.add(task_id)

    def stats(self) -> StatsReply:
        return worker_stats(self.worker, self.transport.address())

    def queues(self) -> list[str]:
        return list(self.worker.queues)

    # -- changing --------------------------------------------------------------------------------
    async def revoke(self, ids: Sequence[str], terminate: bool, signum: int) -> list[str]:
        for task_id in ids:
            self.worker.state.revoked.add(task_id)
        if ids:
            log.info("Tasks flagged as revoked: %s", summarize(ids))  # a 100,000-id revoke stays one short line
        strategy = self._strategy()
        if strategy is None:
            return []
        for request in strategy.revoke_held(ids):  # ETA and rate-limited ones leave now
            await strategy.tracer.revoke(request)
        stopped: list[str] = []
        if terminate:
            for task_id in ids:
                if task_id not in self.worker.state.active:
                    continue
                if strategy.tracer.terminate(task_id, signum):
                    stopped.append(task_id)
                else:
                    log.warning("Task %s runs in a thread and cannot be stopped; it is flagged revoked", task_id)
        return stopped

    async def add_consumer(self, queue: str) -> None:
        tasks = self.consumer.blueprint.get(Tasks)
        if queue not in self.worker.queues and len(self.worker.queues) >= MAX_QUEUES:
            raise ValueError(f"already consuming from {len(self.worker.queues)} queues; at most {MAX_QUEUES}")
        if tasks.queue_consumer is not None and queue not in tasks.queue_consumer.queues:
            await tasks.queue_consumer.add_queue(queue)
        if queue not in self.worker.queues:
            self.worker.queues.append(queue)
        log.info("Started consuming from %s", queue)

    async def cancel_consumer(self, queue: str) -> None:
        tasks = self.consumer.blueprint.get(Tasks)
        if tasks.queue_consumer is not None:
            await tasks.queue_consumer.remove_queue(queue)
        if queue in self.worker.queues:
            self.worker.queues.remove(queue)
        log.info("No longer consuming from %s", queue)

    def set_rate_limit(self, task_name: str, rate: str | None) -> None:
        parse_rate(rate)  # ValueError before anything changes
        self.app.tasks[task_name].rate_limit = rate or None
        strategy = self._strategy()
        if strategy is not None:
            strategy.limiter.reset(task_name)
        log.info("New rate limit for %s: %s", task_name, rate or "none")

    def set_time_limit(self, task_name: str, soft: float | None, hard: float | None) -> None:
        task = self.app.tasks[task_name]
        task.soft_time_limit, task.time_limit = soft, hard
        strategy = self._strategy()
        if strategy is not None:
            strategy.policies = PolicyCache()  # policies merge the limits once: forget them
        log.info("New time limits for %s: soft=%s hard=%s", task_name, soft, hard)

    def set_task_events(self, enabled: bool) -> bool | None:
        dispatcher = self.consumer.blueprint.get(Events).dispatcher if self.consumer.blueprint.has(Events) else None
        if dispatcher is None:
            return None
        changed = dispatcher.enable("task") if enabled else dispatcher.disable("task")
        if changed:
            log.info("Task events %s", "enabled" if enabled else "disabled")
        return changed

    def send_heartbeat(self) -> None:
        if self.consumer.blueprint.has(Heart):
            self.consumer.blueprint.get(Heart).send()

    def election(self, election_id: str, topic: str, action: Any) -> None:
        if self.consumer.blueprint.has(Gossip):
            self.consumer.blueprint.get(Gossip).election(election_id, topic, action)

    def resize_pool(self, delta: int) -> str | None:
        if self.worker.autoscaler is not None:  # Celery 5.7's words: the autoscaler owns the pool's size
            verb = "pool_grow" if delta > 0 else "pool_shrink"
            return f"{verb} is not supported with autoscale. Adjust autoscale range instead."
        pool = self.worker.pool
        wanted = pool.concurrency + delta
        if delta > 0 and wanted > max(MAX_POOL, pool.concurrency):
            raise ValueError(f"the pool would have {wanted} slots; pool_grow stops at {MAX_POOL}")
        if delta < 0 and wanted < 1:
            raise ValueError(f"the pool has {pool.concurrency} slots; it cannot shrink by {-delta}")
        if delta > 0:
            pool.grow(delta)
        elif delta < 0:
            pool.shrink(-delta)
        self.worker.resize(pool.concurrency)
        return None

    def autoscale(self, max_concurrency: int | None, min_concurrency: int | None) -> tuple[int, int]:
        autoscaler = self.worker.autoscaler
        if autoscaler is None:
            raise ValueError("Autoscale not enabled")
        high, low = autoscaler.update(max_concurrency, min_concurrency)
        log.info("Autoscale now max=%d min=%d", high, low)
        return high, low

    def shutdown(self, reason: str | None) -> None:
        log.warning("Got shutdown from remote%s", f": {reason}" if reason else "")
        self.worker.request_shutdown()

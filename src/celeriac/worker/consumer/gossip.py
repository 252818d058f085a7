"""Gossip step: follow the other workers through their worker-* events (celery-wire.md §7.3).

It keeps a `ClusterState` of the workers, calls ``on_node_join`` / ``on_node_leave`` / ``on_node_lost`` (and
the callbacks registered on them) as peers come, say goodbye, or fall silent for ``2 * freq`` seconds (checked
every ``check_interval``), keeps the Lamport clock in step with theirs, and takes part in elections: every
candidate broadcasts ``worker-elect``, everyone acks, and once every alive node acked, all agree on the same
leader: the lowest ``(clock, "hostname.pid")``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from celeriac.errors import ProtocolError, TransportError
from celeriac.events.cluster import ClusterState, WorkerInfo
from celeriac.events.model import EXCHANGE, WORKER_ELECT, WORKER_ELECT_ACK, WORKER_OFFLINE, Event
from celeriac.events.receiver import events_in
from celeriac.protocol.serializers import normalize_accept
from celeriac.transports.base import Subscription
from celeriac.worker.bootsteps import Step
from celeriac.worker.consumer.connection import Connection
from celeriac.worker.consumer.events import Events

if TYPE_CHECKING:
    from celeriac.worker.consumer.consumer import Consumer

log = logging.getLogger("celeriac.worker")

PeerCallback = Callable[[WorkerInfo], None]
ElectionHandler = Callable[[Any], Awaitable[None] | None]
CHECK_INTERVAL = 5.0


class Gossip(Step["Consumer"]):
    """Tracks peers (``--without-gossip`` leaves it out). ``peers`` are the other workers alive now."""

    requires = (Events,)

    def __init__(self) -> None:
        self.state = ClusterState(max_tasks=0)
        self.peers: set[str] = set()
        self.join_callbacks: list[PeerCallback] = []
        self.leave_callbacks: list[PeerCallback] = []
        self.lost_callbacks: list[PeerCallback] = []
        self.election_handlers: dict[str, ElectionHandler] = {}
        self._requests: dict[str, list[tuple[int, str, str, Any]]] = {}
        self._acks: dict[str, set[str]] = {}
        self._consumer: Consumer | None = None
        self._subscription: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._actions: set[asyncio.Future[None]] = set()

    def include_if(self, consumer: Consumer) -> bool:
        return not consumer.worker.without_gossip

    @property
    def check_interval(self) -> float:
        """How often silent peers are looked for."""
        freq = self._consumer.worker.heartbeat_interval if self._consumer else CHECK_INTERVAL
        return min(CHECK_INTERVAL, freq)

    async def start(self, consumer: Consumer) -> None:
        self._consumer = consumer
        self.election_handlers.setdefault("task", self._run_task_action)
        transport = consumer.blueprint.get(Connection).transport
        assert transport is not None
        self._subscription = await transport.subscribe([f"{EXCHANGE}/worker.#"])  # Celery's binding key (§3.2)
        self._tasks = [
            asyncio.create_task(self._listen(consumer, self._subscription), name="gossip"),
            asyncio.create_task(self._check_forever(), name="gossip-check"),
        ]

    async def stop(self, consumer: Consumer) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._subscription is not None:
            with contextlib.suppress(TransportError):
                await self._subscription.close()
            self._subscription = None

    # -- peers -----------------------------------------------------------------------------------
    async def _listen(self, consumer: Consumer, subscription: Subscription) -> None:
        accept = normalize_accept(["json"])
        try:
            async for _, message in subscription:
                try:
                    events = events_in(message, accept)
                except ProtocolError as exc:
                    log.debug("gossip: skipped an unreadable event: %s", exc)
                    continue
                for event in events:
                    event.setdefault("local_received", time.time())
                    try:
                        self.on_event(event)
                    except Exception:  # one odd event must not end gossip
                        log.exception("gossip: error while handling %s", event.get("type"))
        except TransportError as exc:
            consumer.connection_lost(exc)

    def on_event(self, event: Event) -> None:
        """Handle one worker event (own ones only matter for elections)."""
        assert self._consumer is not None
        worker = self._consumer.worker
        hostname = str(event.get("hostname", ""))
        kind = str(event.get("type", ""))
        if kind == WORKER_ELECT:
            self._on_elect(event)
        elif kind == WORKER_ELECT_ACK:
            self._on_elect_ack(event)
        if hostname == worker.hostname or not hostname:
            return
        clock = event.get("clock")
        if isinstance(clock, int) and not isinstance(clock, bool):
            worker.state.clock.adjust(clock)
        self.state.event(event)
        info = self.state.workers[hostname]
        if kind == WORKER_OFFLINE:
            if hostname in self.peers:
                self.peers.discard(hostname)
                self._call(self.on_node_leave, info)
        elif info.alive() and hostname not in self.peers:
            self.peers.add(hostname)
            self._call(self.on_node_join, info)

    async def _check_forever(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval)
            self.check_lost()

    def check_lost(self, now: float | None = None) -> None:
        """Report peers silent for longer than ``2 * freq`` as lost."""
        for hostname in sorted(self.peers):
            info = self.state.workers.get(hostname)
            if info is None or not info.alive(now):
                self.peers.discard(hostname)
                if info is not None:
                    self._call(self.on_node_lost, info)

    def _call(self, hook: PeerCallback, info: WorkerInfo) -> None:
        try:
            hook(info)
        except Exception:
            log.exception("gossip: %s failed for %s", hook.__name__, info.hostname)

    def on_node_join(self, worker: WorkerInfo) -> None:
        """A worker appeared (its first heartbeat, or one after it was lost)."""
        log.info("gossip: %s joined", worker.hostname)
        for callback in self.join_callbacks:
            callback(worker)

    def on_node_leave(self, worker: WorkerInfo) -> None:
        """A worker said goodbye (worker-offline)."""
        log.info("gossip: %s left", worker.hostname)
        for callback in self.leave_callbacks:
            callback(worker)

    def on_node_lost(self, worker: WorkerInfo) -> None:
        """A worker fell silent: no heartbeat for ``2 * freq`` seconds."""
        log.warning("gossip: %s missed heartbeats", worker.hostname)
        for callback in self.lost_callbacks:
            callback(worker)

    # -- elections -------------------------------------------------------------------------------
    def election(self, election_id: str, topic: str, action: Any) -> None:
        """Stand as a candidate in ``election_id`` (the ``election`` remote command)."""
        assert self._consumer is not None
        dispatcher = self._consumer.blueprint.get(Events).dispatcher
        if dispatcher is not None:
            dispatcher.send(WORKER_ELECT, id=election_id, topic=topic, action=action, cver=1)

    def _on_elect(self, event: Event) -> None:
        assert self._consumer is not None
        election_id = str(event.get("id"))
        clock = event.get("clock")
        candidate = (
            clock if isinstance(clock, int) else 0,
            f"{event.get('hostname')}.{event.get('pid')}",
            str(event.get("topic")),
            event.get("action"),
        )
        self._requests.setdefault(election_id, []).append(candidate)
        dispatcher = self._consumer.blueprint.get(Events).dispatcher
        if dispatcher is not None:
            dispatcher.send(WORKER_ELECT_ACK, id=election_id)

    def _on_elect_ack(self, event: Event) -> None:
        assert self._consumer is not None
        election_id = str(event.get("id"))
        if election_id not in self._requests:
            return
        acks = self._acks.setdefault(election_id, set())
        acks.add(str(event.get("hostname")))
        if len(acks) < len(self.peers) + 1:
            return
        _, leader, topic, action = min(self._requests.pop(election_id), key=lambda c: (c[0], c[1]))
        self._acks.pop(election_id, None)
        worker = self._consumer.worker
        if leader != f"{worker.hostname}.{worker.pid}":
            return
        log.info("gossip: elected leader of %s for %s", election_id, topic)
        handler = self.election_handlers.get(topic)
        if handler is not None:
            outcome = handler(action)
            if outcome is not None:
                running = asyncio.ensure_future(outcome)
                self._actions.add(running)
                running.add_done_callback(self._actions.discard)

    async def _run_task_action(self, action: Any) -> None:
        """Topic ``task``: the leader sends the task signature ``action`` (``{"task", "args", "kwargs"}``)."""
        if self._consumer is None or not isinstance(action, dict) or not action.get("task"):
            return
        app = self._consumer.app
        await app.asend_task(str(action["task"]), list(action.get("args") or ()), dict(action.get("kwargs") or {}))

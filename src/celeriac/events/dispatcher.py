"""EventDispatcher: send a node's events to the ``celeryev`` exchange without ever blocking the sender.

`send` stamps an event with the common fields (hostname, utcoffset, pid, Lamport clock, timestamp) and puts it
in a buffer; a flusher task publishes the buffer on the next loop tick. Events of the buffered groups (``task``)
go out together as one ``task.multi`` message whose body is a JSON array of up to ``batch_size`` events;
others (``worker-*``) one per message (celery-wire.md §4.1). While no transport is attached, or publishing
fails, events wait in the buffer; it holds at most ``buffer_limit`` events and drops the oldest beyond that
(counted in ``dropped``). `attach` after a reconnect flushes what waited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from celeriac.errors import TransportError
from celeriac.events.model import EXCHANGE, MULTI_ROUTING_KEY, Event, group_of, routing_key_of, utcoffset
from celeriac.protocol.message import JSON, Message
from celeriac.protocol.serializers import json_dumps
from celeriac.transports.base import Transport

log = logging.getLogger("celeriac.events")

RETRY_DELAY = 1.0  # pause before publishing again after a failure, while still attached


class Clock(Protocol):
    """The Lamport clock events are stamped with."""

    def forward(self) -> int: ...


@dataclass(frozen=True, slots=True)
class DispatcherStatistics:
    """Counters: events published, dropped (buffer full), waiting in the buffer now."""

    sent: int
    dropped: int
    buffered: int


def event_message(payload: Event | list[Event], hostname: str) -> Message:
    """The broker message of one event or a batch: JSON body, header ``hostname``, delivery_mode 1."""
    return Message(
        body=json_dumps(payload).encode("utf-8"),
        content_type=JSON,
        content_encoding="utf-8",
        headers={"hostname": hostname},
        properties={"delivery_mode": 1, "priority": 0},
    )


class EventDispatcher:
    """Sends the events of node ``hostname``.

    Args:
        hostname: the node name every event carries.
        clock: forwarded once per event; the value is the event's ``clock``.
        groups: the enabled groups (``{"worker"}``, ``{"worker", "task"}``...); None enables every group.
        buffer_limit: most events kept while they cannot be published.
        batch_size: most events of a buffered group in one message.
        buffer_groups: the groups sent batched as ``task.multi``.
    """

    def __init__(
        self,
        hostname: str,
        clock: Clock,
        *,
        groups: Iterable[str] | None = None,
        buffer_limit: int = 10_000,
        batch_size: int = 24,
        buffer_groups: Iterable[str] = ("task",),
    ) -> None:
        self.hostname = hostname
        self.clock = clock
        self.pid = os.getpid()
        self._groups: set[str] | None = set(groups) if groups is not None else None
        self.buffer_limit = max(1, buffer_limit)
        self.batch_size = max(1, batch_size)
        self._buffer_groups = frozenset(buffer_groups)
        self._buffer: deque[Event] = deque()
        self._transport: Transport | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self.sent = 0
        self.dropped = 0

    # -- groups ----------------------------------------------------------------------------------
    @property
    def groups(self) -> frozenset[str] | None:
        """The enabled groups (None: all)."""
        return frozenset(self._groups) if self._groups is not None else None

    def enabled_for(self, event_type: str) -> bool:
        """Whether events of this type are sent."""
        return self._groups is None or group_of(event_type) in self._groups

    def group_enabled(self, group: str) -> bool:
        """Whether events of ``group`` are sent (the cheap check for hot paths)."""
        return self._groups is None or group in self._groups

    def enable(self, group: str) -> bool:
        """Enable ``group``; False when it already was."""
        if self._groups is None or group in self._groups:
            return False
        self._groups.add(group)
        return True

    def disable(self, group: str, all_groups: Iterable[str] = ("worker", "task")) -> bool:
        """Disable ``group`` (with every group enabled, the rest of ``all_groups`` stays); False if it was off."""
        if self._groups is None:
            self._groups = set(all_groups)
        if group not in self._groups:
            return False
        self._groups.discard(group)
        return True

    # -- sending ---------------------------------------------------------------------------------
    def send(self, event_type: str, **fields: Any) -> Event | None:
        """Stamp and buffer one event; returns it, or None when its group is disabled. Never blocks."""
        if not self.enabled_for(event_type):
            return None
        event: Event = {
            "hostname": self.hostname,
            "utcoffset": utcoffset(),
            "pid": self.pid,
            "clock": self.clock.forward(),
            **fields,
            "timestamp": time.time(),
            "type": event_type,
        }
        self._push([event])
        self._wake.set()
        return event

    def _push(self, events: list[Event], front: bool = False) -> None:
        if front:
            self._buffer.extendleft(reversed(events))
        else:
            self._buffer.extend(events)
        while len(self._buffer) > self.buffer_limit:
            self._buffer.popleft()  # the oldest goes first
            self.dropped += 1
        if self.dropped and len(self._buffer) == self.buffer_limit:
            log.debug("event buffer full (%d): %d events dropped so far", self.buffer_limit, self.dropped)

    async def flush(self) -> None:
        """Publish everything buffered now. Raises `TransportError` (the events stay buffered) on failure."""
        async with self._lock:
            transport = self._transport
            while self._buffer and transport is not None:
                batch = self._take()
                payload: Event | list[Event] = batch if self._batched(batch[0]) else batch[0]
                key = MULTI_ROUTING_KEY if self._batched(batch[0]) else routing_key_of(str(batch[0]["type"]))
                try:
                    message = event_message(payload, self.hostname)
                except (TypeError, ValueError) as exc:  # a field with no JSON form: drop it, keep going
                    log.error("dropped %d event(s) that cannot be encoded: %s", len(batch), exc)
                    self.dropped += len(batch)
                    continue
                try:
                    await transport.fanout(f"{EXCHANGE}/{key}", message)
                except BaseException:
                    self._push(batch, front=True)
                    raise
                self.sent += len(batch)

    def _batched(self, event: Event) -> bool:
        return group_of(str(event.get("type", ""))) in self._buffer_groups

    def _take(self) -> list[Event]:
        first = self._buffer.popleft()
        batch = [first]
        if self._batched(first):
            while self._buffer and len(batch) < self.batch_size and self._batched(self._buffer[0]):
                batch.append(self._buffer.popleft())
        return batch

    # -- connection ------------------------------------------------------------------------------
    def attach(self, transport: Transport) -> None:
        """Publish through ``transport`` from now on (call on the loop); buffered events go out at once."""
        self._transport = transport
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_forever(), name=f"events {self.hostname}")
        self._wake.set()

    async def detach(self, flush_timeout: float = 0.0) -> None:
        """Stop publishing (events sent meanwhile are buffered); first try to flush for ``flush_timeout`` s."""
        if flush_timeout > 0 and self._transport is not None:
            try:
                async with asyncio.timeout(flush_timeout):
                    await self.flush()
            except (TimeoutError, TransportError) as exc:
                log.warning("%d event(s) not sent before disconnecting: %s", len(self._buffer), exc or "timeout")
        self._transport = None
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except TransportError as exc:
                log.debug("events not published yet (%s); retrying in %.1fs", exc, RETRY_DELAY)
                await asyncio.sleep(RETRY_DELAY)
                self._wake.set()

    def statistics(self) -> DispatcherStatistics:
        """A snapshot of the counters."""
        return DispatcherStatistics(sent=self.sent, dropped=self.dropped, buffered=len(self._buffer))

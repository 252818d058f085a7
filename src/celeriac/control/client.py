"""``app.control``: Celery's remote-control API for callers — broadcast commands, inspect workers.

Every blocking method has an async twin with an ``a`` prefix (``app.control.ping()`` /
``await app.control.aping()``). Commands go over the app's shared producer connection (`App.atransport`).
``inspect()`` methods return ``{node: reply}`` (empty when no node answered within the timeout); control
methods return the list of replies ``[{node: reply}, ...]`` when ``reply=True``, else ``[]`` at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from celeriac._portal import portal
from celeriac.control.pidbox import Mailbox
from celeriac.protocol.clock import LamportClock

if TYPE_CHECKING:
    from celeriac.app.app import App

Replies = list[dict[str, Any]]


def flatten(replies: Replies) -> dict[str, Any]:
    """``[{node: reply}, ...]`` -> ``{node: reply}``."""
    merged: dict[str, Any] = {}
    for reply in replies:
        merged.update(reply)
    return merged


class Inspect:
    """Read-only commands to ``destination`` (None: every node), waiting ``timeout`` s for replies."""

    def __init__(self, control: Control, destination: Sequence[str] | None = None, timeout: float = 1.0,
                 pattern: str | None = None, matcher: str | None = None, limit: int | None = None) -> None:
        self.control = control
        self.destination = list(destination) if destination else None
        self.timeout = timeout
        self.pattern = pattern
        self.matcher = matcher
        self.limit = limit

    async def _arequest(self, method: str, **arguments: Any) -> dict[str, Any]:
        replies = await self.control.abroadcast(
            method, arguments, destination=self.destination, reply=True, timeout=self.timeout,
            pattern=self.pattern, matcher=self.matcher, limit=self.limit,
        )
        return flatten(replies)

    def _request(self, method: str, **arguments: Any) -> dict[str, Any]:
        return portal.run(self._arequest(method, **arguments))

    async def acall(self, method: str, **arguments: Any) -> dict[str, Any]:
        """Any inspect command by name."""
        return await self._arequest(method, **arguments)

    def ping(self) -> dict[str, Any]:
        """``{node: {"ok": "pong"}}``."""
        return self._request("ping")

    async def aping(self) -> dict[str, Any]:
        return await self._arequest("ping")

    def active(self, safe: bool = False) -> dict[str, Any]:
        """Running tasks per node (request-info dicts)."""
        return self._request("active", safe=safe)

    async def aactive(self, safe: bool = False) -> dict[str, Any]:
        return await self._arequest("active", safe=safe)

    def reserved(self) -> dict[str, Any]:
        """Prefetched tasks waiting for a pool slot."""
        return self._request("reserved")

    async def areserved(self) -> dict[str, Any]:
        return await self._arequest("reserved")

    def scheduled(self) -> dict[str, Any]:
        """Tasks waiting for their ETA."""
        return self._request("scheduled")

    async def ascheduled(self) -> dict[str, Any]:
        return await self._arequest("scheduled")

    def revoked(self) -> dict[str, Any]:
        """Revoked ids per node."""
        return self._request("revoked")

    async def arevoked(self) -> dict[str, Any]:
        return await self._arequest("revoked")

    def registered(self, *taskinfoitems: str) -> dict[str, Any]:
        """Registered task names per node (with ``attr=value`` items when asked)."""
        return self._request("registered", taskinfoitems=list(taskinfoitems))

    async def aregistered(self, *taskinfoitems: str) -> dict[str, Any]:
        return await self._arequest("registered", taskinfoitems=list(taskinfoitems))

    def stats(self) -> dict[str, Any]:
        """Statistics per node (celery-wire.md §5.6)."""
        return self._request("stats")

    async def astats(self) -> dict[str, Any]:
        return await self._arequest("stats")

    def active_queues(self) -> dict[str, Any]:
        """Queues consumed per node."""
        return self._request("active_queues")

    async def aactive_queues(self) -> dict[str, Any]:
        return await self._arequest("active_queues")

    def conf(self, with_defaults: bool = False) -> dict[str, Any]:
        """Settings per node (secrets masked)."""
        return self._request("conf", with_defaults=with_defaults)

    async def aconf(self, with_defaults: bool = False) -> dict[str, Any]:
        return await self._arequest("conf", with_defaults=with_defaults)

    def query_task(self, *ids: str) -> dict[str, Any]:
        """Where each id is on each node: ``{node: {id: [state, request-info]}}``."""
        return self._request("query_task", ids=list(ids))

    async def aquery_task(self, *ids: str) -> dict[str, Any]:
        return await self._arequest("query_task", ids=list(ids))

    def report(self) -> dict[str, Any]:
        """A text report per node."""
        return self._request("report")

    async def areport(self) -> dict[str, Any]:
        return await self._arequest("report")

    def clock(self) -> dict[str, Any]:
        """Each node's Lamport clock."""
        return self._request("clock")

    async def aclock(self) -> dict[str, Any]:
        return await self._arequest("clock")


class Control:
    """Remote control of the workers of ``app`` (``app.control``)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.clock = LamportClock()

    def inspect(self, destination: Sequence[str] | None = None, timeout: float = 1.0, pattern: str | None = None,
                matcher: str | None = None, limit: int | None = None) -> Inspect:
        """Read-only commands; see `Inspect`."""
        return Inspect(self, destination, timeout, pattern, matcher, limit)

    async def abroadcast(self, command: str, arguments: Mapping[str, Any] | None = None, *,
                         destination: Sequence[str] | None = None, reply: bool = False, timeout: float = 1.0,
                         limit: int | None = None, pattern: str | None = None,
                         matcher: str | None = None) -> Replies:
        """Send any command; see `celeriac.control.pidbox.Mailbox.call`."""
        mailbox = Mailbox(await self.app.atransport(), self.clock)
        return await mailbox.call(command, arguments, destination=destination, pattern=pattern, matcher=matcher,
                                  reply=reply, timeout=timeout, limit=limit)

    def broadcast(self, command: str, arguments: Mapping[str, Any] | None = None, *,
                  destination: Sequence[str] | None = None, reply: bool = False, timeout: float = 1.0,
                  limit: int | None = None, pattern: str | None = None, matcher: str | None = None) -> Replies:
        """Blocking twin of `abroadcast`."""
        return portal.run(self.abroadcast(command, arguments, destination=destination, reply=reply,
                                          timeout=timeout, limit=limit, pattern=pattern, matcher=matcher))

    def _send(self, command: str, arguments: Mapping[str, Any], **options: Any) -> Replies:
        return self.broadcast(command, arguments, **options)

    # -- the common commands ---------------------------------------------------------------------
    def ping(self, destination: Sequence[str] | None = None, timeout: float = 1.0) -> Replies:
        """``[{node: {"ok": "pong"}}, ...]``."""
        return self._send("ping", {}, destination=destination, timeout=timeout, reply=True)

    async def aping(self, destination: Sequence[str] | None = None, timeout: float = 1.0) -> Replies:
        return await self.abroadcast("ping", {}, destination=destination, timeout=timeout, reply=True)

    def revoke(self, task_id: str | Sequence[str], destination: Sequence[str] | None = None,
               terminate: bool = False, signal: str = "SIGTERM", **options: Any) -> Replies:
        """Revoke task ids on every worker (with ``terminate``: also stop them if running)."""
        return self._send("revoke", _revoke_args(task_id, terminate, signal), destination=destination, **options)

    async def arevoke(self, task_id: str | Sequence[str], destination: Sequence[str] | None = None,
                      terminate: bool = False, signal: str = "SIGTERM", **options: Any) -> Replies:
        return await self.abroadcast("revoke", _revoke_args(task_id, terminate, signal), destination=destination,
                                     **options)

    def terminate(self, task_id: str | Sequence[str], destination: Sequence[str] | None = None,
                  signal: str = "SIGKILL", **options: Any) -> Replies:
        """Revoke and stop running tasks."""
        return self.revoke(task_id, destination, terminate=True, signal=signal, **options)

    def rate_limit(self, task_name: str, rate_limit: str | None, destination: Sequence[str] | None = None,
                   **options: Any) -> Replies:
        """Set a task's rate limit (``"10/s"``, ``"100/m"``, ``"1000/h"``; None/"0" removes it)."""
        return self._send("rate_limit", {"task_name": task_name, "rate_limit": rate_limit},
                          destination=destination, **options)

    async def arate_limit(self, task_name: str, rate_limit: str | None, destination: Sequence[str] | None = None,
                          **options: Any) -> Replies:
        return await self.abroadcast("rate_limit", {"task_name": task_name, "rate_limit": rate_limit},
                                     destination=destination, **options)

    def time_limit(self, task_name: str, soft: float | None = None, hard: float | None = None,
                   destination: Sequence[str] | None = None, **options: Any) -> Replies:
        """Set a task's soft and hard time limits (seconds)."""
        return self._send("time_limit", {"task_name": task_name, "soft": soft, "hard": hard},
                          destination=destination, **options)

    def shutdown(self, destination: Sequence[str] | None = None, **options: Any) -> Replies:
        """Warm-shut-down the workers (they do not reply)."""
        return self._send("shutdown", {}, destination=destination, **options)

    def enable_events(self, destination: Sequence[str] | None = None, **options: Any) -> Replies:
        """Turn task events on."""
        return self._send("enable_events", {}, destination=destination, **options)

    def disable_events(self, destination: Sequence[str] | None = None, **options: Any) -> Replies:
        """Turn task events off."""
        return self._send("disable_events", {}, destination=destination, **options)

    def heartbeat(self, destination: Sequence[str] | None = None, **options: Any) -> Replies:
        """Ask for one worker-heartbeat event from each worker now."""
        return self._send("heartbeat", {}, destination=destination, **options)

    def pool_grow(self, n: int = 1, destination: Sequence[str] | None = None, **options: Any) -> Replies:
        """Add ``n`` pool slots."""
        return self._send("pool_grow", {"n": n}, destination=destination, **options)

    def pool_shrink(self, n: int = 1, destination: Sequence[str] | None = None, **options: Any) -> Replies:
        """Remove ``n`` pool slots."""
        return self._send("pool_shrink", {"n": n}, destination=destination, **options)

    def autoscale(self, max: int, min: int, destination: Sequence[str] | None = None, **options: Any) -> Replies:
        """Change the autoscale range (celeriac workers answer that autoscale is not enabled)."""
        return self._send("autoscale", {"max": max, "min": min}, destination=destination, **options)

    def add_consumer(self, queue: str, exchange: str | None = None, exchange_type: str = "direct",
                     routing_key: str | None = None, destination: Sequence[str] | None = None,
                     **options: Any) -> Replies:
        """Start consuming ``queue``."""
        arguments = {"queue": queue, "exchange": exchange, "exchange_type": exchange_type,
                     "routing_key": routing_key}
        return self._send("add_consumer", arguments, destination=destination, **options)

    def cancel_consumer(self, queue: str, destination: Sequence[str] | None = None, **options: Any) -> Replies:
        """Stop consuming ``queue``."""
        return self._send("cancel_consumer", {"queue": queue}, destination=destination, **options)

    def election(self, id: str, topic: str, action: Any = None, destination: Sequence[str] | None = None,
                 **options: Any) -> Replies:
        """Start an election among the workers (celery-wire.md §7.3)."""
        return self._send("election", {"id": id, "topic": topic, "action": action}, destination=destination,
                          **options)


def _revoke_args(task_id: str | Sequence[str], terminate: bool, signal: str) -> dict[str, Any]:
    ids = [task_id] if isinstance(task_id, str) else list(task_id)
    return {"task_id": ids if len(ids) != 1 else ids[0], "terminate": terminate, "signal": signal}

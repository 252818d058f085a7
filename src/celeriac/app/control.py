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
from celeriac.app.inspection import Inspect
from celeriac.control.pidbox import Mailbox
from celeriac.protocol.clock import LamportClock

if TYPE_CHECKING:
    from celeriac.app.app import App

Replies = list[dict[str, Any]]


class Control:
    """Remote control of the workers of ``app`` (``app.control``)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.clock = LamportClock()

    def inspect(
        self,
        destination: Sequence[str] | None = None,
        timeout: float = 1.0,
        pattern: str | None = None,
        matcher: str | None = None,
        limit: int | None = None,
    ) -> Inspect:
        """Read-only commands; see `Inspect`."""
        return Inspect(self, destination, timeout, pattern, matcher, limit)

    async def abroadcast(
        self,
        command: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        destination: Sequence[str] | None = None,
        reply: bool = False,
        timeout: float = 1.0,
        limit: int | None = None,
        pattern: str | None = None,
        matcher: str | None = None,
    ) -> Replies:
        """Send any command; see `celeriac.control.pidbox.Mailbox.call`."""
        mailbox = Mailbox(await self.app.atransport(), self.clock, signing_key=self.app.conf.control_signing_key)
        return await mailbox.call(
            command,
            arguments,
            destination=destination,
            pattern=pattern,
            matcher=matcher,
            reply=reply,
            timeout=timeout,
            limit=limit,
        )

    def broadcast(
        self,
        command: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        destination: Sequence[str] | None = None,
        reply: bool = False,
        timeout: float = 1.0,
        limit: int | None = None,
        pattern: str | None = None,
        matcher: str | None = None,
    ) -> Replies:
        """Blocking twin of `abroadcast`."""
        return portal.run(
            self.abroadcast(
                command,
                arguments,
                destination=destination,
                reply=reply,
                timeout=timeout,
                limit=limit,
                pattern=pattern,
                matcher=matcher,
            )
        )

    # -- the common commands: async first, then the blocking twin --------------------------------------------
    async def aping(self, destination: Sequence[str] | None = None, timeout: float = 1.0) -> Replies:
        """``[{node: {"ok": "pong"}}, ...]``."""
        return await self.abroadcast("ping", {}, destination=destination, timeout=timeout, reply=True)

    def ping(self, destination: Sequence[str] | None = None, timeout: float = 1.0) -> Replies:
        return portal.run(self.aping(destination, timeout))

    async def arevoke(
        self,
        task_id: str | Sequence[str],
        destination: Sequence[str] | None = None,
        terminate: bool = False,
        signal: str | int = "SIGTERM",
        **options: Any,
    ) -> Replies:
        """Revoke task ids on every worker (with ``terminate``: also stop them if running)."""
        return await self.abroadcast(
            "revoke", _revoke_args(task_id, terminate, signal), destination=destination, **options
        )

    def revoke(
        self,
        task_id: str | Sequence[str],
        destination: Sequence[str] | None = None,
        terminate: bool = False,
        signal: str | int = "SIGTERM",
        **options: Any,
    ) -> Replies:
        return portal.run(self.arevoke(task_id, destination, terminate, signal, **options))

    async def aterminate(
        self,
        task_id: str | Sequence[str],
        destination: Sequence[str] | None = None,
        signal: str = "SIGKILL",
        **options: Any,
    ) -> Replies:
        """Revoke and stop running tasks."""
        return await self.arevoke(task_id, destination, terminate=True, signal=signal, **options)

    def terminate(
        self,
        task_id: str | Sequence[str],
        destination: Sequence[str] | None = None,
        signal: str = "SIGKILL",
        **options: Any,
    ) -> Replies:
        return portal.run(self.aterminate(task_id, destination, signal, **options))

    async def arate_limit(
        self, task_name: str, rate_limit: str | None, destination: Sequence[str] | None = None, **options: Any
    ) -> Replies:
        """Set a task's rate limit (``"10/s"``, ``"100/m"``, ``"1000/h"``; None/"0" removes it)."""
        return await self.abroadcast(
            "rate_limit", {"task_name": task_name, "rate_limit": rate_limit}, destination=destination, **options
        )

    def rate_limit(
        self, task_name: str, rate_limit: str | None, destination: Sequence[str] | None = None, **options: Any
    ) -> Replies:
        return portal.run(self.arate_limit(task_name, rate_limit, destination, **options))

    async def atime_limit(
        self,
        task_name: str,
        soft: float | None = None,
        hard: float | None = None,
        destination: Sequence[str] | None = None,
        **options: Any,
    ) -> Replies:
        """Set a task's soft and hard time limits (seconds)."""
        return await self.abroadcast(
            "time_limit", {"task_name": task_name, "soft": soft, "hard": hard}, destination=destination, **options
        )

    def time_limit(
        self,
        task_name: str,
        soft: float | None = None,
        hard: float | None = None,
        destination: Sequence[str] | None = None,
        **options: Any,
    ) -> Replies:
        return portal.run(self.atime_limit(task_name, soft, hard, destination, **options))

    async def ashutdown(self, destination: Sequence[str] | None = None, **options: Any) -> Replies:
        """Warm-shut-down the workers (they do not reply)."""
        return await self.abroadcast("shutdown", {}, destination=destination, **options)

    def shutdown(self, destination: Sequence[str] | None = None, **options: Any) -> Replies:
        return portal.run(self.ashutdown(destination, **options))

    async def aenable_events(self, destination: Sequence[str] | None = None, **options: Any) -> Replies:
        """Turn task events on."""
        return await self.abroadcast("enable_events", {}, destination=destination, **options)

    def enable_events(self, destination: Sequence[str] | None = None, **options: Any) -> Replies:
        return portal.run(self.aenable_events(destination, **options))

    async def adisable_events(self, destination: Sequence[str] | None = None, **options: Any) -> Replies:
        """Turn task events off."""
        return await self.abroadcast("disable_events", {}, destination=destination, **options)

    def disable_events(self, destination: Sequence[str] | None = None, **options: Any) -> Replies:
        return portal.run(self.adisable_events(destination, **options))

    async def aheartbeat(self, destination: Sequence[str] | None = None, **options: Any) -> Replies:
        """Ask for one worker-heartbeat event from each worker now."""
        return await self.abroadcast("heartbeat", {}, destination=destination, **options)

    def heartbeat(self, destination: Sequence[str] | None = None, **options: Any) -> Replies:
        return portal.run(self.aheartbeat(destination, **options))

    async def apool_grow(self, n: int = 1, destination: Sequence[str] | None = None, **options: Any) -> Replies:
        """Add ``n`` pool slots."""
        return await self.abroadcast("pool_grow", {"n": n}, destination=destination, **options)

    def pool_grow(self, n: int = 1, destination: Sequence[str] | None = None, **options: Any) -> Replies:
        return portal.run(self.apool_grow(n, destination, **options))

    async def apool_shrink(self, n: int = 1, destination: Sequence[str] | None = None, **options: Any) -> Replies:
        """Remove ``n`` pool slots."""
        return await self.abroadcast("pool_shrink", {"n": n}, destination=destination, **options)

    def pool_shrink(self, n: int = 1, destination: Sequence[str] | None = None, **options: Any) -> Replies:
        return portal.run(self.apool_shrink(n, destination, **options))

    async def aautoscale(self, max: int, min: int, destination: Sequence[str] | None = None, **options: Any) -> Replies:
        """Change the autoscale range (celeriac workers answer that autoscale is not enabled)."""
        return await self.abroadcast("autoscale", {"max": max, "min": min}, destination=destination, **options)

    def autoscale(self, max: int, min: int, destination: Sequence[str] | None = None, **options: Any) -> Replies:
        return portal.run(self.aautoscale(max, min, destination, **options))

    async def aadd_consumer(
        self,
        queue: str,
        exchange: str | None = None,
        exchange_type: str = "direct",
        routing_key: str | None = None,
        destination: Sequence[str] | None = None,
        **options: Any,
    ) -> Replies:
        """Start consuming ``queue``."""
        arguments = {"queue": queue, "exchange": exchange, "exchange_type": exchange_type, "routing_key": routing_key}
        return await self.abroadcast("add_consumer", arguments, destination=destination, **options)

    def add_consumer(
        self,
        queue: str,
        exchange: str | None = None,
        exchange_type: str = "direct",
        routing_key: str | None = None,
        destination: Sequence[str] | None = None,
        **options: Any,
    ) -> Replies:
        return portal.run(self.aadd_consumer(queue, exchange, exchange_type, routing_key, destination, **options))

    async def acancel_consumer(self, queue: str, destination: Sequence[str] | None = None, **options: Any) -> Replies:
        """Stop consuming ``queue``."""
        return await self.abroadcast("cancel_consumer", {"queue": queue}, destination=destination, **options)

    def cancel_consumer(self, queue: str, destination: Sequence[str] | None = None, **options: Any) -> Replies:
        return portal.run(self.acancel_consumer(queue, destination, **options))

    async def aelection(
        self, id: str, topic: str, action: Any = None, destination: Sequence[str] | None = None, **options: Any
    ) -> Replies:
        """Start an election among the workers (celery-wire.md §7.3)."""
        return await self.abroadcast(
            "election", {"id": id, "topic": topic, "action": action}, destination=destination, **options
        )

    def election(
        self, id: str, topic: str, action: Any = None, destination: Sequence[str] | None = None, **options: Any
    ) -> Replies:
        return portal.run(self.aelection(id, topic, action, destination, **options))


def _revoke_args(task_id: str | Sequence[str], terminate: bool, signal: str | int) -> dict[str, Any]:
    ids = [task_id] if isinstance(task_id, str) else list(task_id)
    return {"task_id": ids if len(ids) != 1 else ids[0], "terminate": terminate, "signal": signal}

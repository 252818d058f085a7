"""`Inspect`: the read-only remote-control commands, each returning ``{node: reply}`` (Celery's
``app.control.inspect()``); every method has an async twin with an ``a`` prefix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celeriac._portal import portal

if TYPE_CHECKING:
    from celeriac.app.control import Control

Replies = list[dict[str, Any]]


def flatten(replies: Replies) -> dict[str, Any]:
    """``[{node: reply}, ...]`` -> ``{node: reply}``."""
    merged: dict[str, Any] = {}
    for reply in replies:
        merged.update(reply)
    return merged


class Inspect:
    """Read-only commands to ``destination`` (None: every node), waiting ``timeout`` s for replies."""

    def __init__(
        self,
        control: Control,
        destination: Sequence[str] | None = None,
        timeout: float = 1.0,
        pattern: str | None = None,
        matcher: str | None = None,
        limit: int | None = None,
    ) -> None:
        self.control = control
        self.destination = list(destination) if destination else None
        self.timeout = timeout
        self.pattern = pattern
        self.matcher = matcher
        self.limit = limit

    async def _arequest(self, method: str, **arguments: Any) -> dict[str, Any]:
        replies = await self.control.abroadcast(
            method,
            arguments,
            destination=self.destination,
            reply=True,
            timeout=self.timeout,
            pattern=self.pattern,
            matcher=self.matcher,
            limit=self.limit,
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

"""What the Workers and Queues pages ask the workers (``stats`` and ``active_queues``), cached a few seconds so
live page refreshes do not broadcast on every event."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from celeriac.app.app import App


class Inspected:
    """The latest ``stats`` and ``active_queues`` replies by worker hostname, at most ``max_age`` seconds old."""

    def __init__(self, app: App, max_age: float = 10.0, timeout: float = 0.5) -> None:
        self.app = app
        self.max_age = max_age
        self.timeout = timeout
        self._at = 0.0
        self.stats: dict[str, Any] = {}
        self.queues: dict[str, list[str]] = {}
        self.waiting: dict[str, dict[str, int]] = {}  # hostname -> {"reserved": n, "scheduled": n}

    async def refresh(self) -> None:
        """Ask again when the cache is older than ``max_age`` (errors leave it empty: pages still render)."""
        if time.monotonic() - self._at < self.max_age:
            return
        self._at = time.monotonic()
        stats: dict[str, Any] = {}
        queues: dict[str, list[str]] = {}
        waiting: dict[str, dict[str, int]] = {}
        try:
            # The four questions go out together: each waits its whole timeout for late replies, so one after
            # another a page refresh took four timeouts.
            asked = await asyncio.gather(
                *(
                    self.app.control.abroadcast(command, reply=True, timeout=self.timeout)
                    for command in ("stats", "active_queues", "reserved", "scheduled")
                )
            )
            for reply in asked[0]:
                stats.update({k: v for k, v in reply.items() if isinstance(v, dict)})
            for reply in asked[1]:
                for host, found in reply.items():
                    if isinstance(found, list):
                        queues[host] = [str(q.get("name")) for q in found if isinstance(q, dict)]
            for command, replies in zip(("reserved", "scheduled"), asked[2:], strict=True):
                for reply in replies:
                    for host, found in reply.items():
                        if isinstance(found, list):
                            waiting.setdefault(host, {})[command] = len(found)
        except Exception:  # a broker hiccup: keep what we had, try again next time
            return
        self.stats, self.queues, self.waiting = stats, queues, waiting

    def worker(self, hostname: str) -> dict[str, Any]:
        """Pool, concurrency, max RSS (KiB), queues, reserved and scheduled (ETA) task counts of one worker, as
        far as its replies said."""
        stats = self.stats.get(hostname, {})
        pool = stats.get("pool") if isinstance(stats.get("pool"), dict) else {}
        rusage = stats.get("rusage") if isinstance(stats.get("rusage"), dict) else {}
        return {
            "pool": pool.get("implementation", ""),
            "concurrency": pool.get("max-concurrency", ""),
            "maxrss": rusage.get("maxrss", ""),
            "queues": ", ".join(self.queues.get(hostname, [])),
            "reserved": self.waiting.get(hostname, {}).get("reserved", ""),
            "scheduled": self.waiting.get(hostname, {}).get("scheduled", ""),
        }

    def consumers(self, queue: str) -> list[str]:
        """Workers consuming ``queue``."""
        return sorted(host for host, names in self.queues.items() if queue in names)

"""Timer: call something at a wall-clock time on the worker's loop (ETA and countdown tasks)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Timer:
    """Schedules callbacks by Unix time; ``cancel_all`` on stop so nothing fires after shutdown."""

    def __init__(self) -> None:
        self._handles: set[asyncio.TimerHandle] = set()

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        """Run ``callback`` on the loop at Unix time ``when`` (at once if it has passed)."""
        loop = asyncio.get_running_loop()
        delay = max(0.0, when - time.time())
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._handles.discard(handle)
            callback()

        handle = loop.call_later(delay, fire)
        self._handles.add(handle)
        return handle

    def cancel(self, handle: asyncio.TimerHandle) -> None:
        """Cancel one scheduled call."""
        handle.cancel()
        self._handles.discard(handle)

    def cancel_all(self) -> None:
        """Cancel every scheduled call."""
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()

    def __len__(self) -> int:
        return len(self._handles)

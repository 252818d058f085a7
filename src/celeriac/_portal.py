"""The one background event loop on which the sync facades (``delay``, ``get``, ...) run their coroutines.

The loop lives in a daemon thread started on first use. ``run`` refuses to be called from the portal's own
thread (that would deadlock) and works from any other thread, including one that runs its own event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Portal:
    """A background event loop thread that runs coroutines for synchronous callers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        """The portal's loop, started on first use."""
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                ready = threading.Event()
                loop = asyncio.new_event_loop()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                thread = threading.Thread(target=serve, name="celeriac-portal", daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the portal loop and block until it finishes; return its value or raise its error."""
        loop = self.loop()
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a sync celeriac call was made on the portal loop; await the async twin instead")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)


portal = Portal()

"""Sync sends from several threads at once, for the direct-path tests of each broker."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def send_from_threads(
    add: Any, publishers: Callable[[], list[Any]], first: tuple[str, tuple[int, int]]
) -> tuple[dict[str, tuple[int, int]], int]:
    """Three threads each send 100 calls of ``add(x, y=n)`` (every other one with priority 3); returns what was
    sent (id -> (x, y), ``first`` included) and how many publishers there were while all three threads lived
    (a thread's publisher lives as long as the thread)."""
    sent: dict[str, tuple[int, int]] = dict([first])
    lock = threading.Lock()
    done = threading.Barrier(4, timeout=60)
    leave = threading.Event()

    def send(base: int) -> None:
        for n in range(100):
            result = add.apply_async((base + n,), {"y": n}, priority=3) if n % 2 else add.delay(base + n, y=n)
            with lock:
                sent[result.id] = (base + n, n)
        done.wait()
        leave.wait(60)

    threads = [threading.Thread(target=send, args=(base,)) for base in (1000, 2000, 3000)]
    for thread in threads:
        thread.start()
    done.wait()
    count = len(publishers())
    leave.set()
    for thread in threads:
        thread.join(timeout=60)
    return sent, count

"""Sync sends from several threads at once, for the direct-path tests of each broker."""

from __future__ import annotations

import threading
from typing import Any


def portal_publishers(app: Any) -> list[Any]:
    """The blocking publishers the portal loop's transport made (one per thread that sent directly)."""
    from celeriac._portal import portal

    producer = app._resources.connected_producer(portal.loop())
    assert producer is not None
    return list(producer.transport._publishers)


def send_from_threads(app: Any) -> tuple[Any, dict[str, tuple[int, int]], int]:
    """Register ``d.add`` on ``app`` and send it once through the portal loop (which connects and declares the
    queue), then from three threads 100 times each (every other call with priority 3). Returns the task, what was
    sent (id -> (x, y)) and how many publishers there were while all three threads lived (a thread's publisher
    lives as long as the thread)."""

    @app.task(name="d.add")
    def add(x: int, y: int = 0) -> int:
        return x + y

    first = add.delay(0)
    assert portal_publishers(app) == []  # the first send to a queue takes the loop's path
    sent: dict[str, tuple[int, int]] = {first.id: (0, 0)}
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
    count = len(portal_publishers(app))
    leave.set()
    for thread in threads:
        thread.join(timeout=60)
    return add, sent, count

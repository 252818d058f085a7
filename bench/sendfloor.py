"""Where a sync ``delay()`` on Redis spends its time: celeriac's own work against the round trip it waits for.

Usage (from the repository root, with .venv's python)::

    python bench/sendfloor.py [--redis redis://127.0.0.1:6379/13] [--calls 20000] [--pairs 2]

One process, one thread, ``bench.noop_async.delay()`` in a loop (as ``producer.py --mode sync``), alternating two
ways per pair:

* ``real``: as a user's call runs, returning once Redis answered the ``LPUSH``;
* ``no I/O``: the thread's blocking publisher builds the envelope and packs the ``LPUSH`` command as it does for
  Redis, then returns without writing it: celeriac's own work per call, everything but the round trip.

The difference is the round trip a sync send must wait for; a ``delay()`` loop cannot go faster than one per round
trip. The run's keys are under their own prefix and deleted afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import hiredis

import benchapp
from brokers import DEFAULT_REDIS, isolated
from celeriac.protocol.message import Message
from celeriac.transports.redis import direct, envelope


def _no_io(self: Any, message: Message, queue: str) -> None:
    payload = envelope.encode(message, "", queue)
    hiredis.pack_command(("LPUSH", self._keys.queue(queue, message.priority), payload))  # type: ignore[arg-type]


def per_call(task: Any, calls: int) -> float:
    """Microseconds per ``delay()`` over ``calls`` calls."""
    started = time.perf_counter()
    for _ in range(calls):
        task.delay()
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    real_publish = direct.RedisBlockingPublisher.publish
    results: dict[str, list[float]] = {"real": [], "no I/O": []}
    with isolated(args.redis) as place:
        bench = benchapp.create_app(place.url, place.keyprefix)
        task = bench.noop_async
        per_call(task, 300)  # connect, declare the queue: later calls take the direct path
        try:
            for _ in range(args.pairs):
                results["real"].append(per_call(task, args.calls))
                direct.RedisBlockingPublisher.publish = _no_io  # type: ignore[method-assign]
                try:
                    results["no I/O"].append(per_call(task, args.calls))
                finally:
                    direct.RedisBlockingPublisher.publish = real_publish  # type: ignore[method-assign]
        finally:
            bench.app.close()
    for name, values in results.items():
        runs = ", ".join(f"{v:.1f}" for v in values)
        print(f"{name:7s} {statistics.median(values):6.1f} us per delay()  (runs: {runs})")
    print(f"round trip: {statistics.median(results['real']) - statistics.median(results['no I/O']):.1f} us per call")


if __name__ == "__main__":
    main()

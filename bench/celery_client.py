"""Celery's client side of the benchmarks, run with ``bench/.venv-celery/bin/python`` (never imports celeriac).

Two commands, each printing one JSON object per line on stdout:

* ``enqueue --tasks N --task NAME``: ``N`` plain ``delay()`` calls, then ``{"seconds": s}``; afterwards it
  serves the driver: each ``sentinel`` line read on stdin sends ``bench.sentinel`` and answers ``{"done": true}``
  once its result is back (so the driver times the end of a throughput run with Celery's own client).
* ``latency --count N --warmup W``: ``W`` untimed, then ``N`` timed sequential ``sentinel.delay(i).get()``
  round trips; prints ``{"samples": [seconds, ...]}``.

The broker comes from ``BENCH_BROKER_URL``/``BENCH_KEYPREFIX``, as for the worker (see `celeryapp`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from celeryapp import app, sentinel

RESULT_TIMEOUT = 120.0


def say(payload: dict[str, object]) -> None:
    print(json.dumps(payload), flush=True)


def enqueue(tasks: int, name: str) -> None:
    task = app.tasks[name]
    started = time.perf_counter()
    for _ in range(tasks):
        task.delay()
    say({"seconds": time.perf_counter() - started})
    if hasattr(app.backend, "client"):
        app.backend.client.ping()  # connect the result store now (Redis), not during the timed sentinel
    for line in sys.stdin:
        command = line.strip()
        if command == "sentinel":
            sentinel.delay(1).get(timeout=RESULT_TIMEOUT)
            say({"done": True})
        elif command == "quit":
            return


def latency(count: int, warmup: int) -> None:
    for i in range(warmup):
        sentinel.delay(i).get(timeout=RESULT_TIMEOUT)  # the first one also waits for the worker to start
    samples = []
    for i in range(count):
        started = time.perf_counter()
        sentinel.delay(i).get(timeout=RESULT_TIMEOUT)
        samples.append(time.perf_counter() - started)
    say({"samples": samples})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    enq = commands.add_parser("enqueue")
    enq.add_argument("--tasks", type=int, required=True)
    enq.add_argument("--task", default="bench.noop_sync")
    lat = commands.add_parser("latency")
    lat.add_argument("--count", type=int, default=1000)
    lat.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    try:
        if args.command == "enqueue":
            enqueue(args.tasks, args.task)
        else:
            latency(args.count, args.warmup)
    except KeyboardInterrupt:
        pass
    finally:
        app.close()


if __name__ == "__main__":
    main()

"""Dramatiq's client side of the RabbitMQ comparison, run with ``bench/.venv-dramatiq/bin/python``.

The same two commands and JSON lines as `celery_client`: ``enqueue --tasks N`` (``N`` plain ``send()`` calls,
then the sentinel on request) and ``latency --count N --warmup W`` (sequential ``send(i).get_result(block=True)``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from dramatiqapp import broker, noop_sync, sentinel

RESULT_TIMEOUT_MS = 120_000


def say(payload: dict[str, object]) -> None:
    print(json.dumps(payload), flush=True)


def round_trip(value: int) -> None:
    sentinel.send(value).get_result(block=True, timeout=RESULT_TIMEOUT_MS)


def enqueue(tasks: int) -> None:
    started = time.perf_counter()
    for _ in range(tasks):
        noop_sync.send()
    say({"seconds": time.perf_counter() - started})
    for line in sys.stdin:
        command = line.strip()
        if command == "sentinel":
            round_trip(1)
            say({"done": True})
        elif command == "quit":
            return


def latency(count: int, warmup: int) -> None:
    for i in range(warmup):
        round_trip(i)  # the first one also waits for the worker to start
    samples = []
    for i in range(count):
        started = time.perf_counter()
        round_trip(i)
        samples.append(time.perf_counter() - started)
    say({"samples": samples})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    enq = commands.add_parser("enqueue")
    enq.add_argument("--tasks", type=int, required=True)
    enq.add_argument("--task", default="noop_sync")
    lat = commands.add_parser("latency")
    lat.add_argument("--count", type=int, default=1000)
    lat.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    try:
        if args.command == "enqueue":
            enqueue(args.tasks)
        else:
            latency(args.count, args.warmup)
    except KeyboardInterrupt:
        pass
    finally:
        broker.close()


if __name__ == "__main__":
    main()

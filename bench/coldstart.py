"""Cold start: worker process start -> first task done, with the defaults, celeriac beside Celery in one run.

For each run a fresh place (brokers.isolated) gets one ``bench.sentinel`` task (it has a result) before any worker
exists; then the worker process starts (the documented command line, workers.py) and the clock runs from its
``Popen`` until the result is stored, read by celeriac's client (it reads Celery's Redis results too). Mingle,
gossip and heartbeats stay on, as a user runs the worker. Medians of ``--runs``.

    .venv/bin/python bench/coldstart.py --runs 5                      # celeriac on SQLite and Redis, Celery on Redis
    .venv/bin/python bench/coldstart.py --broker redis --impl celeriac --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from benchapp import create_app
from brokers import isolated
from workers import WorkerSpec, start_worker

POOLS = {"celeriac": "asyncio", "celery": "prefork"}
CONCURRENCY = {"celeriac": 8, "celery": 2}


def one_run(impl: str, broker: str) -> float:
    """Seconds from the worker's start to its first task done."""
    with isolated(broker) as place:
        bench = create_app(place.url, place.keyprefix, place.result_url)
        try:
            result = bench.sentinel.delay(1)
            worker = start_worker(WorkerSpec(impl, POOLS[impl], CONCURRENCY[impl]), place)
            started = time.monotonic()
            try:
                assert result.get(timeout=60) == 1
                return time.monotonic() - started
            finally:
                worker.stop(timeout=30.0)
        finally:
            bench.app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=("sqlite", "redis"), help="one broker (default: both)")
    parser.add_argument("--impl", choices=("celeriac", "celery"), help="one implementation (default: both)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for broker in [args.broker] if args.broker else ["sqlite", "redis"]:
        for impl in [args.impl] if args.impl else ["celeriac", "celery"]:
            if impl == "celery" and broker == "sqlite":
                continue  # Celery has no SQLite broker
            times = [one_run(impl, broker) for _ in range(args.runs)]
            rows.append((f"{impl} -P {POOLS[impl]} -c {CONCURRENCY[impl]}", broker, statistics.median(times), times))
    print(f"{'worker':<28} {'broker':<7} {'start -> first task done (median)':>34}  runs")
    for label, broker, median, times in rows:
        print(f"{label:<28} {broker:<7} {median:>33.3f}s  {', '.join(f'{t:.3f}' for t in times)}")


if __name__ == "__main__":
    main()

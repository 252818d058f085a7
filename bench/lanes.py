"""The hand-off of a sync body to a lane thread and back, alone: ``ThreadLanes.run`` of N no-op bodies from R
concurrent runners on uvloop, no broker. Prints bodies/s and CPU per body (this process, all threads).

    .venv/bin/python bench/lanes.py --bodies 40000 --runners 8
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))  # this checkout's celeriac

from celeriac.pools.lanes import ThreadLanes


async def measure(bodies: int, runners: int) -> tuple[float, float]:
    lanes = ThreadLanes("bench", lambda: runners)
    left = [bodies]

    def noop() -> None:
        return None

    async def runner() -> None:
        while left[0] > 0:
            left[0] -= 1
            await lanes.run(noop)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(runner() for _ in range(runners)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    lanes.close()
    return bodies / wall, cpu / bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", type=int, default=40000)
    parser.add_argument("--runners", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    for _ in range(args.runs):
        rate, cpu = run(measure(args.bodies, args.runners))
        print(f"{rate:,.0f} bodies/s  {cpu * 1e6:.1f} us CPU per body")


if __name__ == "__main__":
    main()

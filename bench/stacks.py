"""Summarize a py-spy profile (``--format raw``: collapsed stacks, as ``throughput.py --profile`` writes them).

Usage::

    python bench/stacks.py /tmp/prof/redis-celeriac-asyncio-c8.txt [--top 25]

Prints where the samples fall: by area (the package of the innermost frame: celeriac's modules, redis-py, the
asyncio event loop, the json codec ...), then the functions with the most *inclusive* samples (the function
or anything it called was running) and the most *self* samples (it was the innermost frame). Without
``--idle``, py-spy leaves out samples of threads waiting (in epoll, on a lock), so the shares are of CPU time.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::\d+)?\)$")

# (area, substrings of the frame's file), first match wins. py-spy shortens some paths (``tracer.py`` for
# celeriac/worker/tracer.py, ``consumer/tasks.py``), hence the bare names.
AREAS = (
    ("celeriac: redis transport", ("celeriac/transports/redis",)),
    ("celeriac: sqlite transport", ("celeriac/transports/sqlite", "celeriac/_sqlite/")),
    ("celeriac: result backend", ("celeriac/backends/",)),
    ("celeriac: protocol (codec, serializers)", ("celeriac/protocol/",)),
    (
        "celeriac: worker (strategy, request, tracer)",
        ("celeriac/worker/", "consumer/", "strategy.py", "tracer.py", "request.py", "worker.py", "state.py"),
    ),
    ("celeriac: pools", ("celeriac/pools/",)),
    ("celeriac: app, tasks, other", ("celeriac/",)),
    ("dataclass __init__ (generated code)", ("<string>",)),
    ("redis-py", ("redis/",)),
    ("hiredis", ("hiredis",)),
    ("sqlite3", ("sqlite3",)),
    ("json", ("json/",)),
    ("base64", ("base64",)),
    ("asyncio event loop", ("asyncio/",)),
    ("selectors (epoll)", ("selectors",)),
    ("threading, queue", ("threading", "queue.py")),
    ("logging", ("logging/",)),
    ("contextlib", ("contextlib",)),
)


def parse(lines: Iterable[str]) -> Counter[tuple[str, ...]]:
    """Collapsed stacks -> sample count per stack (frames outermost first, the process/thread frame dropped)."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in lines:
        line = line.rstrip("\n")
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        frames = tuple(f for f in stack.split(";") if not f.startswith(("process ", "thread ")))
        stacks[frames] += int(count)
    return stacks


def area(frame: str) -> str:
    match = FRAME.match(frame)
    where = match.group("file") if match else frame
    for name, needles in AREAS:
        if any(needle in where for needle in needles):
            return name
    return "other"


def short(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    return f"{match.group('func')} ({match.group('file').split('site-packages/')[-1]})"


def report(path: Path, top: int) -> None:
    stacks = parse(path.read_text().splitlines())
    total = sum(stacks.values())
    if not total:
        print(f"{path}: no samples")
        return
    areas: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    for frames, count in stacks.items():
        if not frames:
            continue
        areas[area(frames[-1])] += count
        self_time[short(frames[-1])] += count
        for frame in set(frames):
            inclusive[short(frame)] += count

    def line(name: str, count: int) -> str:
        return f"  {100 * count / total:5.1f}%  {name}"

    print(f"{path.name}: {total} samples")
    print("by area (innermost frame):")
    for name, count in areas.most_common():
        print(line(name, count))
    print(f"top {top} inclusive:")
    for name, count in inclusive.most_common(top):
        print(line(name, count))
    print(f"top {top} self:")
    for name, count in self_time.most_common(top):
        print(line(name, count))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for path in args.profiles:
        report(path, args.top)


if __name__ == "__main__":
    main()

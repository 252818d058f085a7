"""Recording benchmark results: the machine they ran on, small statistics, and ``bench/results/<date>.json``.

One file per day; each script stores its part under its own key (``throughput``, ``latency``), so the
throughput and latency runs of a day end up side by side in one file.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

import celeriac

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_revision() -> str:
    try:
        root = HERE.parent
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=root, capture_output=True, text=True)
    except OSError:
        return "unknown"
    return head.stdout.strip() + ("+uncommitted src changes" if dirty.stdout.strip() else "")


def _redis_version(url: str) -> str:
    client = redis.Redis.from_url(url)
    try:
        return str(client.info("server")["redis_version"])
    except redis.RedisError:
        return "unreachable"
    finally:
        client.close()


def machine(redis_url: str | None = None) -> dict[str, Any]:
    """What the numbers depend on: CPU, cores, memory, kernel, Python, versions, load when the run began."""
    memory_kib = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "celeriac": f"{celeriac.__version__} ({_git_revision()})",
        "celery": "5.7.0 (bench/.venv-celery)",
        "loadavg_at_start": list(os.getloadavg()),
    }
    if redis_url:
        info["redis"] = _redis_version(redis_url)
    return info


def median(values: Sequence[float]) -> float:
    """The median (of one value: that value)."""
    return statistics.median(values)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of already sorted values, by the nearest-rank method."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def save(kind: str, payload: dict[str, Any], when: dt.date | None = None) -> Path:
    """Store ``payload`` under ``kind`` in today's results file (other kinds in it are kept); return its path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{(when or dt.date.today()).isoformat()}.json"
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    data[kind] = payload
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path

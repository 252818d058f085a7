"""A real ``celeriac worker`` process fed a decompression bomb: its peak memory stays near the message cap, not the
bomb's expanded size, and it goes on running tasks (issue 10, item 8: a 1.9 KB message drove a worker to 2 GB)."""

from __future__ import annotations

import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import App
from celeriac._portal import portal
from celeriac.protocol.message import Message

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import WorkerProcess

EXPANDED = 1024 * 1024 * 1024  # 1 GB of zeros in ~1 MB of zlib


def zlib_bomb(size: int) -> bytes:
    """A JSON-looking task body of ``size`` bytes, zlib-compressed without holding it whole."""
    packer = zlib.compressobj(9)
    chunk = b"0" * (1024 * 1024)
    parts = [packer.compress(b'[["')]
    parts += [packer.compress(chunk) for _ in range(size // len(chunk))]
    parts += [packer.compress(b'"], {}, {}]'), packer.flush()]
    return b"".join(parts)


@pytest.fixture
def producer(sqlite_url: str) -> Iterator[App]:
    app = App("taskapp", broker=sqlite_url)
    yield app
    app.close()


def test_a_bomb_costs_the_worker_the_cap_not_its_expanded_size(producer: App, sqlite_url: str) -> None:
    async def publish() -> None:
        transport = await producer.atransport()
        await transport.declare("celery")
        headers = {"task": "taskapp.add", "id": "bomb-1", "lang": "py", "compression": "application/x-gzip"}
        await transport.publish(Message(body=zlib_bomb(EXPANDED), headers=headers), "celery")

    portal.run(publish())
    worker = WorkerProcess(sqlite_url, ["-n", "bomb@itest", "-c", "2"])
    try:
        worker.wait_for_output("Rejecting undecodable message bomb-1", timeout=60)
        assert "(worker_max_message_bytes); refused" in worker.output
        assert producer.send_task("taskapp.add", [2, 3]).get(timeout=30) == 5
        stats = producer.control.inspect(destination=["bomb@itest"], timeout=5).stats()["bomb@itest"]
        peak_mb = stats["rusage"]["maxrss"] / 1024  # kilobytes on Linux
        print(f"worker peak RSS after a {EXPANDED >> 20} MB bomb: {peak_mb:.0f} MB")
        assert peak_mb < 400, f"peak RSS {peak_mb:.0f} MB"
    finally:
        assert worker.stop() == 0

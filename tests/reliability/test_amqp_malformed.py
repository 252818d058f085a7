"""RabbitMQ: 30 malformed messages published raw (aiormq, no celeriac code on the sending side) reach a running
worker: it stays alive, rejects each with one log line naming the message, and still runs the good task sent
after them. None is left in the queue (rejected, not requeued: RabbitMQ drops them).
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiormq
import pytest
from pamqp.commands import Basic

from celeriac import App

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relkit import Ledger, RabbitVhost, open_vhost, wait_until

pytestmark = pytest.mark.amqp

JSON = "application/json"
GOOD_BODY = json.dumps([["x"], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]).encode()


def _headers(n: int, **changes: Any) -> dict[str, Any]:
    headers: dict[str, Any] = {"lang": "py", "task": "relapp.mark", "id": f"bad-{n}", "root_id": f"bad-{n}"}
    headers.update(changes)
    return {k: v for k, v in headers.items() if v is not None}


def malformed() -> list[tuple[bytes, str | None, str | None, dict[str, Any]]]:
    """30 (body, content_type, content_encoding, headers), each wrong in its own way; ``bad-<n>`` names it."""
    cases: list[tuple[bytes, str | None, str | None, dict[str, Any]]] = [
        (b"{not json", JSON, "utf-8", _headers(0)),
        (b"", JSON, "utf-8", _headers(1)),
        (b"\xff\xfe\x00garbage", JSON, "utf-8", _headers(2)),
        (b'"just a string"', JSON, "utf-8", _headers(3)),
        (b"[1, 2]", JSON, "utf-8", _headers(4)),
        (b"null", JSON, "utf-8", _headers(5)),
        (b"[[1], [2], {}]", JSON, "utf-8", _headers(6)),  # kwargs not a mapping
        (b'[[1], {}, "embed"]', JSON, "utf-8", _headers(7)),
        (GOOD_BODY, "application/x-python-serialize", "binary", _headers(8)),  # pickle: not accepted
        (GOOD_BODY, "application/x-yaml", "utf-8", _headers(9)),
        (GOOD_BODY, "text/plain", "utf-8", _headers(10)),
        (GOOD_BODY, JSON, "no-such-encoding", _headers(11)),
        (GOOD_BODY, JSON, "utf-8", _headers(12, task=None)),  # no task name
        (GOOD_BODY, JSON, "utf-8", _headers(13, task=42)),
        (GOOD_BODY, JSON, "utf-8", _headers(14, task="relapp.no_such_task")),
        (GOOD_BODY, JSON, "utf-8", _headers(15, eta="not a date")),
        (GOOD_BODY, JSON, "utf-8", _headers(16, expires="yesterday-ish")),
        (GOOD_BODY, JSON, "utf-8", _headers(17, timelimit="ten")),
        (GOOD_BODY, JSON, "utf-8", _headers(18, retries="many")),
        (GOOD_BODY, JSON, "utf-8", _headers(19, compression="zlib")),  # the body is not compressed
        (zlib.compress(b"{broken"), JSON, "utf-8", _headers(20, compression="zlib")),
        (GOOD_BODY, JSON, "utf-8", _headers(21, compression="lzma-nope")),
        (GOOD_BODY, JSON, "utf-8", _headers(22, group_index="first")),
        (GOOD_BODY, JSON, "utf-8", _headers(23, parent_id=["a", "list"])),
        (GOOD_BODY, JSON, "utf-8", _headers(24, stamped_headers="not-a-list")),
        (GOOD_BODY, JSON, "utf-8", _headers(25, kwargsrepr={"a": 1})),
        (b"[" * 5000 + b"]" * 5000, JSON, "utf-8", _headers(26)),  # nested too deep
        (GOOD_BODY, JSON, "utf-8", _headers(27, root_id=5)),
        (b'[[], {}, {"callbacks": "oops"}]', JSON, "utf-8", _headers(28)),
        (GOOD_BODY, JSON, "utf-8", {"id": "bad-29"}),  # protocol 2 without a task header
    ]
    assert len(cases) == 30
    return cases


async def publish_raw(url: str, queue: str) -> None:
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel()
        for n, (body, content_type, encoding, headers) in enumerate(malformed()):
            properties = Basic.Properties(
                content_type=content_type,
                content_encoding=encoding,
                headers=headers,
                correlation_id=f"bad-{n}",
                delivery_mode=2,
            )
            await channel.basic_publish(body, routing_key=queue, properties=properties)
    finally:
        await connection.close()


@pytest.fixture
def vhost() -> Iterator[RabbitVhost]:
    made = open_vhost("rel-malformed")
    yield made
    made.delete()


def test_thirty_malformed_messages_leave_the_worker_alive(
    vhost: RabbitVhost, queue_name: str, ledger: Ledger, workers: Callable[..., Any]
) -> None:
    worker = workers(vhost.url, "", ledger, ["-Q", queue_name, "-P", "threads", "-c", "2"])
    worker.wait_for_output("ready.", timeout=60)
    asyncio.run(publish_raw(vhost.url, queue_name))
    producer = App("relapp", broker=vhost.url)
    try:
        producer.send_task("relapp.mark", ["good"], queue=queue_name)
        ledger.published.append("good")
    finally:
        producer.close()
    wait_until(lambda: ledger.ran(["good"]) == 1, 60, "the good task ran after the bad ones")
    wait_until(lambda: vhost.messages(queue_name) == 0, 30, "nothing left in the queue")
    assert worker.proc.poll() is None, worker.output[-3000:]
    unnamed = [n for n in range(30) if not re.search(rf"(?i)reject.*\bbad-{n}\b", worker.output)]
    assert not unnamed, f"no rejection line naming bad-{unnamed}:\n{worker.output[-5000:]}"
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0

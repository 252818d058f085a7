"""A real worker, in this process, over SQLite and Redis, fed a corpus of 250+ malformed task messages.

Issue 10 (tests): malformed input on every transport, with 0 crashes, 0 valid tasks lost and nothing left behind.
The corpus is published through the transport (so each entry is a well-formed broker message whose *task* is
malformed): bodies that are not JSON or not a ``[args, kwargs, embed]`` triple, headers of the wrong type, unknown
task names, ``eta``/``expires`` that are not dates, content types the worker does not accept, huge arguments. A
fixed part comes from a seeded generator, the rest from hypothesis (derandomized). Twenty valid tasks published
among them all run and return their result, the worker stays alive, and after a warm stop the queue is empty,
nothing is in Redis ``unacked`` and no SQLite row is leased.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import sqlite3
import sys
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from celeriac.protocol.message import Message
from celeriac.testing import start_worker, wait_for
from celeriac.transports.base import Transport
from celeriac.transports.redis.transport import RedisTransport
from celeriac.transports.sqlite.transport import database_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster import Broker

SINK = "malformed.sink"  # a registered task that takes anything: a malformed message that still runs is harmless
UNKNOWN = "malformed.no_such_task"
EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
ODD: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from([None, 0, -1, 2**70, 1.5, math.nan, math.inf, -math.inf, "", "x", [], {}, [1, "a"], True]),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
BAD_DATES = st.one_of(
    st.sampled_from(["", "soon", "2026-13-45T99:00:00", "yesterday", "9999-99-99", "NaN", "1e999", "T", "+00:00"]),
    st.text(alphabet="0123456789-:T+Z. ", max_size=8),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)
HEADERS = ("task", "id", "eta", "expires", "retries", "timelimit", "root_id", "parent_id", "group", "argsrepr",
           "kwargsrepr", "origin", "ignore_result", "shadow", "lang")  # fmt: skip


def headers(n: int, task: str = SINK, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "lang": "py", "task": task, "id": f"bad-{n}", "root_id": f"bad-{n}", "parent_id": None, "group": None,
        "retries": 0, "eta": None, "expires": None, "timelimit": [None, None],
    }  # fmt: skip
    base.update(changes)
    return base


def good_body(args: Any = (), kwargs: Any = None) -> bytes:
    return json.dumps([list(args), kwargs or {}, EMBED]).encode()


@st.composite
def malformed(draw: st.DrawFn) -> dict[str, Any]:
    """The fields of one malformed task message (``n`` is filled in by the caller)."""
    kind = draw(st.sampled_from(["body", "header", "date", "content", "unknown"]))
    if kind == "body":
        body = draw(st.one_of(st.binary(max_size=80), st.text(max_size=40).map(str.encode), ODD.map(_dumps)))
        return {"body": body, "headers": {}}
    if kind == "header":
        name = draw(st.sampled_from(HEADERS))
        return {"body": good_body(), "headers": {name: draw(ODD)}}
    if kind == "date":
        name = draw(st.sampled_from(["eta", "expires"]))
        return {"body": good_body(), "headers": {name: draw(BAD_DATES)}}
    if kind == "content":
        content_type = draw(st.sampled_from(["text/plain", "application/x-python-serialize", "", "application/data",
                                             "application/x-yaml", "application/json; charset=latin-1"]))  # fmt: skip
        encoding = draw(st.sampled_from(["utf-8", "binary", "latin-1", "", "rot13"]))
        return {"body": good_body(), "headers": {}, "content_type": content_type, "content_encoding": encoding}
    return {"body": good_body(draw(st.lists(ODD, max_size=3))), "headers": {"task": UNKNOWN}}


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def seeded_corpus(seed: int = 10) -> list[dict[str, Any]]:
    """A fixed corpus: every kind of damage at least once, including huge arguments and bytes that are not UTF-8."""
    rng = random.Random(seed)
    items: list[dict[str, Any]] = []
    for body in [b"", b"[", b"null", b"[1, 2]", b"[[], {}]", b'[[], {}, {"chain": 5}]', b"{}", b"NaN", b"1e999999",
                 b"\xff\xfe", b'[["\xff"], {}, {}]', b"[[], [], []]", b'["a", "b", "c"]', b"[[], {}, []]"]:  # fmt: skip
        items.append({"body": body, "headers": {}})
    for name in HEADERS:
        odds: list[Any] = [None, 5, 2**70, math.nan, [], {"a": 1}, "\udcff" if name == "id" else "x"]
        for odd in odds:
            items.append({"body": good_body(), "headers": {name: odd}})
    for _ in range(10):
        items.append({"body": rng.randbytes(rng.randrange(1, 200)), "headers": {}})
    items.append({"body": good_body(["x" * 200_000]), "headers": {}})  # huge arguments (200 KB)
    items.append({"body": good_body(list(range(20_000))), "headers": {}})
    items.append({"body": good_body([[[[[[[[[[[[]]]]]]]]]]]] * 100), "headers": {}})
    items.append({"body": good_body(kwargs={f"k{i}": i for i in range(5_000)}), "headers": {}})
    return items


def hypothesis_corpus(count: int) -> list[dict[str, Any]]:
    """``count`` derandomized hypothesis examples of :func:`malformed` (generation only: nothing to shrink)."""
    drawn: list[dict[str, Any]] = []

    @settings(max_examples=count, derandomize=True, database=None, deadline=None, phases=[Phase.generate])
    @given(malformed())
    def collect(item: dict[str, Any]) -> None:
        drawn.append(item)

    collect()
    return drawn


async def drained(transport: Transport, timeout: float = 20.0) -> None:
    """Wait until the worker has taken every message of the queue (run, refused or dead-lettered)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while await transport.size("celery"):
        assert asyncio.get_running_loop().time() < deadline, "the worker left messages in the queue"
        await asyncio.sleep(0.1)


def to_message(n: int, item: dict[str, Any]) -> Message:
    fields = headers(n, **item["headers"])
    return Message(
        body=item["body"],
        content_type=item.get("content_type", "application/json"),
        content_encoding=item.get("content_encoding", "utf-8"),
        headers=fields,
        properties={"correlation_id": f"bad-{n}", "reply_to": "", "delivery_mode": 2, "priority": 0},
    )


async def test_malformed_task_messages_never_stop_the_worker_nor_lose_a_valid_task(broker: Broker) -> None:
    corpus = seeded_corpus() + hypothesis_corpus(200)
    assert len(corpus) >= 250, len(corpus)
    app = broker.app()

    @app.task(name=SINK)
    def sink(*args: Any, **kwargs: Any) -> int:
        return len(args) + len(kwargs)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    transport = await app.atransport()
    await transport.declare("celery")
    results: list[Any] = []
    refused = 0
    every = len(corpus) // 20
    for n, item in enumerate(corpus):
        if n % every == 0 and len(results) < 20:
            results.append(await add.aapply_async((n, 1)))
        try:
            await transport.publish(to_message(n, item), "celery")
        except ValueError as exc:  # Redis refuses a header that is not valid Unicode: it never enters the queue
            assert broker.kind == "redis" and "not valid Unicode" in str(exc)
            refused += 1
    assert len(results) == 20
    async with start_worker(app, concurrency=4) as worker:
        for n, result in enumerate(results):
            assert await result.aget(timeout=20) == n * every + 1
        await wait_for(lambda: worker.state.total.get(add.name, 0) == 20, timeout=10)
        await drained(transport)
    # After the warm stop (which closed the app's transport): nothing came back to the queue, nothing is held.
    if broker.kind == "redis":
        assert isinstance(transport, RedisTransport)
        keys = transport.settings.keys
        client = aioredis.Redis.from_url(broker.url)
        try:
            assert await client.llen(keys.queue("celery")) == 0
            assert await client.hlen(keys.unacked) == 0 and await client.zcard(keys.unacked_index) == 0
        finally:
            await client.aclose()
    else:
        with sqlite3.connect(database_path(broker.url)) as conn:
            assert conn.execute("SELECT COUNT(*) FROM messages WHERE lease_owner IS NOT NULL").fetchone()[0] == 0
            assert conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
    print(
        f"\n[corpus] worker on {broker.kind}: {len(corpus)} malformed ({refused} refused at publish), "
        f"processed {worker.state.processed}"
    )
    await app.aclose()

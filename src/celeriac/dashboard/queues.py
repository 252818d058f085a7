"""Looking into a queue without consuming it: the oldest waiting messages of the SQLite and Redis brokers.

SQLite: a read-only connection of its own to the broker file (WAL readers never block the workers), rows not
leased, in delivery order; a message's age is measured from its ``visible_at``. Redis: LRANGE on the right end
of each priority list (consumers take from the right), keys built by the transport so ``global_keyprefix`` is
honoured; a message's age comes from its task's ``task-sent`` time in the history when known. AMQP has no way to
look without taking a message (basic.get and a requeue would mark it redelivered, and count a delivery on a
quorum queue), so there the history answers instead: of the tasks sent to the queue (``task-sent`` events, Celery's
``task_send_sent_event``) and never received, the ``depth`` most recent ones are taken as what the queue holds.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from celeriac.transports.base import Transport

PEEK_SQL = (
    "SELECT id, headers, properties, visible_at FROM messages WHERE queue = ? AND lease_until IS NULL "
    "AND visible_at <= ? ORDER BY priority DESC, id LIMIT ?"
)
OLDEST_SQL = "SELECT min(visible_at) FROM messages WHERE queue = ? AND lease_until IS NULL AND visible_at <= ?"


def summary(headers: Any, properties: Any) -> dict[str, Any]:
    """What the Queues page shows of one message (task id and name, retries, ETA), never its arguments."""
    headers = headers if isinstance(headers, dict) else {}
    properties = properties if isinstance(properties, dict) else {}
    return {
        "id": headers.get("id") or properties.get("correlation_id"),
        "task": headers.get("task"),
        "retries": headers.get("retries"),
        "eta": headers.get("eta"),
        "root_id": headers.get("root_id"),
    }


def supported(transport: Transport | None) -> bool:
    """Whether ``transport`` can be peeked (by module, so the redis package is imported only when in use)."""
    module = type(transport).__module__
    return module.startswith(("celeriac.transports.sqlite", "celeriac.transports.redis"))


def _sqlite_peek(path: str, queue: str, limit: int) -> tuple[list[dict[str, Any]], float | None]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        now = time.time()
        rows = db.execute(PEEK_SQL, (queue, now, limit)).fetchall()
        oldest = db.execute(OLDEST_SQL, (queue, now)).fetchone()[0]
    finally:
        db.close()
    messages = [{**summary(json.loads(h), json.loads(p)), "waiting": now - v} for _, h, p, v in rows]
    return messages, (now - oldest) if oldest is not None else None


Unreceived = Callable[[str, int, int], list[dict[str, Any]]]
"""``(queue, depth, limit)`` -> the history's guess at the queue's next messages (`Store.unreceived`)."""


async def _from_history(
    transport: Transport, queue: str, limit: int, unreceived: Unreceived
) -> tuple[list[dict[str, Any]], float | None]:
    depth = await transport.size(queue)
    if not depth:
        return [], None
    rows = await asyncio.to_thread(unreceived, queue, depth, limit)
    now = time.time()
    messages = [
        {
            "id": row["uuid"],
            "task": row["name"],
            "retries": row["retries"],
            "eta": None,
            "root_id": row["root_id"],
            "waiting": now - row["sent"],
            "estimated": True,
        }
        for row in rows
    ]
    if len(messages) < min(depth, limit):  # e.g. a dead-letter queue: its tasks were received, then failed
        unknown = depth - len(messages)
        note = f"({unknown} messages not known from task-sent events)"
        messages.append({"id": None, "task": note, "retries": None, "eta": None, "waiting": None, "estimated": True})
    return messages, (messages[0]["waiting"] if messages and messages[0].get("id") else None)


async def peek(
    transport: Transport,
    queue: str,
    limit: int,
    sent_at: Callable[[str], float | None],
    unreceived: Unreceived | None = None,
) -> tuple[list[dict[str, Any]], float | None]:
    """The next ``limit`` messages of ``queue`` (oldest first) and the age of the oldest one (None: unknown).

    On a broker that cannot be looked into (AMQP) the answer comes from ``unreceived`` (the history), each
    message marked ``estimated``; without it, that is a `ValueError`.
    """
    if not supported(transport):
        if unreceived is None:
            raise ValueError(
                f"peeking is not offered on {type(transport).__name__} (it would mark messages redelivered)"
            )
        return await _from_history(transport, queue, limit, unreceived)
    if type(transport).__module__.startswith("celeriac.transports.sqlite"):
        from celeriac.transports.sqlite.transport import SQLiteTransport

        assert isinstance(transport, SQLiteTransport)
        return await asyncio.to_thread(_sqlite_peek, str(transport.path), queue, limit)
    from celeriac.transports.redis.transport import RedisTransport

    assert isinstance(transport, RedisTransport)
    messages: list[dict[str, Any]] = []
    for key in transport.ops.keys.queue_lists(queue):
        raw = await transport.ops.client.lrange(key, -limit, -1)
        for item in reversed(raw):
            try:
                envelope = json.loads(item)
            except (ValueError, UnicodeDecodeError):
                messages.append({"id": None, "task": "(unreadable message)"})
                continue
            messages.append(summary(envelope.get("headers"), envelope.get("properties")))
    messages = messages[:limit]
    now = time.time()
    for message in messages:
        sent = sent_at(message["id"]) if message.get("id") else None
        message["waiting"] = now - sent if sent is not None else None
    oldest = messages[0]["waiting"] if messages else None
    return messages, oldest

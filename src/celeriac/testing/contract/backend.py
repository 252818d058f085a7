"""The behaviour every result backend must show: one ``async def check_…(make)`` per promise of
`celeriac.backends.base` (store, read, wait, forget, expiry, close), all listed in `RESULT_CHECKS`."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from celeriac import errors
from celeriac.backends.base import READY_STATES, TaskMeta, pending_meta
from celeriac.testing.contract.helpers import TIMEOUT, BackendCheck, BackendFactory, is_pending, raises, wait_for


def task_meta(task_id: str, status: str, result: Any = None, **extended: Any) -> TaskMeta:
    """A record as a worker stores it (``date_done`` only for ready states)."""
    meta = TaskMeta(
        task_id=task_id,
        status=status,
        result=result,
        traceback=None,
        children=[],
        date_done="2026-11-23T19:22:32.474739+00:00" if status in READY_STATES else None,
    )
    meta.update(extended)  # type: ignore[typeddict-item]
    return meta


def _new_id() -> str:
    return str(uuid.uuid4())


async def check_missing_is_pending(make: BackendFactory) -> None:
    async with make() as backend:
        task_id = _new_id()
        assert await backend.get_meta(task_id) == pending_meta(task_id)


async def check_store_and_get(make: BackendFactory) -> None:
    """A stored record reads back equal, extended fields included; a later store replaces it."""
    async with make() as backend:
        task_id = _new_id()
        await backend.store(task_meta(task_id, "STARTED", {"pid": 1, "hostname": "w@h"}))
        assert (await backend.get_meta(task_id))["status"] == "STARTED"
        stored = task_meta(
            task_id, "SUCCESS", {"sum": [1, 2.5, "x", None]}, name="t.add", args=[2, 3], kwargs={}, retries=0
        )
        await backend.store(stored)
        assert await backend.get_meta(task_id) == stored


async def check_success_not_replaced(make: BackendFactory) -> None:
    """SUCCESS is final: a later FAILURE or STARTED does not replace it (FAILURE itself can be replaced)."""
    async with make() as backend:
        task_id = _new_id()
        await backend.store(task_meta(task_id, "FAILURE", {"exc_type": "KeyError", "exc_message": ["k"]}))
        await backend.store(task_meta(task_id, "SUCCESS", 5))
        await backend.store(task_meta(task_id, "FAILURE", {"exc_type": "KeyError", "exc_message": ["k"]}))
        await backend.store(task_meta(task_id, "STARTED"))
        meta = await backend.get_meta(task_id)
        assert (meta["status"], meta["result"]) == ("SUCCESS", 5)


async def check_wait(make: BackendFactory) -> None:
    """wait returns the ready record stored later through another connection, skipping non-ready states."""
    async with make() as waiter, make() as worker:
        task_id = _new_id()
        waiting = asyncio.ensure_future(waiter.wait(task_id, timeout=TIMEOUT))
        await worker.store(task_meta(task_id, "STARTED"))
        assert await is_pending(waiting, 0.1), "wait returned for a non-ready state"
        await worker.store(task_meta(task_id, "SUCCESS", [1, 2]))
        meta = await asyncio.wait_for(waiting, TIMEOUT)
        assert (meta["status"], meta["result"]) == ("SUCCESS", [1, 2])
        assert (await waiter.wait(task_id, timeout=1.0))["status"] == "SUCCESS"  # already ready: at once


async def check_wait_many(make: BackendFactory) -> None:
    """Concurrent waits on many tasks each get their own record (stored through the same backend)."""
    async with make() as backend:
        ids = [_new_id() for _ in range(30)]
        waits = [asyncio.ensure_future(backend.wait(task_id, timeout=TIMEOUT)) for task_id in ids]
        await asyncio.gather(*(backend.store(task_meta(t, "SUCCESS", t)) for t in ids))
        results = await asyncio.wait_for(asyncio.gather(*waits), TIMEOUT)
        assert [meta["result"] for meta in results] == ids


async def check_wait_timeout(make: BackendFactory) -> None:
    """wait raises celeriac.errors.TimeoutError (also a builtin TimeoutError) when nothing is ready."""
    async with make() as backend:
        task_id = _new_id()
        await backend.store(task_meta(task_id, "STARTED"))
        started = time.monotonic()
        with raises(errors.TimeoutError):
            await backend.wait(task_id, timeout=0.2)
        assert 0.15 <= time.monotonic() - started < TIMEOUT
        assert issubclass(errors.TimeoutError, TimeoutError)


async def check_forget(make: BackendFactory) -> None:
    async with make() as backend:
        task_id = _new_id()
        await backend.store(task_meta(task_id, "SUCCESS", 1))
        await backend.forget(task_id)
        assert (await backend.get_meta(task_id))["status"] == "PENDING"
        await backend.forget(task_id)  # forgetting nothing is fine


async def check_expiry(make: BackendFactory) -> None:
    """A record stored with ``expires`` reads as PENDING once it expires; a kept one stays."""
    async with make() as backend:
        short, kept = _new_id(), _new_id()
        await backend.store(task_meta(short, "SUCCESS", 1), expires=0.5)
        await backend.store(task_meta(kept, "SUCCESS", 2))
        assert (await backend.get_meta(short))["status"] == "SUCCESS"

        async def expired() -> bool:
            return (await backend.get_meta(short))["status"] == "PENDING"

        await wait_for(expired, what="the record expired")
        assert (await backend.get_meta(kept))["status"] == "SUCCESS"
        await backend.store(task_meta(short, "SUCCESS", 3))  # an expired SUCCESS no longer blocks a store
        assert (await backend.get_meta(short))["result"] == 3


async def check_backend_close(make: BackendFactory) -> None:
    """close may be called twice; a pending wait ends with BackendError; use after close raises it too."""
    backend = make()
    await backend.connect()
    waiting = asyncio.ensure_future(backend.wait(_new_id(), timeout=TIMEOUT))
    assert await is_pending(waiting, 0.05)
    await backend.close()
    await backend.close()
    with raises(errors.BackendError):
        await asyncio.wait_for(waiting, TIMEOUT)
    with raises(errors.BackendError):
        await backend.store(task_meta(_new_id(), "SUCCESS"))
    with raises(errors.BackendError):
        await backend.get_meta(_new_id())


RESULT_CHECKS: tuple[BackendCheck, ...] = (
    check_missing_is_pending,
    check_store_and_get,
    check_success_not_replaced,
    check_wait,
    check_wait_many,
    check_wait_timeout,
    check_forget,
    check_expiry,
    check_backend_close,
)

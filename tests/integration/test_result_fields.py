"""What an ``AsyncResult`` tells beyond the value, on a real in-process worker (SQLite and Redis): Celery's
extended fields with ``result_extended=True``, ``date_done``, ``wait``, ``revoke()`` from the result itself, and
``then()`` callbacks."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from cluster import Broker

from celeriac.errors import TaskRevokedError
from celeriac.testing import start_worker

TIMEOUT = 20


async def test_extended_fields_revoke_and_then(broker: Broker) -> None:
    app = broker.app("fields", result_extended=True)
    gate = asyncio.Event()

    @app.task(name="f.add")
    def add(x: int, y: int = 0) -> int:
        return x + y

    @app.task(name="f.held")
    async def held() -> None:
        await gate.wait()

    async with start_worker(app, hostname="fields@itest", concurrency=2):
        before = dt.datetime.now(dt.UTC)
        result = await add.adelay(2, y=3)
        assert await result.aget(timeout=TIMEOUT) == 5
        assert (result.name, result.args, result.kwargs) == ("f.add", [2], {"y": 3})
        assert (result.worker, result.retries, result.queue) == ("fields@itest", 0, "celery")
        assert result.date_done is not None and result.date_done >= before - dt.timedelta(seconds=1)

        blocked = await held.adelay()
        await wait_for_active(app, blocked.id)
        replies = await blocked.arevoke(terminate=True, wait=True, timeout=5, limit=1)
        assert replies and "fields@itest" in replies[0]
        try:
            await blocked.aget(timeout=TIMEOUT)
        except TaskRevokedError:
            pass
        else:
            raise AssertionError("a terminated task must end REVOKED")

        seen: list[Any] = []
        later = await add.adelay(20, y=1)
        future = later.then(lambda r: seen.append(r.result) or "called")
        assert await asyncio.wrap_future(future) == "called" and seen == [21]
    gate.set()
    await app.aclose()


async def wait_for_active(app: Any, task_id: str) -> None:
    """Until the in-process worker runs ``task_id``, as ``inspect active`` reports it through the real mailbox."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            replies = await app.control.abroadcast("active", reply=True, timeout=2, limit=1)
            if any(task["id"] == task_id for reply in replies for tasks in reply.values() for task in tasks):
                return


def test_a_timeout_names_the_seconds_asked_for(redis_url: str, prefix: str) -> None:
    """A short ``get(timeout=)`` is spent in the direct hand-over wait first; the error still says the timeout given."""
    import pytest

    from celeriac import App
    from celeriac.errors import TimeoutError as ResultTimeout

    app = App("fields", broker=redis_url, backend=redis_url)
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    app.conf.result_backend_transport_options = {"global_keyprefix": prefix}
    try:
        with pytest.raises(ResultTimeout, match=r"was not ready within 0\.3s$"):
            app.AsyncResult("never-sent").get(timeout=0.3)
    finally:
        app.close()

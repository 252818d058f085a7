"""celeriac: ``-P asyncio`` (its default pool), ``async def`` no-op; the client's ``delay()`` loop."""

from __future__ import annotations

from common import REDIS_URL, amark_done

from celeriac import App

app = App("peers", broker=REDIS_URL)


@app.task(name="peers.noop", ignore_result=True)
async def noop() -> None:
    """Nothing."""


@app.task(name="peers.sentinel", ignore_result=True)
async def sentinel() -> None:
    await amark_done()


def enqueue(n: int) -> None:
    for _ in range(n):
        noop.delay()
    sentinel.delay()
    app.close()

"""``task_queues`` on a real in-process worker (SQLite and Redis): a worker without ``-Q`` consumes every declared
queue, a task sent to a queue with an exchange goes through its binding, and a message published by hand to that
exchange and routing key (as a Celery client routing by exchange would) reaches the queue."""

from __future__ import annotations

from collections.abc import Callable

from cluster import Broker

from celeriac import Exchange, Queue
from celeriac.testing import start_worker

TIMEOUT = 20


async def test_declared_queues_are_consumed_and_routed(broker: Broker, queue_name: str) -> None:
    videos, plain = f"{queue_name}-videos", f"{queue_name}-plain"
    app = broker.app("queues")
    app.conf.task_queues = [Queue(plain), Queue(videos, Exchange(f"{queue_name}-media"), routing_key="media.video")]
    app.conf.task_default_queue = plain

    @app.task(name="q.where", bind=True)
    def where(self: object) -> str:
        return self.request.delivery_info["routing_key"]  # type: ignore[attr-defined,no-any-return]

    async with start_worker(app, concurrency=2) as worker:
        assert worker.queues == [plain, videos]
        assert await (await where.aapply_async()).aget(timeout=TIMEOUT) == plain
        assert await (await where.aapply_async(queue=videos)).aget(timeout=TIMEOUT) == "media.video"
        by_exchange = await where.aapply_async(exchange=f"{queue_name}-media", routing_key="media.video")
        assert await by_exchange.aget(timeout=TIMEOUT) == "media.video"
    await app.aclose()


async def test_rabbitmq_declares_each_queue_with_its_arguments(
    amqp_url: str, amqp_vhost: str, queue_name: str, ctl: Callable[..., str]
) -> None:
    from celeriac import App

    slow, fast = f"{queue_name}-slow", f"{queue_name}-fast"
    app = App("queues", broker=amqp_url, backend="rpc://")
    app.conf.task_queues = [Queue(slow, queue_arguments={"x-message-ttl": 60000}), Queue(fast, max_priority=5)]

    @app.task(name="q.echo")
    def echo(value: int) -> int:
        return value

    async with start_worker(app, concurrency=2):
        assert await (await echo.aapply_async((7,), queue=fast, priority=3)).aget(timeout=TIMEOUT) == 7
        listing = ctl("list_queues", "-q", "-p", amqp_vhost, "name", "arguments")
    rows = {line.split("\t")[0]: line for line in listing.splitlines()}
    assert "x-message-ttl" in rows[slow] and "60000" in rows[slow], listing
    assert "x-max-priority" in rows[fast] and "5" in rows[fast], listing
    await app.aclose()

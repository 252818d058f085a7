# Celery has no type hints; calling it is part of the point here.
# mypy: disallow-untyped-calls=False
"""The ``rpc://`` result backend against a real RabbitMQ (a virtual host of its own per test), and against
Celery 5.7's own rpc backend and kombu: the reply queue's attributes, the message format, both directions.

Nothing waits on the clock: results are awaited with timeouts; the reconnect test waits for the link's counter.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import uuid
from collections.abc import AsyncIterator

import pytest

from celeriac import App
from celeriac.backends import from_url, keeps_results
from celeriac.backends.base import BackendOptions, ReplyTo, TaskMeta
from celeriac.backends.rpc import RPCBackend
from celeriac.backends.rpc.inbox import Inbox
from celeriac.errors import BackendError, ConfigurationError
from celeriac.errors import TimeoutError as ResultTimeout

pytestmark = pytest.mark.amqp


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, timeout=60, check=True)


@pytest.fixture
def vhost(amqp_vhost: str) -> str:
    """This run's RabbitMQ virtual host (every test names its own queues, after uuids)."""
    return amqp_vhost


@pytest.fixture
def broker(amqp_url: str) -> str:
    return amqp_url


def options(broker: str, **extra: object) -> BackendOptions:
    return BackendOptions(broker_url=broker, **extra)  # type: ignore[arg-type]


@pytest.fixture
async def pair(broker: str) -> AsyncIterator[tuple[RPCBackend, RPCBackend]]:
    """A client's backend and a worker's backend on the same broker."""
    client = from_url("rpc://", options(broker))
    worker = from_url("rpc://", options(broker))
    assert isinstance(client, RPCBackend) and isinstance(worker, RPCBackend)
    async with client, worker:
        yield client, worker


def meta(task_id: str, status: str, result: object = None) -> TaskMeta:
    return TaskMeta(task_id=task_id, status=status, result=result, traceback=None, children=[], date_done=None)


# -- configuration -------------------------------------------------------------------------------------------


def test_rpc_needs_an_amqp_broker() -> None:
    with pytest.raises(ConfigurationError, match=r"rpc:// sends results through RabbitMQ, but broker_url is"):
        from_url("rpc://", BackendOptions(broker_url="redis://127.0.0.1:6379/0"))
    with pytest.raises(ConfigurationError, match=r"write just 'rpc://'"):
        from_url("rpc://somehost/", BackendOptions(broker_url="amqp://127.0.0.1//"))
    with pytest.raises(ConfigurationError, match=r"takes no result_backend_transport_options"):
        from_url("rpc://", BackendOptions(broker_url="amqp://127.0.0.1//", extra={"x": 1}))
    assert not keeps_results("rpc://")  # never a default result backend for a broker URL


async def test_send_with_rpc_and_a_redis_broker_is_one_line_error() -> None:
    app = App("t", broker="redis://127.0.0.1:1/0", backend="rpc://")
    with pytest.raises(ConfigurationError, match=r"broker_url is 'redis://127.0.0.1:1/0'"):
        await app.asend_task("x")


# -- the inbox (no I/O) ----------------------------------------------------------------------------------------


async def test_inbox_keeps_unread_results_bounded_and_final_states_final(caplog: pytest.LogCaptureFixture) -> None:
    inbox = Inbox(limit=3)
    for task_id in ("a", "b", "c"):
        inbox.expect(task_id)
    inbox.put("a", meta("a", "SUCCESS", 1))
    inbox.put("b", meta("b", "STARTED"))
    inbox.put("b", meta("b", "SUCCESS", 2))
    inbox.put("b", meta("b", "STARTED"))  # a redelivered run: the final state stays
    with caplog.at_level(logging.WARNING, "celeriac.backends.rpc"):
        inbox.put("c", meta("c", "SUCCESS", 3))
        inbox.put("d", meta("d", "SUCCESS", 4))  # not sent here (out of band): kept too, the oldest goes
    assert inbox.dropped == 1 and "task a (SUCCESS) dropped unread" in caplog.text
    assert (await inbox.wait("b", 1))["result"] == 2
    assert inbox.meta("b")["status"] == "SUCCESS"  # a read final state is still there for a second handle
    assert inbox.meta("d")["result"] == 4
    with pytest.raises(BackendError, match=r"rpc:// sends a task's result only to the client that sent it"):
        inbox.meta("zzz")
    with pytest.raises(ResultTimeout):
        inbox.expect("e")
        await inbox.wait("e", 0.05)
    assert inbox.counts()[2] == 0  # the timed-out waiter is gone


# -- celeriac to celeriac ---------------------------------------------------------------------------------------


async def test_states_travel_to_the_senders_queue(pair: tuple[RPCBackend, RPCBackend]) -> None:
    client, worker = pair
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    queue = await client.reply_to(first)
    assert queue == client.oid and await client.reply_to(second) == queue
    assert (await client.get_meta(first))["status"] == "PENDING"
    waiter = asyncio.create_task(client.wait(first, 10))
    await worker.store_task(meta(second, "SUCCESS", "two"), ReplyTo(queue, second))  # out of order: kept
    await worker.store_task(meta(first, "STARTED"), ReplyTo(queue, first))
    await worker.store_task(meta(first, "SUCCESS", [1, 2]), ReplyTo(queue, first))
    assert (await waiter)["result"] == [1, 2]
    assert (await client.wait(second, 10))["result"] == "two"
    with pytest.raises(BackendError, match="rpc://"):
        await client.get_meta(str(uuid.uuid4()))
    await client.forget(first)
    with pytest.raises(BackendError, match="rpc://"):
        await client.wait(first, 1)


async def test_what_rpc_cannot_do_is_refused(pair: tuple[RPCBackend, RPCBackend]) -> None:
    client, _ = pair
    with pytest.raises(ConfigurationError, match=r"rpc:// result backend cannot join chord members"):
        await client.join_add("g", 0, meta("t", "SUCCESS"), 2)
    with pytest.raises(ConfigurationError, match=r"rpc:// result backend cannot hold a lease"):
        await client.acquire_lease("beat", "me", 10)


async def test_a_state_without_reply_to_is_not_sent_and_said_so(
    pair: tuple[RPCBackend, RPCBackend], caplog: pytest.LogCaptureFixture
) -> None:
    _, worker = pair
    with caplog.at_level(logging.WARNING, "celeriac.backends.rpc"):
        await worker.store_task(meta("t1", "SUCCESS"), None)
        await worker.store(meta("t2", "SUCCESS"))
    assert caplog.text.count("its message has no reply_to") == 2


async def test_a_result_for_a_client_gone_is_dropped_by_rabbitmq(pair: tuple[RPCBackend, RPCBackend]) -> None:
    _, worker = pair
    await worker.store_task(meta("t", "SUCCESS"), ReplyTo("no-such-client-queue", "t"))  # confirmed, dropped


async def test_the_reply_link_comes_back_after_rabbitmq_closed_it(
    pair: tuple[RPCBackend, RPCBackend], vhost: str
) -> None:
    client, worker = pair
    task_id = str(uuid.uuid4())
    queue = await client.reply_to(task_id)
    await asyncio.to_thread(rabbitmqctl, "close_all_connections", "-p", vhost, "test: rpc reconnect")
    async with asyncio.timeout(30):
        while client._link.reopened < 1:  # the condition: the listening link was opened again
            await asyncio.sleep(0.05)
    await worker.store_task(meta(task_id, "SUCCESS", 7), ReplyTo(queue, task_id))  # the worker reconnects too
    assert (await client.wait(task_id, 10))["result"] == 7


# -- against Celery's rpc backend ----------------------------------------------------------------------------------


def test_reply_queue_is_declared_with_celerys_attributes(broker: str) -> None:
    """Celery redeclares a celeriac reply queue with its own attributes: RabbitMQ accepts (a difference would
    close the channel with PRECONDITION_FAILED)."""
    from celery import Celery  # type: ignore[import-untyped]

    async def declare() -> str:
        backend = from_url("rpc://", options(broker))
        assert isinstance(backend, RPCBackend)
        await backend.connect()
        name = await backend.reply_to("t")
        app = Celery("c", broker=broker, backend="rpc://", set_as_current=False)
        try:
            with app.connection() as conn:
                celery_binding = app.backend.binding
                celery_binding.name = celery_binding.routing_key = name
                celery_binding(conn.default_channel).declare()  # raises on any difference
        finally:
            app.close()
            await backend.close()
        return name

    asyncio.run(declare())


async def test_celeriac_worker_state_reaches_a_celery_rpc_client(broker: str) -> None:
    from celery import Celery

    app = Celery("c", broker=broker, backend="rpc://", set_as_current=False)
    app.conf.task_default_queue = "nobody-consumes"
    worker = from_url("rpc://", options(broker))
    try:
        await worker.connect()
        result = await asyncio.to_thread(app.send_task, "taskapp.add", (1, 2))
        oid = app.thread_oid  # the sending thread's oid: not this one (to_thread), so read it from Celery's message
        assert oid
        await worker.store_task(meta(result.id, "SUCCESS", 3), ReplyTo(_reply_to_of(app, result.id), result.id))
        assert await asyncio.to_thread(result.get, timeout=10) == 3
    finally:
        await worker.close()
        app.close()


def _reply_to_of(app: object, task_id: str) -> str:
    """The reply_to of the task message Celery queued in 'nobody-consumes' (read with a basic.get)."""
    with app.connection() as conn:  # type: ignore[attr-defined]
        message = conn.default_channel.basic_get("nobody-consumes", no_ack=True)
        assert message is not None and message.properties["correlation_id"] == task_id
        return str(message.properties["reply_to"])


async def test_celery_worker_result_reaches_a_celeriac_rpc_client(broker: str, tmp_path: object) -> None:
    """A real Celery rpc backend publishes a result (as its worker does) to a celeriac client's queue."""
    from celery import Celery

    client = from_url("rpc://", options(broker))
    assert isinstance(client, RPCBackend)
    app = Celery("w", broker=broker, backend="rpc://", set_as_current=False)
    try:
        await client.connect()
        task_id = str(uuid.uuid4())
        queue = await client.reply_to(task_id)

        class Request:  # what Celery's backend reads from a task request
            reply_to = queue
            correlation_id = task_id
            group = parent_id = None
            delivery_info: dict[str, str] = {}
            children: list[object] = []
            ignore_result = False

        await asyncio.to_thread(app.backend.store_result, task_id, {"pid": 1}, "STARTED", request=Request())
        await asyncio.to_thread(app.backend.store_result, task_id, {"x": 1}, "SUCCESS", request=Request())
        got = await client.wait(task_id, 10)
        assert got["status"] == "SUCCESS" and got["result"] == {"x": 1} and got["task_id"] == task_id
    finally:
        await client.close()
        app.close()


# -- the whole path: a celeriac client and an in-process celeriac worker on RabbitMQ ------------------------------


async def test_celeriac_client_and_worker_with_rpc_results(broker: str, queue_name: str) -> None:
    from celeriac.testing import start_worker

    app = App("rpcapp", broker=broker, backend="rpc://", task_default_queue=queue_name, task_track_started=True)
    gate = asyncio.Event()

    @app.task(name="rpcapp.held")
    async def held(x: int) -> int:
        await gate.wait()
        return x * 2

    @app.task(name="rpcapp.boom")
    async def boom() -> None:
        raise KeyError("nope")

    try:
        async with start_worker(app, concurrency=4):
            result = await held.adelay(21)
            async with asyncio.timeout(20):  # the STARTED state arrives on the reply queue while the body waits
                while await result.astate() != "STARTED":
                    await asyncio.sleep(0.01)
            gate.set()
            assert await result.aget(timeout=20) == 42
            failed = await boom.adelay()
            with pytest.raises(KeyError, match="nope"):
                await failed.aget(timeout=20)
            many = [await held.adelay(i) for i in range(50)]
            assert [await r.aget(timeout=20) for r in reversed(many)] == [i * 2 for i in reversed(range(50))]
    finally:
        await app.aclose()


async def test_update_state_progress_reaches_the_rpc_client(broker: str, queue_name: str) -> None:
    """``self.update_state(state="PROGRESS")`` goes to the sending client's reply queue, like every other state."""
    from celeriac.testing import start_worker

    app = App("rpcprogress", broker=broker, backend="rpc://", task_default_queue=queue_name)
    gate = asyncio.Event()

    @app.task(name="rpcprogress.slow", bind=True)
    async def slow(self: object, total: int) -> int:
        await self.aupdate_state(state="PROGRESS", meta={"done": 1, "total": total})  # type: ignore[attr-defined]
        await gate.wait()
        return total

    try:
        async with start_worker(app, concurrency=2):
            result = await slow.adelay(3)
            async with asyncio.timeout(20):
                while await result.astate() != "PROGRESS":
                    await asyncio.sleep(0.01)
            assert (await result.ameta())["result"] == {"done": 1, "total": 3}
            gate.set()
            assert await result.aget(timeout=20) == 3
    finally:
        await app.aclose()

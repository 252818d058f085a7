"""A real worker, in this process, over SQLite and Redis, under hostile input: decompression bombs, remote-control
abuse (unbounded arguments, disabled commands, read-only mode, unsigned commands), and secrets in its replies
(issue 10, items 8-10)."""

from __future__ import annotations

import bz2
import logging
import lzma
import sys
import zlib
from pathlib import Path

import pytest

from celeriac import App
from celeriac.control.arguments import MAX_QUEUES
from celeriac.control.pidbox import Mailbox
from celeriac.protocol.compressors import DEFAULT_MAX_MESSAGE_BYTES
from celeriac.protocol.message import Message
from celeriac.testing import start_worker, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster import Broker, reply_of

BOMBS = {"application/x-gzip": zlib.compress, "application/x-bz2": bz2.compress, "application/x-lzma": lzma.compress}


async def test_decompression_bombs_are_rejected_with_a_reason_and_the_worker_goes_on(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    app = broker.app()

    @app.task
    def ok() -> str:
        return "fine"

    caplog.set_level(logging.INFO, logger="celeriac")
    transport = await app.atransport()
    await transport.declare("celery")
    expanded = b'[["' + b"0" * (DEFAULT_MAX_MESSAGE_BYTES + 1) + b'"], {}, {}]'
    for n, (mime, compress) in enumerate(BOMBS.items()):
        headers = {"task": ok.name, "id": f"bomb-{n}", "lang": "py", "compression": mime}
        await transport.publish(Message(body=compress(expanded), headers=headers), "celery")
    async with start_worker(app) as worker:
        assert await (await ok.adelay()).aget(timeout=20) == "fine"
        await wait_for(lambda: worker.state.processed == 1)
        assert await transport.size("celery") == 0
    for n in range(len(BOMBS)):
        assert f"Rejecting undecodable message bomb-{n}" in caplog.text
    assert caplog.text.count("(worker_max_message_bytes); refused") == len(BOMBS)
    await app.aclose()


async def test_worker_max_message_bytes_caps_plain_bodies(broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    app = broker.app()
    app.conf.worker_max_message_bytes = 10_000

    @app.task
    def echo(text: str) -> int:
        return len(text)

    caplog.set_level(logging.INFO, logger="celeriac")
    big = await echo.aapply_async(("x" * 20_000,))
    async with start_worker(app) as worker:
        assert await (await echo.adelay("small")).aget(timeout=20) == 5
        await wait_for(lambda: f"Rejecting undecodable message {big.id}" in caplog.text, timeout=20)
        await wait_for(lambda: worker.state.processed == 1, timeout=10)  # counted just after the result is stored
    assert "is over 10000 (worker_max_message_bytes)" in caplog.text
    await app.aclose()


async def test_unbounded_control_arguments_are_refused_with_an_error_reply(broker: Broker) -> None:
    app = broker.app()

    @app.task
    def ok() -> str:
        return "fine"

    node = "bounds@itest"
    async with start_worker(app, hostname=node, concurrency=2) as worker:

        async def ask(method: str, **arguments: object) -> object:
            replies = await app.control.abroadcast(method, arguments, reply=True, timeout=5, destination=[node])
            return reply_of(replies[0], node)

        grow = await ask("pool_grow", n=200_000)
        assert "200000 is not between 1 and 1000" in str(grow)
        assert worker.pool.concurrency == 2
        limit = await ask("time_limit", task_name=ok.name, hard=-1)
        assert "-1 is not a number of seconds" in str(limit)
        assert ok.time_limit is None
        assert await (await ok.adelay()).aget(timeout=10) == "fine"  # the task still runs
        for n in range(MAX_QUEUES - len(worker.queues)):
            assert await ask("add_consumer", queue=f"q{n}") == {"ok": f"add consumer q{n}"}
        refused = await ask("add_consumer", queue="one-too-many")
        assert f"at most {MAX_QUEUES}" in str(refused)
        assert len(worker.queues) == MAX_QUEUES and "one-too-many" not in worker.queues
        assert await ask("ping") == {"ok": "pong"}  # remote control still answers
    await app.aclose()


async def test_a_huge_revoke_is_one_short_log_line(broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    app = broker.app()
    caplog.set_level(logging.INFO, logger="celeriac")
    ids = [f"revoked-{n:06d}" for n in range(100_000)]
    async with start_worker(app, hostname="rv@itest") as worker:
        await app.control.abroadcast("revoke", {"task_id": ids}, reply=True, timeout=10, destination=["rv@itest"])
        await wait_for(lambda: "revoked-099999" in worker.state.revoked)
    lines = [r.getMessage() for r in caplog.records if "flagged as revoked" in r.getMessage()]
    assert lines == ["Tasks flagged as revoked: 100000 ids: " + ", ".join(ids[:5]) + ", ... (99995 more)"]
    await app.aclose()


async def test_disabled_commands_and_read_only_mode_reply_with_an_error(broker: Broker) -> None:
    app = broker.app(worker_control_disabled=["shutdown"])
    readonly = broker.app("ro", worker_control_readonly=True)
    async with start_worker(app, hostname="dis@itest"), start_worker(readonly, hostname="ro@itest") as ro:
        replies = await app.control.abroadcast("shutdown", reply=True, timeout=5, destination=["dis@itest"])
        assert replies == [
            {"dis@itest": {"error": "command 'shutdown' is disabled on this worker (worker_control_disabled)"}}
        ]
        grow = await app.control.abroadcast("pool_grow", {"n": 1}, reply=True, timeout=5, destination=["ro@itest"])
        assert "read-only" in reply_of(grow[0], "ro@itest")["error"]
        concurrency = ro.pool.concurrency
        pong = await app.control.abroadcast("ping", reply=True, timeout=5, destination=["dis@itest", "ro@itest"])
        assert sorted(pong, key=str) == [{"dis@itest": {"ok": "pong"}}, {"ro@itest": {"ok": "pong"}}]
        assert ro.pool.concurrency == concurrency
    await app.aclose()
    await readonly.aclose()


async def test_with_a_signing_key_only_signed_commands_are_obeyed(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    key = "shared-s3cret"
    app = broker.app(control_signing_key=key)
    caplog.set_level(logging.WARNING, logger="celeriac")
    async with start_worker(app, hostname="sig@itest"):
        transport = await app.atransport()
        unsigned = await Mailbox(transport).call("ping", reply=True, timeout=1, destination=["sig@itest"])
        assert unsigned == []
        wrong = await Mailbox(transport, signing_key="guess").call("ping", reply=True, timeout=1)
        assert wrong == []
        for _ in range(50):  # a flood of unsigned commands is not a flood of log lines
            await Mailbox(transport).call("ping")
        signed = await Mailbox(transport, signing_key=key).call(
            "ping", reply=True, timeout=5, destination=["sig@itest"]
        )
        assert signed == [{"sig@itest": {"ok": "pong"}}]
    assert "control: ignored a command: unsigned command" in caplog.text
    assert "control: ignored a command: bad signature" in caplog.text
    assert caplog.text.count("ignored a command") == 2
    await app.aclose()


async def test_inspect_conf_report_and_stats_show_no_nested_secret(sqlite_url: str) -> None:
    # On SQLite: the Redis transport refuses an `ssl` dict with a plain redis:// URL; the masking is the same.
    app = App(
        "secrets",
        broker=sqlite_url,
        broker_transport_options={"polling_interval": 0.02},
        result_backend_transport_options={"ssl": {"ssl_password": "pw-in-ssl"}, "nested": [{"token": "tok-1"}]},
    )
    async with start_worker(app, hostname="sec@itest"):
        inspect = app.control.inspect(destination=["sec@itest"], timeout=5)
        conf = reply_of(await inspect.aconf(), "sec@itest")
        report = reply_of(await inspect.areport(), "sec@itest")
        stats = reply_of(await inspect.astats(), "sec@itest")
    assert conf["result_backend_transport_options"] == {
        "ssl": {"ssl_password": "********"},
        "nested": [{"token": "********"}],
    }
    for shown in (str(conf), str(report), str(stats)):
        assert "pw-in-ssl" not in shown and "tok-1" not in shown
    await app.aclose()

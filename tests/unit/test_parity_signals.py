"""``celeriac.signals`` (Celery's names and arguments) and a ``base=`` class's hooks, sent by a real worker on an
SQLite broker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import App, Task, signals
from celeriac.testing import start_worker, wait_for


@pytest.fixture
def app(sqlite_url: str) -> App:
    app = App("signals", broker=sqlite_url)
    app.conf.broker_transport_options = {"polling_interval": 0.02}
    return app


@pytest.fixture
def heard() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every task and worker signal celeriac sends, recorded as (signal name, arguments)."""
    got: list[tuple[str, dict[str, Any]]] = []
    watched = [getattr(signals, name) for name in signals.__all__ if name != "Signal"]

    def receiver(signal: signals.Signal, sender: Any, **named: Any) -> None:
        got.append((signal.name, {"sender": sender, **named}))

    for signal in watched:
        signal.connect(receiver, dispatch_uid="test-heard")
    yield got
    for signal in watched:
        assert signal.disconnect(dispatch_uid="test-heard")


def names(heard: list[tuple[str, dict[str, Any]]], task_id: str | None = None) -> list[str]:
    return [name for name, args in heard if task_id is None or task_id in (args.get("task_id"), _id(args))]


def _id(args: dict[str, Any]) -> str | None:
    request = args.get("request")
    return getattr(request, "id", None)


class Hooked(Task[Any, Any]):
    seen: list[tuple[str, Any]] = []

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        assert self.request.id == task_id  # self.request is set in hooks
        Hooked.seen.append(("before_start", task_id))

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        Hooked.seen.append(("on_success", retval))

    async def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        Hooked.seen.append(("on_failure", repr(exc)))

    def on_retry(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        Hooked.seen.append(("on_retry", task_id))

    def after_return(self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        Hooked.seen.append(("after_return", status))


async def test_a_worker_calls_the_hooks_and_sends_the_task_signals(
    app: App, heard: list[tuple[str, dict[str, Any]]]
) -> None:
    Hooked.seen.clear()

    @app.task(base=Hooked)
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(base=Hooked)
    def boom() -> None:
        raise KeyError("k")

    @app.task(base=Hooked, bind=True, default_retry_delay=0)
    def again(self: Any) -> str:
        if self.request.retries == 0:
            raise self.retry()
        return "done"

    async with start_worker(app, hostname="sig@test") as worker:
        assert names(heard)[:3] == ["celeryd_init", "worker_init", "worker_ready"]
        ok = await add.adelay(2, 3)
        assert await ok.aget(timeout=10) == 5
        failed = await boom.adelay()
        await failed.aget(timeout=10, propagate=False)
        retried = await again.adelay()
        assert await retried.aget(timeout=10) == "done"
        await wait_for(lambda: names(heard, retried.id).count("task_postrun") == 2)
        await wait_for(lambda: ("on_success", "done") in Hooked.seen and len(Hooked.seen) == 11)
        assert worker.hostname == "sig@test"
    assert names(heard)[-1] == "worker_shutdown"
    await app.aclose()

    # (task_success carries no id: it is checked below)
    assert names(heard, ok.id) == ["task_received", "task_prerun", "task_postrun"]
    assert names(heard, failed.id) == ["task_received", "task_prerun", "task_failure", "task_postrun"]
    # (the retry's message may be received before the first run's retry is signalled: count, not order)
    assert sorted(names(heard, retried.id)) == sorted(
        ["task_received", "task_prerun", "task_retry", "task_postrun", "task_received", "task_prerun", "task_postrun"]
    )
    assert names(heard).count("task_success") == 2
    success = next(args for name, args in heard if name == "task_success")
    assert (success["sender"], success["result"]) == (add, 5)
    failure = next(args for name, args in heard if name == "task_failure")
    assert isinstance(failure["exception"], KeyError) and "KeyError" in failure["traceback"]
    postrun = next(args for name, args in heard if name == "task_postrun" and args["task_id"] == ok.id)
    assert (postrun["retval"], postrun["state"], postrun["args"]) == (5, "SUCCESS", (2, 3))
    assert ("before_start", ok.id) in Hooked.seen and ("on_success", 5) in Hooked.seen
    assert ("on_failure", "KeyError('k')") in Hooked.seen and ("on_retry", retried.id) in Hooked.seen


async def test_revoked_and_unknown_tasks_are_signalled(app: App, heard: list[tuple[str, dict[str, Any]]]) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    async with start_worker(app) as worker:
        await app.control.arevoke("doomed")
        await wait_for(lambda: "doomed" in worker.state.revoked)
        revoked = await add.aapply_async((1, 1), task_id="doomed")
        unknown = await app.asend_task("no.such.task")
        await wait_for(lambda: {"task_revoked", "task_unknown"} <= set(names(heard)))
    await app.aclose()
    revoke = next(args for name, args in heard if name == "task_revoked")
    assert (revoke["request"].id, revoke["expired"], revoke["terminated"]) == (revoked.id, False, False)
    missing = next(args for name, args in heard if name == "task_unknown")
    assert (missing["name"], missing["id"]) == ("no.such.task", unknown.id)


async def test_publish_signals_see_the_message_and_can_add_headers(
    app: App, heard: list[tuple[str, dict[str, Any]]]
) -> None:
    async def stamp(sender: str, headers: dict[str, Any], **named: Any) -> None:
        await asyncio.sleep(0)
        headers["stamp"] = f"for {headers['task']}"

    @app.task(bind=True)
    def show(self: Any) -> Any:
        return self.request.headers.get("stamp")

    signals.before_task_publish.connect(stamp, sender=show.name)
    try:
        async with start_worker(app):
            result = await show.adelay()
            assert await result.aget(timeout=10) == f"for {show.name}"
    finally:
        assert signals.before_task_publish.disconnect(stamp, sender=show.name)
        await app.aclose()
    before = next(args for name, args in heard if name == "before_task_publish")
    assert (before["sender"], before["headers"]["id"], before["routing_key"]) == (show.name, result.id, "celery")
    after = next(args for name, args in heard if name == "after_task_publish")
    assert (after["sender"], after["body"][0], after["exchange"]) == (show.name, [], "")


def test_signal_connect_send_and_disconnect() -> None:
    signal = signals.Signal("custom", ("value",))
    calls: list[Any] = []

    @signal.connect
    def first(sender: Any, value: int, **named: Any) -> int:
        calls.append(("first", sender, value))
        return value * 2

    @signal.connect(sender="only-me")
    def second(sender: Any, value: int, **named: Any) -> None:
        raise RuntimeError("receivers' errors are logged, not raised")

    signal.connect(first)  # connected once, whatever the number of connects
    results = signal.send("someone", value=2)
    assert results == [(first, 4)]
    results = signal.send("only-me", value=3)
    assert results[0] == (first, 6) and isinstance(results[1][1], RuntimeError)
    assert signal.receivers == [first, second]
    assert signal.disconnect(first) and not signal.disconnect(first)

    async def later(sender: Any, **named: Any) -> str:
        return "async"

    signal.connect(later)
    assert signal.send(None, value=1)[-1] == (later, "async")  # no loop here: run to its end
    assert asyncio.run(signal.asend(None, value=1))[-1] == (later, "async")


def test_signals_celeriac_does_not_send_say_so() -> None:
    with pytest.raises(AttributeError, match="does not send Celery's worker_shutting_down signal"):
        _ = signals.worker_shutting_down


def test_a_setup_logging_receiver_replaces_celeriacs_logging_setup() -> None:
    import logging

    from celeriac.cli.logs import setup_logging

    calls: list[dict[str, object]] = []

    def configure(**named: object) -> None:
        calls.append({k: v for k, v in named.items() if k not in ("signal", "sender")})

    root = logging.getLogger()
    before = list(root.handlers)
    signals.setup_logging.connect(configure)
    try:
        setup_logging("DEBUG", "/nonexistent/dir/x.log", "%(message)s")  # would fail if celeriac opened the file
    finally:
        signals.setup_logging.disconnect(configure)
    assert calls == [
        {"loglevel": "DEBUG", "logfile": "/nonexistent/dir/x.log", "format": "%(message)s", "colorize": False}
    ]
    assert root.handlers == before

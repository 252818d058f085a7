"""Celery's Task API: options checked ("did you mean"), ``base=`` subclasses and their hooks, ``typing``,
``Task.apply()`` / ``task_always_eager`` / ``task_eager_propagates`` returning an `EagerResult`, ``update_state``
with a custom state."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from celeriac import App, Task
from celeriac.app.eager import EagerResult
from celeriac.errors import ConfigurationError, MaxRetriesExceededError


@pytest.fixture
def app(sqlite_url: str) -> App:
    return App("parity", broker=sqlite_url)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"acks_lat": True}, "unknown task option 'acks_lat'; did you mean 'acks_late'?"),
        ({"max_retires": 5}, "unknown task option 'max_retires'; did you mean 'max_retries'?"),
        ({"typnig": False}, "unknown task option 'typnig'; did you mean 'typing'?"),
        ({"bsae": Task}, "unknown task option 'bsae'; did you mean 'base'?"),
        ({"throws": (KeyError,)}, "task option 'throws' is not supported by celeriac"),
    ],
)
def test_an_unknown_task_option_is_a_one_line_error(app: App, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        app.task(**options)(lambda: None)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_base_must_be_a_task_subclass(app: App) -> None:
    with pytest.raises(ConfigurationError, match="base= must be a celeriac Task subclass"):
        app.task(base=dict)(lambda: None)  # type: ignore[arg-type]


class Recording(Task[Any, Any]):
    """A Celery-style base class: class attributes as defaults, every hook recorded."""

    max_retries = 2
    default_retry_delay = 0.0
    acks_late = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[Any, ...]] = []

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        self.calls.append(("before_start", tuple(args)))

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        self.calls.append(("on_success", retval))

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        self.calls.append(("on_failure", repr(exc), "Traceback" in str(einfo)))

    async def on_retry(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        self.calls.append(("on_retry", repr(exc)))

    def after_return(self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        self.calls.append(("after_return", status))


def calls(task: Task[Any, Any]) -> list[tuple[Any, ...]]:
    assert isinstance(task, Recording)
    return task.calls


def test_base_class_attributes_are_defaults_and_options_win(app: App) -> None:
    @app.task(base=Recording)
    def plain() -> None: ...

    @app.task(base=Recording, max_retries=7)
    def tuned() -> None: ...

    assert isinstance(plain, Recording)
    assert (plain.max_retries, plain.acks_late, tuned.max_retries) == (2, True, 7)
    assert app.tasks[plain.name] is plain


def test_apply_runs_the_body_with_hooks_and_returns_an_eager_result(app: App) -> None:
    @app.task(base=Recording, bind=True)
    def add(self: Any, x: int, y: int) -> int:
        assert self.request.is_eager and not self.request.called_directly
        return x + y

    result = add.apply((2, 3), task_id="t-1")
    assert isinstance(result, EagerResult)
    assert (result.id, result.get(), result.state, result.successful(), result.ready()) == ("t-1", 5, "SUCCESS", 1, 1)
    assert calls(add) == [("before_start", (2, 3)), ("on_success", 5), ("after_return", "SUCCESS")]


def test_a_failed_eager_run_is_kept_or_propagated(app: App) -> None:
    @app.task(base=Recording)
    def boom() -> None:
        raise KeyError("k")

    result = boom.apply()
    assert result.failed() and isinstance(result.result, KeyError) and "KeyError" in (result.traceback or "")
    with pytest.raises(KeyError):
        result.get()
    assert calls(boom)[-2:] == [("on_failure", "KeyError('k')", True), ("after_return", "FAILURE")]
    with pytest.raises(KeyError):
        boom.apply(throw=True)
    app.conf.task_eager_propagates = True
    with pytest.raises(KeyError):
        boom.apply()


def test_an_eager_retry_runs_again_at_once_until_max_retries(app: App) -> None:
    @app.task(base=Recording, bind=True)
    def flaky(self: Any, n: int) -> int:
        if self.request.retries < 2:
            raise self.retry(args=(n + 1,))
        return n

    result = flaky.apply((0,))
    assert (result.get(), result.retries) == (2, 2)
    assert [c[0] for c in calls(flaky)].count("on_retry") == 2

    @app.task(bind=True, max_retries=1, default_retry_delay=0)
    def never(self: Any) -> None:
        raise self.retry()

    assert isinstance(never.apply().result, MaxRetriesExceededError)


def test_always_eager_makes_delay_and_apply_async_run_here(app: App) -> None:
    app.conf.task_always_eager = True

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    async def aadd(x: int, y: int) -> int:
        await asyncio.sleep(0)
        return x + y

    assert isinstance(add.delay(1, 2), EagerResult)
    assert add.delay(1, 2).get() == 3
    assert add.apply_async((2, 2), countdown=10, queue="elsewhere").get() == 4
    assert aadd.delay(3, 3).get() == 6

    async def async_side() -> tuple[int, int]:
        first = await aadd.adelay(1, 1)
        second = await add.aapply_async((5, 5))
        return first.get(), second.get()

    assert asyncio.run(async_side()) == (2, 10)


def test_typing_checks_arguments_at_send_unless_turned_off(app: App) -> None:
    app.conf.task_always_eager = True

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(typing=False)
    def loose(*args: Any) -> int:
        return len(args)

    with pytest.raises(TypeError, match=r"add\(\) missing 1 required positional argument: 'y'"):
        add.delay(1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        add.apply_async((1, 2), {"z": 3})
    assert loose.delay(1, 2, 3).get() == 3


def test_apply_refuses_an_option_it_does_not_know(app: App) -> None:
    @app.task
    def noop() -> None: ...

    with pytest.raises(TypeError, match="unknown send option 'contdown'; did you mean 'countdown'"):
        noop.apply(contdown=1)


def test_send_options_are_checked_not_ignored(app: App) -> None:
    @app.task
    def noop() -> None: ...

    with pytest.raises(TypeError, match="unknown send option 'contdown'; did you mean 'countdown'"):
        app.build_message(noop.name, (), {}, contdown=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"link/link_error takes signatures \(task\.s\(\.\.\.\)\), not Task"):
        noop.apply_async(link=noop)  # a task, not its signature (canvas takes signatures)
    with pytest.raises(TypeError, match="send option 'retry_policy' is not supported"):
        app.send_task(noop.name, retry_policy={})  # type: ignore[call-arg]


def test_update_state_stores_a_custom_state(app: App) -> None:
    @app.task
    def noop() -> None: ...

    try:
        noop.update_state(task_id="progress-1", state="PROGRESS", meta={"done": 3, "total": 10})
        result = app.AsyncResult("progress-1")
        assert result.state == "PROGRESS"
        assert result.info == {"done": 3, "total": 10}
        with pytest.raises(ValueError, match="needs a task_id"):
            noop.update_state(state="PROGRESS")
    finally:
        app.close()


async def test_self_request_has_celerys_fields_in_a_worker(app: App) -> None:
    from celeriac.testing import start_worker

    @app.task(bind=True, time_limit=30)
    def describe(self: Any) -> dict[str, Any]:
        r = self.request
        return {
            "id": r.id, "shadow": r.shadow, "utc": r.utc, "is_eager": r.is_eager, "chain": r.chain,
            "callbacks": r.callbacks, "taskset": r.taskset, "time_limit": r.time_limit, "stamps": dict(r.stamps),
            "replaced_task_nesting": r.replaced_task_nesting, "called_directly": r.called_directly,
            "has_properties": bool(r.properties),
        }  # fmt: skip

    async with start_worker(app):
        result = await describe.aapply_async(shadow="shown-name")
        got = await result.aget(timeout=10)
    await app.aclose()
    assert got == {
        "id": result.id, "shadow": "shown-name", "utc": True, "is_eager": False, "chain": None, "callbacks": None,
        "taskset": None, "time_limit": 30, "stamps": {}, "replaced_task_nesting": 0, "called_directly": False,
        "has_properties": True,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        ((1,), {}, None),
        ((1, 2, 3), {"d": 4}, None),
        ((), {"a": 1}, "positional-only"),
        ((1,), {"c": 3}, "missing 1 required keyword-only argument: 'd'"),
        ((1, 2, 3, 4), {"d": 1}, "takes from 1 to 3 positional arguments but 4"),
        ((1,), {"d": 1, "e": 2}, "unexpected keyword argument 'e'"),
    ],
)
def test_the_typing_check_follows_every_parameter_kind(
    app: App, args: tuple[Any, ...], kwargs: dict[str, Any], error: str | None
) -> None:
    def shaped(a: int, /, b: int = 2, c: int = 3, *, d: int = 0) -> None: ...

    def strict(a: int, /, b: int = 2, c: int = 3, *, d: int) -> None: ...

    task = app.task(name="shaped")(shaped if error != "missing 1 required keyword-only argument: 'd'" else strict)
    if error is None:
        task.check_arguments(args, kwargs)
    else:
        with pytest.raises(TypeError, match=error):
            task.check_arguments(args, kwargs)


def test_the_typing_check_skips_the_bound_self_and_keeps_defaults(app: App) -> None:
    marker = object()

    @app.task(bind=True)
    def bound(self: Any, x: Any = marker, *rest: Any, **extra: Any) -> None: ...

    bound.check_arguments((), {})
    bound.check_arguments((1, 2, 3), {"z": 1})

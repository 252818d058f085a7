"""Eager canvas: a signature, chain, group or chord run here and now (``sig.apply()``, or any ``apply_async`` under
``task_always_eager``), as Celery's eager mode runs them, without a broker or a result backend.

Each task runs through `run_eagerly` (hooks, retries at once). A succeeded task runs its callbacks with its value;
a failed one runs its errbacks, in Celery's two styles (`celeriac.canvas.errbacks.old_style`), and a chain stops
there. A chord runs its header, then its body with the header's values in order, or, when a header task failed,
settles the body as FAILURE with `ChordError` and runs the body's errbacks. The results are `EagerResult` objects
(a group's a `GroupResult` of them) linked by ``parent`` as a sent canvas's are. With ``task_eager_propagates``
the first failure is raised once its errbacks ran.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from celeriac.app.eager import EAGER_OPTIONS, EagerResult, eager_context, run_eagerly
from celeriac.app.options import check_send_options
from celeriac.canvas import ChordError, GroupResult, Signature, chain, chord, group
from celeriac.canvas.errbacks import old_style
from celeriac.canvas.errors import CanvasError
from celeriac.canvas.signature import maybe_signature
from celeriac.errors import UnknownTask
from celeriac.protocol.states import State

if TYPE_CHECKING:
    from celeriac.app.app import App
    from celeriac.app.task import Task


def _as_list(value: Any) -> list[Any]:
    return [] if value is None else list(value) if isinstance(value, list | tuple) else [value]


def _task(app: App, name: str) -> Task[Any, Any]:
    task = app.tasks.get(name)
    if task is None:
        raise UnknownTask(f"task {name!r} is not registered in this app: an eager canvas runs every task here")
    return task


async def apply_canvas(
    app: App, sig: Signature, args: Iterable[Any] | None, kwargs: Mapping[str, Any] | None, options: Mapping[str, Any]
) -> Any:
    """Run ``sig`` eagerly with partial ``args``/``kwargs`` and options; its result (see the module docstring)."""
    check_send_options({key: value for key, value in options.items() if key not in EAGER_OPTIONS})
    propagate = bool(options.get("throw", app.conf.task_eager_propagates))
    result = await _apply(app, sig, args, kwargs, {k: v for k, v in options.items() if k != "throw"})
    if propagate:
        failed = _first_failure(result)
        if failed is not None:
            raise failed.result
    return result


async def _apply(
    app: App, sig: Signature, args: Iterable[Any] | None, kwargs: Mapping[str, Any] | None, options: dict[str, Any]
) -> Any:
    if isinstance(sig, chain):
        return await _chain(app, sig, args, kwargs, options)
    if isinstance(sig, chord):
        return await _chord(app, sig, args, kwargs, options)
    if isinstance(sig, group):
        return await _group(app, sig, args, kwargs, options)
    return await _one(app, sig, args, kwargs, options)


async def _one(
    app: App, sig: Signature, args: Iterable[Any] | None, kwargs: Mapping[str, Any] | None, options: dict[str, Any]
) -> EagerResult[Any]:
    a, kw, opts = sig._merge(args, kwargs, options)
    task = _task(app, sig.name)
    result = await run_eagerly(
        task,
        a,
        kw,
        task_id=opts.get("task_id"),
        throw=False,
        headers=opts.get("headers"),
        retries=opts.get("retries", 0),
    )
    if opts.get("chord") is not None:
        raise CanvasError("a chord member cannot run eagerly on its own: apply the whole chord")
    if result.state == State.SUCCESS:
        for callback in _as_list(opts.get("link")):
            await _apply(app, _sig(app, callback), (result.result,), None, {})
        rest = list(opts.get("chain") or ())  # a chain's remaining steps, reversed, as a message carries them
        if rest:
            await _apply(app, _sig(app, rest.pop()), (result.result,), None, {"chain": rest} if rest else {})
    elif result.state == State.FAILURE:
        await _errbacks(app, _as_list(opts.get("link_error")), result, task, a, kw)
    return result


async def _errbacks(
    app: App,
    errbacks: list[Any],
    failed: EagerResult[Any],
    task: Task[Any, Any],
    args: list[Any],
    kwargs: dict[str, Any],
) -> None:
    for item in errbacks:
        errback = _sig(app, item)
        target = app.tasks.get(errback.name)
        if target is not None and old_style(target):
            request = eager_context(task, failed.id, tuple(args), kwargs, failed.retries or 0)
            call = (request, failed.result, failed.traceback, *errback.args)
            value = target(*call, **errback.kwargs)
            if asyncio.iscoroutine(value):
                await value
        else:
            await _apply(app, errback, (failed.id,), None, {})


async def _chain(
    app: App, sig: chain, args: Iterable[Any] | None, kwargs: Mapping[str, Any] | None, options: dict[str, Any]
) -> Any:
    steps = sig.steps()
    options = {**sig.options, **options}
    for errback in _as_list(options.pop("link_error", None)):
        for step in steps:
            step.link_error(errback)
    for callback in _as_list(options.pop("link", None)):
        steps[-1].link(callback)
    last_id = options.pop("task_id", None)
    previous: Any = None
    for n, step in enumerate(steps):
        step_options = {"task_id": last_id} if last_id and n == len(steps) - 1 else {}
        if previous is None:
            result = await _apply(app, step, args, kwargs, step_options)
        else:
            result = await _apply(app, step, (_value(previous),), None, step_options)
        result.parent = previous
        previous = result
        if _first_failure(result) is not None:
            break  # a step after a failed one never runs
    return previous


async def _group(
    app: App, sig: group, args: Iterable[Any] | None, kwargs: Mapping[str, Any] | None, options: dict[str, Any]
) -> GroupResult:
    options = {**sig.options, **options}
    gid = str(options.get("task_id") or options.get("group_id") or uuid.uuid4())
    errbacks = _as_list(options.get("link_error"))
    results = []
    for member in sig.tasks:
        results.append(await _apply(app, member, args, kwargs, {"link_error": errbacks} if errbacks else {}))
    return GroupResult(gid, results, app=app)


async def _chord(
    app: App, sig: chord, args: Iterable[Any] | None, kwargs: Mapping[str, Any] | None, options: dict[str, Any]
) -> Any:
    options = {**sig.options, **options}
    body = sig.linked_body(options)
    header = await _group(app, sig.header, args, kwargs, {"task_id": options.get("task_id")})
    failed = next((r for r in header.results if _first_failure(r) is not None), None)
    if failed is None:
        result = await _apply(app, body, ([_value(r) for r in header.results],), None, {})
    else:
        cause = _first_failure(failed)
        assert cause is not None
        error = ChordError(f"Dependency {cause.id} raised {cause.result!r}")
        body_task = _task(app, body.name)
        result = EagerResult(body.id or str(uuid.uuid4()), error, State.FAILURE, body_task, traceback=None)
        await _errbacks(app, _as_list(body.options.get("link_error")), result, body_task, [], {})
    result.parent = header
    return result


def _sig(app: App, value: Any) -> Signature:
    sig = maybe_signature(value, app=app)
    if sig is None:
        raise TypeError("a link or errback cannot be None")
    return sig


def _value(result: Any) -> Any:
    """A settled step's value: a group's is the list of its members' values."""
    if isinstance(result, GroupResult):
        return [_value(r) for r in result.results]
    return result.result


def _first_failure(result: Any) -> EagerResult[Any] | None:
    """The first failed eager result in ``result`` (a group's members in order), else None."""
    if isinstance(result, GroupResult):
        return next((f for f in map(_first_failure, result.results) if f is not None), None)
    if isinstance(result, EagerResult) and result.state == State.FAILURE:
        return result
    return None

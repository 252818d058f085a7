"""Shaped sends (`celeriac.app.shapes`, `celeriac.protocol.shape`): a message made from its kind's shape is the
message `Sender.build` + `Sender.encode` make, and its Redis envelope from the stencil is the one serialized in
full, for any arguments, options a shape holds, task defaults and running task."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from celeriac import App
from celeriac.app.context import RequestContext
from celeriac.app.current import request_var
from celeriac.app.options import SendOptions
from celeriac.app.shapes import MAX_SHAPES
from celeriac.protocol.message import Message
from celeriac.protocol.shape import TaskShape
from celeriac.transports.redis import envelope

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
shaped_options = st.fixed_dictionaries(
    {},
    optional={
        "queue": st.sampled_from(["celery", "jobs", "é"]),
        "priority": st.integers(0, 9),
        "ignore_result": st.booleans(),
        "time_limit": st.none() | st.integers(1, 100),
        "soft_time_limit": st.none() | st.floats(0.5, 50),
        "shadow": st.none() | st.text(max_size=8) | st.sampled_from(["100%s", "%%", "%(x)s"]),
        "compression": st.sampled_from(["gzip", "zlib"]),
        "routing_key": st.sampled_from(["a.b", "celery"]),
        "exchange": st.sampled_from(["", "tasks"]),
    },
)


@pytest.fixture(scope="module")
def app() -> Iterator[App]:
    app = App("shapes", broker="redis://127.0.0.1:1/0")  # never connected: nothing here does I/O
    app.conf.task_default_priority = 3

    @app.task(name="shapes.plain")
    def plain(*args: Any, **kwargs: Any) -> None:
        return None

    @app.task(name="shapes.limited", ignore_result=True, time_limit=30, soft_time_limit=20, priority=7)
    def limited(*args: Any, **kwargs: Any) -> None:
        return None

    app.finalize()
    yield app
    app.close()


def full(app: App, name: str, args: Any, kwargs: Any, options: SendOptions, task_id: str) -> Message:
    """The message the general path makes for the same send with the same id."""
    sender = app._sender
    task = app.tasks.get(name)
    built = sender.build(name, args, kwargs, task, SendOptions(**options, task_id=task_id))
    return sender.encode(built, task, options)


def check_same(app: App, name: str, args: Any, kwargs: Any, options: SendOptions) -> Message:
    sender = app._sender
    shaped = sender.shaped(name, args, kwargs, app.tasks.get(name), options)
    assert shaped is not None and shaped.shape is not None
    expected = full(app, name, args, kwargs, options, shaped.headers["id"])
    assert shaped == expected
    assert list(shaped.headers) == list(expected.headers)  # kombu's order, too
    assert list(shaped.properties) == list(expected.properties)
    for exchange, key in (("", options.get("queue") or "celery"), ("tasks", "a.b")):
        assert envelope.encode(shaped, exchange, key, "tag") == envelope.encode(expected, exchange, key, "tag")
    return shaped


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(["shapes.plain", "shapes.limited", "shapes.unregistered"]),
    args=st.lists(values, max_size=3),
    kwargs=st.dictionaries(st.text(max_size=6), values, max_size=3),
    options=shaped_options,
)
def test_a_shaped_message_is_the_built_and_encoded_one(
    app: App, name: str, args: list[Any], kwargs: dict[str, Any], options: SendOptions
) -> None:
    check_same(app, name, args, kwargs, options)


def test_strings_the_stencil_cannot_vouch_for_are_encoded_in_full(app: App) -> None:
    # An emoji is a surrogate pair in ASCII JSON; a lone surrogate is refused, as the full path refuses it.
    message = check_same(app, "shapes.plain", ["\U0001f600"], {"k": "é"}, SendOptions())
    assert "\\ud83d\\ude00" in envelope.encode(message, "", "celery")
    options = SendOptions(shadow="\ud800")
    lone = app._sender.shaped("shapes.plain", [], {}, app.tasks.get("shapes.plain"), options)
    assert lone is not None and lone == full(app, "shapes.plain", [], {}, options, lone.headers["id"])
    with pytest.raises(ValueError, match="lone surrogate"):
        envelope.encode(lone, "", "celery")


def test_the_running_task_is_the_parent_of_a_shaped_send(app: App) -> None:
    sender = app._sender
    token = request_var().set(RequestContext(id="parent-1", root_id="root-1", task="shapes.plain"))
    try:
        inside = check_same(app, "shapes.plain", [1], {}, SendOptions())
    finally:
        request_var().reset(token)
    assert (inside.headers["root_id"], inside.headers["parent_id"]) == ("root-1", "parent-1")
    outside = sender.shaped("shapes.plain", [1], {}, app.tasks.get("shapes.plain"), SendOptions())
    assert outside is not None and outside.shape is inside.shape  # one shape for both
    assert (outside.headers["root_id"], outside.headers["parent_id"]) == (outside.headers["id"], None)


def test_a_changed_task_default_makes_a_new_shape(app: App) -> None:
    task = app.tasks.get("shapes.plain")
    assert task is not None
    before = check_same(app, "shapes.plain", [], {}, SendOptions())
    task.time_limit = 99
    try:
        after = check_same(app, "shapes.plain", [], {}, SendOptions())
    finally:
        task.time_limit = None
    assert after.shape is not before.shape and after.headers["timelimit"] == [99, None]


def test_sends_a_shape_cannot_hold_are_built_in_full(app: App) -> None:
    sender, task = app._sender, app.tasks.get("shapes.plain")
    for options in (
        SendOptions(countdown=5),
        SendOptions(expires=60),
        SendOptions(task_id="mine"),
        SendOptions(headers={"x": 1}),
        SendOptions(group_id="g", group_index=0),
        SendOptions(link=[{"task": "t", "args": [], "kwargs": {}, "options": {}}]),
    ):
        assert sender.shaped("shapes.plain", [], {}, task, options) is None, options
    assert sender.shaped("shapes.plain", "not args", {}, task, SendOptions()) is None  # type: ignore[arg-type]
    assert sender.shaped("shapes.plain", [], {}, task, SendOptions(queue=["unhashable"])) is None  # type: ignore[typeddict-item]


def test_a_bad_option_is_refused_as_the_full_path_refuses_it(app: App) -> None:
    sender, task = app._sender, app.tasks.get("shapes.plain")
    with pytest.raises(ValueError, match="priority"):
        sender.shaped("shapes.plain", [], {}, task, SendOptions(priority=300))
    # Equal keys of other types are other shapes: True is not the priority 1 shaped before it, and is refused.
    assert sender.shaped("shapes.plain", [], {}, task, SendOptions(priority=1)) is not None
    with pytest.raises(ValueError, match="priority"):
        sender.shaped("shapes.plain", [], {}, task, SendOptions(priority=True))


def test_values_equal_across_types_make_their_own_shapes(app: App) -> None:
    task = app.tasks.get("shapes.plain")
    assert task is not None
    for one in (1, True, 1.0):
        message = check_same(app, "shapes.plain", [], {}, SendOptions(ignore_result=one))  # type: ignore[typeddict-item]
        assert type(message.headers["ignore_result"]) is type(one)  # and check_same compared the envelopes
    for limit in (2, 2.0):
        task.time_limit = limit
        try:
            assert type(check_same(app, "shapes.plain", [], {}, SendOptions()).headers["timelimit"][0]) is type(limit)
        finally:
            task.time_limit = None


def test_each_message_has_its_own_mutable_headers(app: App) -> None:
    sender, task = app._sender, app.tasks.get("shapes.limited")
    one = sender.shaped("shapes.limited", [], {}, task, SendOptions())
    two = sender.shaped("shapes.limited", [], {}, task, SendOptions())
    assert one is not None and two is not None and one.shape is two.shape
    assert one.headers["timelimit"] == [30, 20] and one.headers["timelimit"] is not two.headers["timelimit"]
    assert one.headers["stamps"] is not two.headers["stamps"]


def test_the_shapes_kept_are_bounded(app: App) -> None:
    sender, task = app._sender, app.tasks.get("shapes.plain")
    for index in range(MAX_SHAPES + 10):
        assert sender.shaped("shapes.plain", [], {}, task, SendOptions(queue=f"q{index}")) is not None
    assert len(sender._shapes._shapes) <= MAX_SHAPES


def test_a_copy_of_a_shaped_message_is_encoded_from_its_own_fields() -> None:
    import dataclasses

    from celeriac.protocol.message import TaskMessage

    shape = TaskShape(TaskMessage(id="t", task="x", correlation_id="t", reply_to="", priority=0), "json", None)
    message = shape.message("id-1", None, None, [], {})
    changed = dataclasses.replace(message, headers={**message.headers, "task": "y"})
    assert changed.shape is None
    assert '"task": "y"' in envelope.encode(changed, "", "celery")


def test_a_shape_refuses_an_expiry() -> None:
    import datetime as dt

    from celeriac.protocol.message import TaskMessage

    with pytest.raises(ValueError, match="expiry"):
        TaskShape(TaskMessage(id="t", task="x", expires=dt.datetime.now(dt.UTC)), "json", None)

"""The built-in inspect commands (celery-wire.md §5.4): they only read what a node holds.

Every handler takes the `ControlNode` it runs for and the request's (coerced) arguments, and returns the reply
exactly as Celery's workers shape it (its return type is the TypedDict of `replies`), so ``celery inspect``
and Flower read celeriac replies.
"""

from __future__ import annotations

from typing import Any, Final

from celeriac.control.arguments import MAX_IDS, Arg, as_bool, as_int, as_name, name_list, optional
from celeriac.control.commands import Command, Kind, command
from celeriac.control.node import ControlNode, RequestKind
from celeriac.control.replies import (
    ClockReply,
    ErrorReply,
    HelloReply,
    OkReply,
    QueryTaskReply,
    QueueInfo,
    RequestInfo,
    ScheduledInfo,
    StatsReply,
)
from celeriac.control.shapes import (
    DEFAULT_TASKINFO_ITEMS,
    conf_values,
    queue_info,
    report_text,
    request_info,
    scheduled_info,
)

INSPECT = Kind.INSPECT


@command(INSPECT, reply='{"ok": "pong"}')
async def ping(node: ControlNode) -> OkReply:
    return {"ok": "pong"}


@command(
    INSPECT,
    Arg("from_node", optional(as_name)),
    Arg("revoked", lambda v: v),  # a list or a dict of ids, each checked below
    visible=False,
    reply='{"revoked": [ids], "clock": n}, or null from the node itself',
)
async def hello(node: ControlNode, from_node: str | None = None, revoked: Any = None) -> HelloReply | None:
    if from_node == node.hostname:
        return None
    if isinstance(revoked, dict | list | tuple):  # Celery <= 5.6 sends its LimitedSet dict: the keys are the ids
        node.merge_revoked(name_list(MAX_IDS)(list(revoked)))
    return {"revoked": node.revoked(), "clock": node.clock.forward()}


@command(INSPECT, reply='{"clock": n}')
async def clock(node: ControlNode) -> ClockReply:
    return {"clock": node.clock.value}


@command(INSPECT, Arg("safe", as_bool), aliases=("dump_active",), reply="[request-info]")
async def active(node: ControlNode, safe: bool = False) -> list[RequestInfo]:
    return [request_info(request, safe) for request in node.requests("active")]


@command(INSPECT, Arg("safe", as_bool), aliases=("dump_reserved",), reply="[request-info]")
async def reserved(node: ControlNode, safe: bool = False) -> list[RequestInfo]:
    return [request_info(request, safe) for request in node.requests("reserved")]


@command(INSPECT, Arg("safe", as_bool), aliases=("dump_schedule",), reply='[{"eta", "priority", "request"}]')
async def scheduled(node: ControlNode, safe: bool = False) -> list[ScheduledInfo]:
    return [scheduled_info(request, safe) for request in node.requests("scheduled")]


@command(INSPECT, aliases=("dump_revoked",), reply="[ids]")
async def revoked(node: ControlNode) -> list[str]:
    return node.revoked()


@command(
    INSPECT,
    Arg("taskinfoitems", name_list(32), variadic=True),
    aliases=("dump_tasks",),
    reply='["name [attr=value ...]"]',
)
async def registered(node: ControlNode, taskinfoitems: list[str] | None = None) -> list[str]:
    items = taskinfoitems or DEFAULT_TASKINFO_ITEMS
    names = []
    for name in node.tasks.names():
        if name.startswith("celery."):
            continue
        task = node.tasks[name]
        attrs = [f"{item}={getattr(task, item)}" for item in items if getattr(task, item, None) is not None]
        names.append(f"{name} [{' '.join(attrs)}]" if attrs else name)
    return names


@command(INSPECT, reply="stats dict")
async def stats(node: ControlNode) -> StatsReply:
    return node.stats()


@command(INSPECT, reply="[queue dict]")
async def active_queues(node: ControlNode) -> list[QueueInfo]:
    return [queue_info(name) for name in node.queues()]


@command(INSPECT, Arg("with_defaults", as_bool), aliases=("dump_conf",), reply="{setting: value}")
async def conf(node: ControlNode, with_defaults: bool = False) -> dict[str, Any]:
    return conf_values(node, with_defaults)


@command(INSPECT, Arg("ids", name_list(), variadic=True), reply="{id: [state, request-info]}")
async def query_task(node: ControlNode, ids: list[str] | None = None) -> QueryTaskReply:
    wanted = set(ids or ())
    found: QueryTaskReply = {}
    kinds: tuple[RequestKind, ...] = ("active", "reserved", "scheduled")
    for kind in kinds:
        for request in node.requests(kind):
            if request.id in wanted and request.id not in found:
                found[request.id] = [kind, request_info(request)]
    return found


@command(INSPECT, reply='{"ok": text}')
async def report(node: ControlNode) -> OkReply:
    return {"ok": report_text(node)}


def _unsupported(name: str, *args: Arg) -> Command:
    """A Celery inspect command celeriac does not have: answered with an error naming it, never a KeyError."""

    async def handler(node: ControlNode, **arguments: Any) -> ErrorReply:
        return {"error": f"{name} is not supported by celeriac workers"}

    return command(INSPECT, *args, name=name, reply='{"error": "<name> is not supported ..."}')(handler)


UNSUPPORTED: Final[tuple[Command, ...]] = (
    _unsupported("memsample"),
    _unsupported("memdump", Arg("samples", as_int)),
    _unsupported("objgraph", Arg("type", as_name), Arg("num", as_int), Arg("max_depth", as_int)),
)
"""Celery's debugging commands (they need Celery's own memory tools): a clear error reply each."""

COMMANDS: Final[tuple[Command, ...]] = (
    *UNSUPPORTED,
    ping,
    hello,
    clock,
    active,
    reserved,
    scheduled,
    revoked,
    registered,
    stats,
    active_queues,
    conf,
    query_task,
    report,
)
"""Every built-in inspect command."""

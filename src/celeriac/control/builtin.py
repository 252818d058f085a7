"""The built-in remote-control commands (celery-wire.md §5.4): one handler each, all listed in `BUILTINS`.

Every handler takes the `ControlNode` it runs for and the request's (coerced) arguments, and returns the reply
value exactly as Celery's workers shape it (its return type is the TypedDict of `replies`), so ``celery
inspect``/``control`` and Flower read celeriac replies. `with_builtins` makes the registry a worker answers
from: a new one each time, so commands one app adds never reach another.
"""

from __future__ import annotations

import signal as signals
from typing import Any, Final

from celeriac.control.commands import (
    NO_REPLY,
    Arg,
    Command,
    CommandRegistry,
    Kind,
    NoReply,
    as_bool,
    as_float,
    as_int,
    as_str,
    as_str_list,
    command,
    optional,
)
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
    signum_of,
)

INSPECT, CONTROL = Kind.INSPECT, Kind.CONTROL


# -- inspect ---------------------------------------------------------------------------------------------


@command(INSPECT, reply='{"ok": "pong"}')
async def ping(node: ControlNode) -> OkReply:
    return {"ok": "pong"}


@command(
    INSPECT,
    Arg("from_node"),
    Arg("revoked", lambda v: v),
    visible=False,
    reply='{"revoked": [ids], "clock": n}, or null from the node itself',
)
async def hello(node: ControlNode, from_node: str | None = None, revoked: Any = None) -> HelloReply | None:
    if from_node == node.hostname:
        return None
    if isinstance(revoked, dict):  # Celery <= 5.6 sends its LimitedSet dict: the keys are the ids
        node.merge_revoked(str(key) for key in revoked)
    elif isinstance(revoked, list | tuple):
        node.merge_revoked(str(item) for item in revoked)
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
    Arg("taskinfoitems", as_str_list, variadic=True),
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


@command(INSPECT, Arg("ids", as_str_list, variadic=True), reply="{id: [state, request-info]}")
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


# -- control ---------------------------------------------------------------------------------------------


@command(
    CONTROL,
    Arg("task_id", as_str_list, variadic=True),
    Arg("terminate", as_bool),
    Arg("signal", signum_of),
    reply='{"ok": "tasks {ids} flagged as revoked"} / "terminate: ids"',
)
async def revoke(
    node: ControlNode, task_id: list[str] | None = None, terminate: bool = False, signal: int = signals.SIGTERM
) -> OkReply:
    ids = list(dict.fromkeys(task_id or ()))
    stopped = await node.revoke(ids, terminate, signal)
    if terminate:
        return {"ok": f"terminate: {', '.join(stopped)}" if stopped else "terminate: tasks unknown"}
    return {"ok": f"tasks {set(ids)!r} flagged as revoked"}


@command(
    CONTROL, Arg("task_id", as_str_list, variadic=True), Arg("signal", signum_of), reply='{"ok": "terminate: ids"}'
)
async def terminate(node: ControlNode, task_id: list[str] | None = None, signal: int = signals.SIGKILL) -> OkReply:
    reply: OkReply = await revoke.handler(node, task_id, True, signal)
    return reply


@command(
    CONTROL, Arg("task_name"), Arg("rate_limit", optional(as_str)), reply='{"ok": "new rate limit set successfully"}'
)
async def rate_limit(node: ControlNode, task_name: str = "", rate_limit: str | None = None) -> OkReply | ErrorReply:
    if task_name not in node.tasks:
        return {"error": "unknown task"}
    try:
        node.set_rate_limit(task_name, rate_limit)
    except ValueError as exc:
        return {"error": f"Invalid rate limit string: {exc}"}
    if not rate_limit or rate_limit in ("0", "0.0"):
        return {"ok": "rate limit disabled successfully"}
    return {"ok": "new rate limit set successfully"}


@command(
    CONTROL,
    Arg("task_name"),
    Arg("soft", optional(as_float)),
    Arg("hard", optional(as_float)),
    reply='{"ok": "time limits set successfully"}',
)
async def time_limit(
    node: ControlNode, task_name: str = "", soft: float | None = None, hard: float | None = None
) -> OkReply | ErrorReply:
    if task_name not in node.tasks:
        return {"error": "unknown task"}
    node.set_time_limit(task_name, soft, hard)
    return {"ok": "time limits set successfully"}


@command(CONTROL, reply='{"ok": "task events enabled"}')
async def enable_events(node: ControlNode) -> OkReply | ErrorReply:
    changed = node.set_task_events(True)
    if changed is None:
        return {"error": "event dispatcher unavailable"}
    return {"ok": "task events enabled" if changed else "task events already enabled"}


@command(CONTROL, reply='{"ok": "task events disabled"}')
async def disable_events(node: ControlNode) -> OkReply | ErrorReply:
    changed = node.set_task_events(False)
    if changed is None:
        return {"error": "event dispatcher unavailable"}
    return {"ok": "task events disabled" if changed else "task events already disabled"}


@command(CONTROL, reply="null (sends a worker-heartbeat event)")
async def heartbeat(node: ControlNode) -> None:
    node.send_heartbeat()
    return None


@command(CONTROL, Arg("id"), Arg("topic"), Arg("action", lambda v: v), reply="null")
async def election(node: ControlNode, id: str = "", topic: str = "", action: Any = None) -> None:
    node.election(id, topic, action)
    return None


@command(
    CONTROL,
    Arg("queue"),
    Arg("exchange", optional(as_str)),
    Arg("exchange_type", optional(as_str)),
    Arg("routing_key", optional(as_str)),
    reply='{"ok": "add consumer <queue>"}',
)
async def add_consumer(
    node: ControlNode,
    queue: str = "",
    exchange: str | None = None,
    exchange_type: str | None = None,
    routing_key: str | None = None,
) -> OkReply:
    if not queue:
        raise ValueError("add_consumer needs a queue name")
    await node.add_consumer(queue)
    return {"ok": f"add consumer {queue}"}


@command(CONTROL, Arg("queue"), reply='{"ok": "no longer consuming from <queue>"}')
async def cancel_consumer(node: ControlNode, queue: str = "") -> OkReply:
    await node.cancel_consumer(queue)
    return {"ok": f"no longer consuming from {queue}"}


@command(CONTROL, Arg("n", as_int), reply='{"ok": "pool will grow"}')
async def pool_grow(node: ControlNode, n: int = 1) -> OkReply:
    node.resize_pool(n)
    return {"ok": "pool will grow"}


@command(CONTROL, Arg("n", as_int), reply='{"ok": "pool will shrink"}')
async def pool_shrink(node: ControlNode, n: int = 1) -> OkReply:
    node.resize_pool(-n)
    return {"ok": "pool will shrink"}


@command(CONTROL, Arg("max", as_int), Arg("min", as_int), reply="error: autoscale is not supported")
async def autoscale(node: ControlNode, max: int = 0, min: int = 0) -> OkReply:
    raise ValueError("Autoscale not enabled")


@command(CONTROL, Arg("modules", lambda v: v), Arg("reload", as_bool), reply="error: not supported")
async def pool_restart(node: ControlNode, modules: Any = None, reload: bool = False) -> OkReply:
    raise ValueError("Pool restarts not enabled")


@command(CONTROL, Arg("msg", optional(as_str)), reply="no reply: the worker shuts down warmly")
async def shutdown(node: ControlNode, msg: str | None = None) -> NoReply:
    node.shutdown(msg)
    return NO_REPLY


BUILTINS: Final[tuple[Command, ...]] = (
    ping, hello, clock, active, reserved, scheduled, revoked, registered, stats, active_queues, conf, query_task,
    report, revoke, terminate, rate_limit, time_limit, enable_events, disable_events, heartbeat, election,
    add_consumer, cancel_consumer, pool_grow, pool_shrink, autoscale, pool_restart, shutdown,
)  # fmt: skip


def with_builtins() -> CommandRegistry:
    """A new registry holding every built-in command (add an app's own commands to it with ``register``)."""
    return CommandRegistry(BUILTINS)

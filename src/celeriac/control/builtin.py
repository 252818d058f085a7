"""The built-in remote-control commands (celery-wire.md §5.4): one handler each, registered in `BUILTIN`.

Every handler takes the `ControlNode` it runs for and the request's (coerced) arguments, and returns the reply
value exactly as Celery's workers shape it (see `shapes`), so ``celery inspect``/``control`` and Flower read
celeriac replies. `BUILTIN` is the registry a worker answers from.
"""

from __future__ import annotations

import signal as signals
from typing import Any

from celeriac.control.commands import (
    NO_REPLY,
    Arg,
    CommandRegistry,
    Kind,
    as_bool,
    as_float,
    as_int,
    as_str,
    as_str_list,
    optional,
)
from celeriac.control.node import ControlNode, RequestKind
from celeriac.control.shapes import (
    DEFAULT_TASKINFO_ITEMS,
    conf_values,
    queue_info,
    report_text,
    request_info,
    scheduled_info,
    signum_of,
)

BUILTIN = CommandRegistry()
INSPECT, CONTROL = Kind.INSPECT, Kind.CONTROL


# -- inspect ---------------------------------------------------------------------------------------------


@BUILTIN.register(INSPECT, reply='{"ok": "pong"}')
async def ping(node: ControlNode) -> Any:
    return {"ok": "pong"}


@BUILTIN.register(
    INSPECT,
    Arg("from_node"),
    Arg("revoked", lambda v: v),
    visible=False,
    reply='{"revoked": [ids], "clock": n}, or null from the node itself',
)
async def hello(node: ControlNode, from_node: str | None = None, revoked: Any = None) -> Any:
    if from_node == node.hostname:
        return None
    if isinstance(revoked, dict):  # Celery <= 5.6 sends its LimitedSet dict: the keys are the ids
        node.merge_revoked(str(key) for key in revoked)
    elif isinstance(revoked, list | tuple):
        node.merge_revoked(str(item) for item in revoked)
    return {"revoked": node.revoked(), "clock": node.clock.forward()}


@BUILTIN.register(INSPECT, reply='{"clock": n}')
async def clock(node: ControlNode) -> Any:
    return {"clock": node.clock.value}


@BUILTIN.register(INSPECT, Arg("safe", as_bool), aliases=("dump_active",), reply="[request-info]")
async def active(node: ControlNode, safe: bool = False) -> Any:
    return [request_info(request, safe) for request in node.requests("active")]


@BUILTIN.register(INSPECT, Arg("safe", as_bool), aliases=("dump_reserved",), reply="[request-info]")
async def reserved(node: ControlNode, safe: bool = False) -> Any:
    return [request_info(request, safe) for request in node.requests("reserved")]


@BUILTIN.register(INSPECT, Arg("safe", as_bool), aliases=("dump_schedule",), reply='[{"eta", "priority", "request"}]')
async def scheduled(node: ControlNode, safe: bool = False) -> Any:
    return [scheduled_info(request, safe) for request in node.requests("scheduled")]


@BUILTIN.register(INSPECT, aliases=("dump_revoked",), reply="[ids]")
async def revoked(node: ControlNode) -> Any:
    return node.revoked()


@BUILTIN.register(
    INSPECT,
    Arg("taskinfoitems", as_str_list, variadic=True),
    aliases=("dump_tasks",),
    reply='["name [attr=value ...]"]',
)
async def registered(node: ControlNode, taskinfoitems: list[str] | None = None) -> Any:
    items = taskinfoitems or DEFAULT_TASKINFO_ITEMS
    names = []
    for name in node.app.tasks.names():
        if name.startswith("celery."):
            continue
        task = node.app.tasks[name]
        attrs = [f"{item}={getattr(task, item)}" for item in items if getattr(task, item, None) is not None]
        names.append(f"{name} [{' '.join(attrs)}]" if attrs else name)
    return names


@BUILTIN.register(INSPECT, reply="stats dict")
async def stats(node: ControlNode) -> Any:
    return node.stats()


@BUILTIN.register(INSPECT, reply="[queue dict]")
async def active_queues(node: ControlNode) -> Any:
    return [queue_info(name) for name in node.queues()]


@BUILTIN.register(INSPECT, Arg("with_defaults", as_bool), aliases=("dump_conf",), reply="{setting: value}")
async def conf(node: ControlNode, with_defaults: bool = False) -> Any:
    return conf_values(node, with_defaults)


@BUILTIN.register(INSPECT, Arg("ids", as_str_list, variadic=True), reply="{id: [state, request-info]}")
async def query_task(node: ControlNode, ids: list[str] | None = None) -> Any:
    wanted = set(ids or ())
    found: dict[str, Any] = {}
    kinds: tuple[RequestKind, ...] = ("active", "reserved", "scheduled")
    for kind in kinds:
        for request in node.requests(kind):
            if request.id in wanted and request.id not in found:
                found[request.id] = [kind, request_info(request)]
    return found


@BUILTIN.register(INSPECT, reply='{"ok": text}')
async def report(node: ControlNode) -> Any:
    return {"ok": report_text(node)}


# -- control ---------------------------------------------------------------------------------------------


@BUILTIN.register(
    CONTROL,
    Arg("task_id", as_str_list, variadic=True),
    Arg("terminate", as_bool),
    Arg("signal", signum_of),
    reply='{"ok": "tasks {ids} flagged as revoked"} / "terminate: ids"',
)
async def revoke(
    node: ControlNode, task_id: list[str] | None = None, terminate: bool = False, signal: int = signals.SIGTERM
) -> Any:
    ids = list(dict.fromkeys(task_id or ()))
    stopped = await node.revoke(ids, terminate, signal)
    if terminate:
        return {"ok": f"terminate: {', '.join(stopped)}" if stopped else "terminate: tasks unknown"}
    return {"ok": f"tasks {set(ids)!r} flagged as revoked"}


@BUILTIN.register(
    CONTROL, Arg("task_id", as_str_list, variadic=True), Arg("signal", signum_of), reply='{"ok": "terminate: ids"}'
)
async def terminate(node: ControlNode, task_id: list[str] | None = None, signal: int = signals.SIGKILL) -> Any:
    return await revoke(node, task_id, True, signal)


@BUILTIN.register(
    CONTROL, Arg("task_name"), Arg("rate_limit", optional(as_str)), reply='{"ok": "new rate limit set successfully"}'
)
async def rate_limit(node: ControlNode, task_name: str = "", rate_limit: str | None = None) -> Any:
    if task_name not in node.app.tasks:
        return {"error": "unknown task"}
    try:
        node.set_rate_limit(task_name, rate_limit)
    except ValueError as exc:
        return {"error": f"Invalid rate limit string: {exc}"}
    if not rate_limit or rate_limit in ("0", "0.0"):
        return {"ok": "rate limit disabled successfully"}
    return {"ok": "new rate limit set successfully"}


@BUILTIN.register(
    CONTROL,
    Arg("task_name"),
    Arg("soft", optional(as_float)),
    Arg("hard", optional(as_float)),
    reply='{"ok": "time limits set successfully"}',
)
async def time_limit(
    node: ControlNode, task_name: str = "", soft: float | None = None, hard: float | None = None
) -> Any:
    if task_name not in node.app.tasks:
        return {"error": "unknown task"}
    node.set_time_limit(task_name, soft, hard)
    return {"ok": "time limits set successfully"}


@BUILTIN.register(CONTROL, reply='{"ok": "task events enabled"}')
async def enable_events(node: ControlNode) -> Any:
    changed = node.set_task_events(True)
    if changed is None:
        return {"error": "event dispatcher unavailable"}
    return {"ok": "task events enabled" if changed else "task events already enabled"}


@BUILTIN.register(CONTROL, reply='{"ok": "task events disabled"}')
async def disable_events(node: ControlNode) -> Any:
    changed = node.set_task_events(False)
    if changed is None:
        return {"error": "event dispatcher unavailable"}
    return {"ok": "task events disabled" if changed else "task events already disabled"}


@BUILTIN.register(CONTROL, reply="null (sends a worker-heartbeat event)")
async def heartbeat(node: ControlNode) -> Any:
    node.send_heartbeat()
    return None


@BUILTIN.register(CONTROL, Arg("id"), Arg("topic"), Arg("action", lambda v: v), reply="null")
async def election(node: ControlNode, id: str = "", topic: str = "", action: Any = None) -> Any:
    node.election(id, topic, action)
    return None


@BUILTIN.register(
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
) -> Any:
    if not queue:
        raise ValueError("add_consumer needs a queue name")
    await node.add_consumer(queue)
    return {"ok": f"add consumer {queue}"}


@BUILTIN.register(CONTROL, Arg("queue"), reply='{"ok": "no longer consuming from <queue>"}')
async def cancel_consumer(node: ControlNode, queue: str = "") -> Any:
    await node.cancel_consumer(queue)
    return {"ok": f"no longer consuming from {queue}"}


@BUILTIN.register(CONTROL, Arg("n", as_int), reply='{"ok": "pool will grow"}')
async def pool_grow(node: ControlNode, n: int = 1) -> Any:
    node.resize_pool(n)
    return {"ok": "pool will grow"}


@BUILTIN.register(CONTROL, Arg("n", as_int), reply='{"ok": "pool will shrink"}')
async def pool_shrink(node: ControlNode, n: int = 1) -> Any:
    node.resize_pool(-n)
    return {"ok": "pool will shrink"}


@BUILTIN.register(CONTROL, Arg("max", as_int), Arg("min", as_int), reply="error: autoscale is not supported")
async def autoscale(node: ControlNode, max: int = 0, min: int = 0) -> Any:
    raise ValueError("Autoscale not enabled")


@BUILTIN.register(CONTROL, Arg("modules", lambda v: v), Arg("reload", as_bool), reply="error: not supported")
async def pool_restart(node: ControlNode, modules: Any = None, reload: bool = False) -> Any:
    raise ValueError("Pool restarts not enabled")


@BUILTIN.register(CONTROL, Arg("msg", optional(as_str)), reply="no reply: the worker shuts down warmly")
async def shutdown(node: ControlNode, msg: str | None = None) -> Any:
    node.shutdown(msg)
    return NO_REPLY

"""The built-in control commands (celery-wire.md §5.4): they change something on a node (revoke, limits,
events, consumers, pool, shutdown), and reply as Celery's workers do (`replies`).

Every argument is bounded (`arguments`): a value out of bounds is an error reply naming the limit, and changes
nothing.
"""

from __future__ import annotations

import signal as signals
from typing import Any, Final

from celeriac.control.arguments import (
    MAX_POOL,
    Arg,
    as_bool,
    as_name,
    as_text,
    int_in,
    name_list,
    optional,
    seconds,
    signum_of,
)
from celeriac.control.commands import NO_REPLY, Command, Kind, NoReply, command
from celeriac.control.node import ControlNode
from celeriac.control.replies import ErrorReply, OkReply

CONTROL = Kind.CONTROL


@command(
    CONTROL,
    Arg("task_id", name_list(), variadic=True),
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
    CONTROL, Arg("task_id", name_list(), variadic=True), Arg("signal", signum_of), reply='{"ok": "terminate: ids"}'
)
async def terminate(node: ControlNode, task_id: list[str] | None = None, signal: int = signals.SIGKILL) -> OkReply:
    reply: OkReply = await revoke.handler(node, task_id, True, signal)
    return reply


@command(
    CONTROL,
    Arg("headers", lambda v: v),
    Arg("terminate", as_bool),
    Arg("signal", signum_of),
    reply='{"error": "... not supported ..."}',
)
async def revoke_by_stamped_headers(
    node: ControlNode, headers: Any = None, terminate: bool = False, signal: int = signals.SIGTERM
) -> ErrorReply:
    # Refused, not ignored: a caller must not believe matching tasks were stopped.
    return {"error": "revoke_by_stamped_headers is not supported by celeriac workers (stamping is not implemented)"}


@command(
    CONTROL,
    Arg("task_name", as_name),
    Arg("rate_limit", optional(as_text)),
    reply='{"ok": "new rate limit set successfully"}',
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
    Arg("task_name", as_name),
    Arg("soft", optional(seconds)),
    Arg("hard", optional(seconds)),
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


@command(CONTROL, Arg("id", as_name), Arg("topic", as_name), Arg("action", optional(as_name)), reply="null")
async def election(node: ControlNode, id: str = "", topic: str = "", action: Any = None) -> None:
    node.election(id, topic, action)
    return None


@command(
    CONTROL,
    Arg("queue", as_name),
    Arg("exchange", optional(as_name)),
    Arg("exchange_type", optional(as_name)),
    Arg("routing_key", optional(as_name)),
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


@command(CONTROL, Arg("queue", as_name), reply='{"ok": "no longer consuming from <queue>"}')
async def cancel_consumer(node: ControlNode, queue: str = "") -> OkReply:
    await node.cancel_consumer(queue)
    return {"ok": f"no longer consuming from {queue}"}


@command(CONTROL, Arg("n", int_in(1, MAX_POOL)), reply='{"ok": "pool will grow"}')
async def pool_grow(node: ControlNode, n: int = 1) -> OkReply:
    node.resize_pool(n)
    return {"ok": "pool will grow"}


@command(CONTROL, Arg("n", int_in(1, MAX_POOL)), reply='{"ok": "pool will shrink"}')
async def pool_shrink(node: ControlNode, n: int = 1) -> OkReply:
    node.resize_pool(-n)
    return {"ok": "pool will shrink"}


@command(
    CONTROL, Arg("max", int_in(0, MAX_POOL)), Arg("min", int_in(0, MAX_POOL)), reply="error: autoscale is not supported"
)
async def autoscale(node: ControlNode, max: int = 0, min: int = 0) -> OkReply:
    raise ValueError("Autoscale not enabled")


@command(CONTROL, Arg("modules", lambda v: v), Arg("reload", as_bool), reply="error: not supported")
async def pool_restart(node: ControlNode, modules: Any = None, reload: bool = False) -> OkReply:
    raise ValueError("Pool restarts not enabled")


@command(CONTROL, Arg("msg", optional(as_text)), reply="no reply: the worker shuts down warmly")
async def shutdown(node: ControlNode, msg: str | None = None) -> NoReply:
    node.shutdown(msg)
    return NO_REPLY


COMMANDS: Final[tuple[Command, ...]] = (
    revoke,
    terminate,
    revoke_by_stamped_headers,
    rate_limit,
    time_limit,
    enable_events,
    disable_events,
    heartbeat,
    election,
    add_consumer,
    cancel_consumer,
    pool_grow,
    pool_shrink,
    autoscale,
    pool_restart,
    shutdown,
)
"""Every built-in control command."""

"""The dashboard's actions (each already authenticated, role- and CSRF-checked by `Dashboard.action`): re-send
a failed task, bulk retry, revoke, discard, purge, control commands. Each is written to the audit log; a refusal
is a ValueError worded for the user.
"""

from __future__ import annotations

import ast
import json
import uuid as uuidlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from celeriac.dashboard.forms import task_filter
from celeriac.dashboard.security import REDACTED, role_at_least

if TYPE_CHECKING:
    from celeriac.dashboard.web import Dashboard

BULK_MAX = 1000  # tasks one bulk retry may re-send
# Control commands the Control page offers: name -> (form fields, role needed).
COMMANDS: dict[str, tuple[tuple[str, ...], str]] = {
    "rate_limit": (("task_name", "rate_limit"), "operator"),
    "time_limit": (("task_name", "soft", "hard"), "operator"),
    "pool_grow": (("n",), "operator"),
    "pool_shrink": (("n",), "operator"),
    "autoscale": (("max", "min"), "operator"),
    "add_consumer": (("queue",), "operator"),
    "cancel_consumer": (("queue",), "operator"),
    "shutdown": ((), "admin"),
}
NUMERIC = {"soft": float, "hard": float, "n": int, "max": int, "min": int}


async def resend(self: Dashboard, old: str, user: str) -> str:
    """Send a failed task again (same name, args, kwargs, queue) under a new id linked to the old one."""
    task = self.store.task(old)
    if task is None:
        raise ValueError(f"no task {old} in the history")
    if not task["name"]:
        raise ValueError(f"task {old} has no known name (its task-received event was not seen)")
    if REDACTED in (task["args"], task["kwargs"]) or REDACTED in str(task["kwargs"]):
        raise ValueError(f"the arguments of {old} are redacted, so it cannot be sent again")
    try:
        args = ast.literal_eval(task["args"] or "()")
        kwargs = ast.literal_eval(task["kwargs"] or "{}")
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"the arguments of {old} are not literal values, so they cannot be sent again") from None
    if not isinstance(kwargs, dict):
        raise ValueError(f"the kwargs of {old} are not a mapping")
    args = list(args) if isinstance(args, list | tuple) else [args]
    new = str(uuidlib.uuid4())
    self.store.link_retry(new, old, task["name"], task["args"] or "()", task["kwargs"] or "{}", task["queue"])
    options: dict[str, Any] = {"task_id": new, "headers": {"celeriac_retry_of": old}}
    if task["queue"]:
        options["queue"] = task["queue"]
    await self.app.asend_task(task["name"], args, kwargs, **options)
    self.store.audit(user, "retry", {"task": old, "new": new, "name": task["name"]})
    return new


async def retry(self: Dashboard, request: Request, user: str, form: Mapping[str, str]) -> str:
    new = await resend(self, request.path_params["uuid"], user)
    return f"sent again as {new}"


async def bulk_retry(self: Dashboard, request: Request, user: str, form: Mapping[str, str]) -> str:
    where = task_filter(form)
    if where.state != "FAILURE":
        raise ValueError("bulk retry works on failed tasks only (filter state=FAILURE)")
    sent, refused = 0, 0
    for old in self.store.filtered_ids(where, BULK_MAX):
        try:
            await resend(self, old, user)
            sent += 1
        except ValueError:
            refused += 1
    self.store.audit(user, "bulk-retry", {"filter": dict(form) | {"csrf": ""}, "sent": sent, "refused": refused})
    return f"sent {sent} again, {refused} could not be"


async def revoke(self: Dashboard, request: Request, user: str, form: Mapping[str, str]) -> str:
    task_id = request.path_params["uuid"]
    terminate = form.get("terminate") in ("on", "1", "true")
    replies = await self.app.control.abroadcast(
        "revoke", {"task_id": [task_id], "terminate": terminate}, reply=True, timeout=1.0
    )
    self.store.audit(user, "revoke", {"task": task_id, "terminate": terminate, "replies": len(replies)})
    return f"revoked {task_id} ({len(replies)} workers answered)"


async def discard(self: Dashboard, request: Request, user: str, form: Mapping[str, str]) -> str:
    task_id = request.path_params["uuid"]
    if not self.store.discard(task_id):
        raise ValueError(f"no task {task_id} in the history")
    self.store.audit(user, "discard", {"task": task_id})
    return f"discarded {task_id}"


async def purge(self: Dashboard, request: Request, user: str, form: Mapping[str, str]) -> str:
    queue = request.path_params["queue"]
    if form.get("confirm") != queue:
        raise ValueError(f"type the queue name {queue!r} to confirm the purge")
    if self.transport is None:
        raise ValueError("not connected to the broker")
    removed = await self.transport.purge(queue)
    self.store.audit(user, "purge", {"queue": queue, "removed": removed})
    return f"purged {removed} messages from {queue}"


async def control(self: Dashboard, request: Request, user: str, form: Mapping[str, str]) -> str:
    command = request.path_params["command"]
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}: one of {', '.join(COMMANDS)}")
    fields, need = COMMANDS[command]
    _, role = self.who(request) or ("", "viewer")
    if not role_at_least(role, need):
        raise ValueError(f"{command} needs the {need} role")
    arguments: dict[str, Any] = {}
    for name in fields:
        value = form.get(name, "").strip()
        if not value:
            continue
        try:
            arguments[name] = NUMERIC.get(name, str)(value)
        except ValueError:
            raise ValueError(f"{name} must be a number, not {value!r}") from None
    destination = [form["destination"]] if form.get("destination") else None
    replies = await self.app.control.abroadcast(
        command, arguments, destination=destination, reply=command != "shutdown", timeout=1.0
    )
    self.store.audit(user, command, {"arguments": arguments, "destination": destination, "replies": replies})
    return f"{command}: {json.dumps(replies, default=str)[:500]}"

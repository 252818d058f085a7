"""Signature options -> the send options of ``apply_async``: which keys work, which are Celery-internal.

A signature's ``options`` may come from a Celery client (in a message's embed). Keys that steer sending work;
keys Celery keeps for its own client-side bookkeeping (``reply_to``, the producer, publish retries, stamps)
mean nothing to a celeriac send and are dropped by name; any other key is refused with a one-line error, so
an option is never silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celeriac.canvas.errors import CanvasError

#: Send options that work (`celeriac.app.options.SendOptions` plus the canvas ones).
SENDABLE = frozenset(
    {
        "countdown", "eta", "expires", "queue", "routing_key", "exchange", "priority", "task_id", "headers",
        "ignore_result", "serializer", "compression", "shadow", "time_limit", "soft_time_limit", "retries",
        "parent_id", "root_id", "link", "link_error", "chain", "chord", "group_id", "group_index",
    }
)  # fmt: skip

#: Options Celery writes into signatures for its own client: no meaning to a celeriac send.
CELERY_INTERNAL = frozenset(
    {"reply_to", "producer", "add_to_parent", "retry", "retry_policy", "stamped_headers", "stamps", "route_name",
     "subtask_id", "replaced_task_nesting", "chord_size", "group", "taskset_id"}
)  # fmt: skip


def send_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The send options of a signature's ``options``: Celery-internal keys dropped, unknown keys refused.

    Raises:
        ValueError: an option neither celeriac nor Celery's client knows (a typo, usually).
    """
    if not options:
        return {}  # most signatures (``task.s(...)``): nothing to check
    unknown = sorted(k for k in options if k not in SENDABLE and k not in CELERY_INTERNAL)
    if unknown:
        raise ValueError(
            f"signature option(s) {', '.join(unknown)} not supported (known: {', '.join(sorted(SENDABLE))})"
        )
    check_no_cycle(options)
    out = {k: v for k, v in options.items() if k in SENDABLE and v is not None}
    for key in ("link", "link_error"):
        if key in out and isinstance(out[key], Mapping):
            out[key] = [out[key]]
    return out


_NESTED = ("link", "link_error", "chain", "chord")


def check_no_cycle(options: Mapping[str, Any], path: tuple[Mapping[str, Any], ...] = ()) -> None:
    """Refuse signatures that link back to themselves (``a.link(b); b.link(a)``): they cannot be serialized.

    Raises:
        CanvasError: naming the tasks of the cycle.
    """
    for key in _NESTED:
        value = options.get(key)
        items = value if isinstance(value, list | tuple) else [value] if isinstance(value, Mapping) else []
        for item in items:
            if not isinstance(item, Mapping):
                continue
            if any(item is seen for seen in path):
                names = " -> ".join(str(p.get("task")) for p in (*path, item))
                raise CanvasError(f"a cycle in canvas links ({key}): {names}")
            nested = item.get("options")
            if isinstance(nested, Mapping):
                check_no_cycle(nested, (*path, item))

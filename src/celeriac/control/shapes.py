"""Build the replies of the built-in commands (celery-wire.md §5.5-§5.7) from what a node holds; no I/O.

The shapes themselves are the TypedDicts of `celeriac.control.replies`.
"""

from __future__ import annotations

import platform
import sys
from typing import Any

from celeriac._redact import redact
from celeriac.control.node import ControlNode, TaskRequest
from celeriac.control.replies import ExchangeInfo, QueueInfo, RequestInfo, ScheduledInfo
from celeriac.protocol.fields import safe_repr

DEFAULT_TASKINFO_ITEMS = ("exchange", "routing_key", "rate_limit")
ETA_PRIORITY = 6  # what Celery reports as the timer priority of ETA entries


# -- shapes ----------------------------------------------------------------------------------------------


def request_info(request: TaskRequest, safe: bool = False) -> RequestInfo:
    """The request-info dict of active/reserved/scheduled/query_task (§5.5); ``safe``: args as reprs."""
    m = request.message
    return {
        "id": request.id,
        "name": request.name,
        "args": (m.argsrepr or safe_repr(tuple(m.args))) if safe else list(m.args),
        "kwargs": (m.kwargsrepr or safe_repr(dict(m.kwargs))) if safe else dict(m.kwargs),
        "type": m.task,
        "hostname": request.hostname,
        "time_start": request.time_start,
        "acknowledged": request.acknowledged,
        "delivery_info": request.delivery.delivery_info,
        "worker_pid": request.worker_pid,
    }


def scheduled_info(request: TaskRequest, safe: bool = False) -> ScheduledInfo:
    """One ``scheduled`` entry: ``{"eta", "priority", "request"}``."""
    eta = request.message.eta
    return {"eta": eta.isoformat() if eta else None, "priority": ETA_PRIORITY, "request": request_info(request, safe)}


def queue_info(name: str) -> QueueInfo:
    """One ``active_queues`` entry (§5.7): a durable queue bound to the direct exchange of its name."""
    exchange: ExchangeInfo = {
        "name": name,
        "type": "direct",
        "arguments": None,
        "durable": True,
        "passive": False,
        "auto_delete": False,
        "delivery_mode": None,
        "no_declare": False,
    }
    return {
        "name": name,
        "exchange": exchange,
        "routing_key": name,
        "queue_arguments": None,
        "binding_arguments": None,
        "consumer_arguments": None,
        "durable": True,
        "exclusive": False,
        "auto_delete": False,
        "no_ack": False,
        "alias": None,
        "bindings": [],
        "no_declare": None,
        "expires": None,
        "message_ttl": None,
        "max_length": None,
        "max_length_bytes": None,
        "max_priority": None,
    }


def json_safe(value: Any) -> Any:
    """``value`` with anything JSON cannot carry replaced by its repr."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return repr(value)


def masked(name: str, value: Any) -> Any:
    """A setting's value safe to show and JSON-safe: secret-looking settings hidden, and inside dicts and lists
    (``broker_transport_options``, its ``ssl`` dict...) secret-looking keys hidden at any depth, every URL
    without its password (`celeriac._redact.redact`)."""
    return json_safe(redact(value, name))


def conf_values(node: ControlNode, with_defaults: bool) -> dict[str, Any]:
    """The ``conf`` reply: settings (changed ones unless ``with_defaults``), masked, JSON-safe."""
    values = node.settings(with_defaults)
    return {name: masked(name, value) for name, value in sorted(values.items())}


def report_text(node: ControlNode) -> str:
    """The ``report`` text: software, platform and settings."""
    python = ".".join(str(part) for part in sys.version_info[:3])
    lines = [
        "",
        f"software -> celeriac:{node.version} py:{python}",
        f"            node:{node.hostname}",
        f"platform -> system:{platform.system()} arch:{' '.join(platform.architecture())} imp:"
        f"{platform.python_implementation()}",
        f"loader   -> app:{node.app_name}",
        "",
    ]
    lines += [f"{name}: {value!r}" for name, value in conf_values(node, with_defaults=False).items()]
    return "\n".join(lines) + "\n"

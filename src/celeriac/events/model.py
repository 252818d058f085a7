"""Event names, groups, routing keys and the TypedDicts of Celery's events (celery-wire.md §4); no I/O.

An event is a JSON object with ``type``, the common fields of `EventFields` and the fields of its type. On the
broker it is published to the ``celeryev`` exchange with routing key = type with ``-`` replaced by ``.``;
task events travel batched, as one JSON array with routing key ``task.multi``.
"""

from __future__ import annotations

import time
from typing import Any, Final, Literal, TypedDict

from celeriac.protocol.states import State

EXCHANGE: Final = "celeryev"
MULTI_ROUTING_KEY: Final = "task.multi"

WORKER_ONLINE: Final = "worker-online"
WORKER_HEARTBEAT: Final = "worker-heartbeat"
WORKER_OFFLINE: Final = "worker-offline"
WORKER_ELECT: Final = "worker-elect"
WORKER_ELECT_ACK: Final = "worker-elect-ack"
TASK_SENT: Final = "task-sent"
TASK_RECEIVED: Final = "task-received"
TASK_STARTED: Final = "task-started"
TASK_SUCCEEDED: Final = "task-succeeded"
TASK_FAILED: Final = "task-failed"
TASK_RETRIED: Final = "task-retried"
TASK_REVOKED: Final = "task-revoked"
TASK_REJECTED: Final = "task-rejected"

#: What a receiver's task state becomes on each task event (Celery's TASK_EVENT_TO_STATE).
TASK_EVENT_STATE: Final[dict[str, State]] = {
    TASK_SENT: State.PENDING,
    TASK_RECEIVED: State.RECEIVED,
    TASK_STARTED: State.STARTED,
    TASK_SUCCEEDED: State.SUCCESS,
    TASK_FAILED: State.FAILURE,
    TASK_RETRIED: State.RETRY,
    TASK_REVOKED: State.REVOKED,
    TASK_REJECTED: State.REJECTED,
}

Event = dict[str, Any]
"""An event as sent or received: a JSON object (see the TypedDicts below for the documented fields)."""

Group = Literal["worker", "task"] | str


class EventFields(TypedDict, total=False):
    """Fields every event has (§4.2); ``clock`` may be None when sent without a clock."""

    type: str
    hostname: str
    timestamp: float
    utcoffset: float
    pid: int
    clock: int | None
    local_received: float  # added by receivers


class WorkerEventFields(EventFields, total=False):
    """worker-online / worker-heartbeat / worker-offline (§4.3); on-demand heartbeats lack the counters."""

    freq: float
    active: int
    processed: int
    loadavg: list[float]
    sw_ident: str
    sw_ver: str
    sw_sys: str


class TaskEventFields(EventFields, total=False):
    """task-* events (§4.4): ``uuid`` always; the rest by type."""

    uuid: str
    name: str
    args: str
    kwargs: str
    retries: int
    eta: str | None
    expires: str | None
    root_id: str | None
    parent_id: str | None
    result: str
    runtime: float
    exception: str
    traceback: str
    terminated: bool
    signum: int | None
    expired: bool
    requeue: bool


def group_of(event_type: str) -> str:
    """The group of an event type: the part before the first ``-`` (``task``, ``worker``, or custom)."""
    return event_type.partition("-")[0]


def routing_key_of(event_type: str) -> str:
    """The routing key an event type is published with: ``worker-heartbeat`` -> ``worker.heartbeat``."""
    return event_type.replace("-", ".")


def utcoffset() -> float:
    """Hours *west* of UTC, as Celery sends it (``time.timezone``/``altzone`` / 3600; §4.2)."""
    seconds = time.altzone if time.daylight and time.localtime().tm_isdst > 0 else time.timezone
    return seconds / 3600.0

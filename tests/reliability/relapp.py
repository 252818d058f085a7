"""The task app of the reliability tests: every run of a task appends its tag to the ledger file.

Configured by the environment (set per worker by the tests): CELERIAC_BROKER_URL, REL_KEYPREFIX (every broker
key under it), REL_LEDGER (the file executions are appended to), REL_VISIBILITY, REL_MUTEX_EXPIRE,
REL_MAX_DELIVERIES, REL_RESTORE_INTERVAL, REL_QUEUE_TYPE (RabbitMQ: classic or quorum task queues).
"""

from __future__ import annotations

import os
import time

from celeriac import App

app = App("relapp", broker="redis://127.0.0.1:6379/0")
_options: dict[str, object] = {"visibility_timeout": float(os.environ.get("REL_VISIBILITY", "3600"))}
if os.environ.get("REL_KEYPREFIX"):
    _options["global_keyprefix"] = os.environ["REL_KEYPREFIX"]
    app.conf.result_backend_transport_options = {"global_keyprefix": os.environ["REL_KEYPREFIX"]}
if os.environ.get("REL_MUTEX_EXPIRE"):
    _options["unacked_mutex_expire"] = float(os.environ["REL_MUTEX_EXPIRE"])
if os.environ.get("REL_RESTORE_INTERVAL"):
    _options["unacked_restore_interval"] = float(os.environ["REL_RESTORE_INTERVAL"])
app.conf.broker_transport_options = _options
if os.environ.get("REL_MAX_DELIVERIES"):
    app.conf.broker_max_deliveries = int(os.environ["REL_MAX_DELIVERIES"])

if os.environ.get("REL_QUEUE_TYPE"):
    app.conf.task_default_queue_type = os.environ["REL_QUEUE_TYPE"]

LEDGER = os.environ.get("REL_LEDGER")


def record(tag: str) -> None:
    """Append one execution of ``tag`` to the ledger (one short write: lines of concurrent runs do not mix)."""
    if LEDGER:
        with open(LEDGER, "a") as handle:
            handle.write(tag + "\n")


@app.task
def mark(tag: str) -> str:
    """Record one run of ``tag``."""
    record(tag)
    return tag


@app.task(acks_late=True)
def mark_late(tag: str, seconds: float = 0.0) -> str:
    """Record one run of ``tag`` after ``seconds`` (acked after it returns)."""
    time.sleep(seconds)
    record(tag)
    return tag


@app.task(acks_late=True)
def poison() -> None:
    """Kill the worker that runs it, every time (as an out-of-memory kill would): its message is never acked."""
    record("poison")
    os.kill(os.getpid(), 9)


@app.task(acks_late=True)
def chord_part(tag: str, index: int, seconds: float = 0.0) -> int:
    """A chord header task: records ``part <tag> <index>`` after ``seconds``, returns ``index``."""
    time.sleep(seconds)
    record(f"part {tag} {index}")
    return index


@app.task(acks_late=True)
def chord_body(values: list[int], tag: str) -> int:
    """A chord body: records ``tag`` (once per run: the ledger counts callbacks), returns the sum."""
    record(tag)
    return sum(values)

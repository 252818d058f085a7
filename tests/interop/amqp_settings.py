# Celery has no type hints.
# mypy: disallow-untyped-calls=False
"""The settings every Celery app of the RabbitMQ interop tests shares with the celeriac side (no tasks here)."""

from __future__ import annotations

from typing import Any


def configure(app: Any, queue_type: str, prefix: str) -> None:
    """The settings both sides agree on (queue type and its arguments; Redis results' key prefix)."""
    app.conf.update(broker_connection_retry_on_startup=True, worker_hijack_root_logger=True)
    app.conf.task_default_queue_type = queue_type
    if queue_type == "quorum":  # celeriac's task_default_queue_type covers every queue it declares; Celery:
        app.conf.task_default_exchange_type = "topic"
        app.conf.task_create_missing_queue_type = "quorum"
        app.conf.task_create_missing_queue_exchange_type = "topic"
    else:
        app.conf.task_queue_max_priority = 10
    if prefix:
        app.conf.result_backend_transport_options = {"global_keyprefix": prefix}

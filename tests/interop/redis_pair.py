"""A celeriac app and a Celery client on the same Redis database under one test's key prefix and queue, as the
interop tests pair them (results in the same store)."""

from __future__ import annotations

from celery import Celery  # type: ignore[import-untyped]

from celeriac import App


def celeriac_app(name: str, redis_url: str, prefix: str, queue: str) -> App:
    """celeriac's side: broker and results under ``prefix``, tasks to ``queue``."""
    return App(
        name,
        broker=redis_url,
        broker_transport_options={"global_keyprefix": prefix},
        result_backend_transport_options={"global_keyprefix": prefix},
        task_default_queue=queue,
    )


def celery_app(name: str, redis_url: str, prefix: str, queue: str) -> Celery:
    """Celery's side, the same place (the caller closes it)."""
    return Celery(
        name,
        broker=redis_url,
        backend=redis_url,
        broker_transport_options={"global_keyprefix": prefix},
        result_backend_transport_options={"global_keyprefix": prefix},
        task_default_queue=queue,
        set_as_current=False,
    )

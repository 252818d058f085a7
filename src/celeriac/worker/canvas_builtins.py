"""Celery's builtin canvas tasks, registered on a worker's app under Celery's names.

``celery.map`` calls a task's function with each item, ``celery.starmap`` with each argument tuple, in the
worker that received the message, and returns the list (as Celery's builtins do: partial arguments of the
task signature are not used). A sync function runs in a thread, so a long map does not block the loop.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from celeriac.canvas import Signature

if TYPE_CHECKING:
    from celeriac.app.app import App


def register_builtins(app: App) -> None:
    """Register ``celery.map`` and ``celery.starmap`` on ``app`` unless the app has its own."""

    async def call(task: Any, args: list[Any]) -> Any:
        sig = Signature.from_dict(task, app=app)
        target = app.tasks.get(sig.name)
        if target is None:
            from celeriac.errors import UnknownTask

            raise UnknownTask(sig.name)
        if target.is_async:
            return await target(*args)
        return await asyncio.to_thread(target, *args)

    async def celery_map(task: Any, it: list[Any]) -> list[Any]:
        return [await call(task, [item]) for item in it]

    async def celery_starmap(task: Any, it: list[Any]) -> list[Any]:
        return [await call(task, list(item)) for item in it]

    for name, fn in (("celery.map", celery_map), ("celery.starmap", celery_starmap)):
        if name not in app.tasks:
            app.task(name=name)(fn)

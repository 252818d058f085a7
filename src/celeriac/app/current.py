"""The documented globals: the current app, the request of the task running in this context, and the
``@shared_task`` declarations.

The first two live in ContextVars, so each asyncio task and each thread started with ``asyncio.to_thread``
sees its own value. ``current_app`` falls back to the most recently created app, as Celery's does. Shared
task declarations are a process-wide list (as in Celery): every app registers them when it finalizes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Protocol

from celeriac.errors import ConfigurationError

if TYPE_CHECKING:
    from celeriac.app.app import App
    from celeriac.app.context import RequestContext

_app: ContextVar[App | None] = ContextVar("celeriac_current_app", default=None)
_default: list[App] = []  # the last App created; a list so no `global` statement is needed
_request: ContextVar[ContextSource | None] = ContextVar("celeriac_current_request", default=None)
_shared: dict[str, object] = {}  # task name -> its @shared_task declaration (celeriac.app.shared.SharedDefinition)


class ContextSource(Protocol):
    """Something that can produce the running task's RequestContext (the worker's Request does, lazily)."""

    def context(self) -> RequestContext: ...


def get_current_app() -> App:
    """The app set for this context, else the last one created; ConfigurationError when there is none."""
    app = _app.get() or (_default[-1] if _default else None)
    if app is None:
        raise ConfigurationError("no celeriac App has been created yet")
    return app


def set_current_app(app: App) -> None:
    """Make ``app`` current in this context."""
    _app.set(app)


def register_default(app: App) -> None:
    """Remember ``app`` as the fallback current app (called by App.__init__)."""
    _default[:] = [app]


@contextlib.contextmanager
def app_scope() -> Iterator[None]:
    """Whatever apps are made or made current inside, the current and fallback apps are as before afterwards
    (test fixtures: one test's app must not stay current for the next)."""
    token = _app.set(_app.get())
    fallback = list(_default)
    try:
        yield
    finally:
        _app.reset(token)
        _default[:] = fallback


def current_request() -> RequestContext | None:
    """The request of the task running in this context, if any."""
    source = _request.get()
    return source.context() if source is not None else None


def request_var() -> ContextVar[ContextSource | None]:
    """The ContextVar the worker sets around each task body."""
    return _request


def parent_ids() -> tuple[str | None, str | None]:
    """``(root_id, parent_id)`` of a send from here: a running task is the parent and its root the root (as
    Celery's send_task does); ``(None, None)`` elsewhere."""
    parent = current_request()
    if parent is None or parent.called_directly or not parent.id:
        return None, None
    return parent.root_id or parent.id, parent.id


def declare_shared(name: str, definition: object) -> None:
    """Remember the ``@shared_task`` declaration of task ``name`` (every app registers it when it finalizes); a
    later one of the same name (a module imported again) replaces it."""
    _shared.pop(name, None)
    _shared[name] = definition


def forget_shared(name: str) -> None:
    """Drop the ``@shared_task`` declaration of ``name`` (for test suites that declare throw-away ones)."""
    _shared.pop(name, None)


def shared_declarations() -> list[object]:
    """Every ``@shared_task`` declaration so far, in order."""
    return list(_shared.values())


def default_app() -> App | None:
    """The app current in this context, else the last one created, else None."""
    return _app.get() or (_default[-1] if _default else None)

"""The documented globals: the current app and the request of the task running in this context.

Both live in ContextVars, so each asyncio task and each thread started with ``asyncio.to_thread`` sees its
own value. ``current_app`` falls back to the most recently created app, as Celery's does.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Protocol

from celeriac.errors import ConfigurationError

if TYPE_CHECKING:
    from celeriac.app.app import App
    from celeriac.app.context import RequestContext

_app: ContextVar[App | None] = ContextVar("celeriac_current_app", default=None)
_default: list[App] = []  # the last App created; a list so no `global` statement is needed
_request: ContextVar[ContextSource | None] = ContextVar("celeriac_current_request", default=None)


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


def current_request() -> RequestContext | None:
    """The request of the task running in this context, if any."""
    source = _request.get()
    return source.context() if source is not None else None


def request_var() -> ContextVar[ContextSource | None]:
    """The ContextVar the worker sets around each task body."""
    return _request

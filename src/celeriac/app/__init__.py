"""The app layer: `App` (settings, tasks, connections), `Task`, `AsyncResult` and the current app.

``from celeriac import App`` is the usual spelling; these are the same objects.
"""

from celeriac.app.app import App
from celeriac.app.current import get_current_app
from celeriac.app.result import AsyncResult
from celeriac.app.task import Task

__all__ = ["App", "AsyncResult", "Task", "get_current_app"]

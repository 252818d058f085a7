"""Cluster events: `EventDispatcher` sends them, `EventReceiver` reads them, `State` makes sense of them."""

from celeriac.events.dispatcher import EventDispatcher
from celeriac.events.receiver import EventReceiver
from celeriac.events.state import State, TaskInfo, WorkerInfo

__all__ = ["EventDispatcher", "EventReceiver", "State", "TaskInfo", "WorkerInfo"]

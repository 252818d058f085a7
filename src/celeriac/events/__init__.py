"""Cluster events: `EventDispatcher` sends them, `EventReceiver` reads them, `ClusterState` makes sense of them."""

from celeriac.events.cluster import ClusterState, TaskInfo, WorkerInfo
from celeriac.events.dispatcher import EventDispatcher
from celeriac.events.receiver import EventReceiver

__all__ = ["ClusterState", "EventDispatcher", "EventReceiver", "TaskInfo", "WorkerInfo"]

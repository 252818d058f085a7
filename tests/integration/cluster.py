"""Shared set-up for the cluster tests: apps on a real broker (SQLite file, or Redis under a key prefix of its
own so fanout channels and keys never meet another test's), and workers that talk to each other."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celeriac import App

# A worker that gossips and sends heartbeats (start_worker leaves them off by default), quickly; no mingle (its
# hello round takes a second), except where a test asks for it.
CLUSTER = {"without_gossip": False, "without_heartbeat": False, "heartbeat_interval": 0.2}


@dataclass
class Broker:
    """Makes apps on one broker; ``kind`` is ``sqlite`` or ``redis``."""

    kind: str
    url: str
    options: dict[str, Any]

    def app(self, name: str = "cluster", **settings: Any) -> App:
        backend_options = {"global_keyprefix": self.options["global_keyprefix"]} if self.kind == "redis" else {}
        return App(
            name,
            broker=self.url,
            broker_transport_options=dict(self.options),
            result_backend_transport_options=backend_options,
            **settings,
        )


def reply_of(replies: dict[str, Any], node: str) -> Any:
    """One node's reply, with a readable failure when it did not answer."""
    assert node in replies, f"{node} did not reply: {replies}"
    return replies[node]


Predicate = Callable[[], bool]

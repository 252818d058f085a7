"""Mingle step: at start (and after each reconnect) say ``hello`` to the other workers and take what they know
— revoked task ids and their clocks — before consuming tasks (celery-wire.md §7.2).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from celeriac.control.pidbox import Mailbox
from celeriac.errors import TransportError
from celeriac.worker.bootsteps import Step
from celeriac.worker.consumer.connection import Connection
from celeriac.worker.consumer.events import Events

if TYPE_CHECKING:
    from celeriac.worker.consumer.consumer import Consumer
    from celeriac.worker.state import WorkerState

log = logging.getLogger("celeriac.worker")

HELLO_TIMEOUT = 1.0


def revoked_ids(value: Any) -> Iterable[str]:
    """The ids of a ``revoked`` field: a list (Celery 5.7, celeriac) or a dict keyed by id (Celery <= 5.6)."""
    if isinstance(value, dict | list | tuple):
        return [str(item) for item in value]
    return []


def merge_reply(state: WorkerState, reply: Any) -> bool:
    """Merge one node's hello reply into ``state``; False when it is not a reply we can use."""
    if not isinstance(reply, dict):
        return False
    clock = reply.get("clock")
    if isinstance(clock, int) and not isinstance(clock, bool):
        state.clock.adjust(clock)
    else:
        state.clock.forward()
    for task_id in revoked_ids(reply.get("revoked")):
        state.revoked.add(task_id)
    return True


class Mingle(Step["Consumer"]):
    """Syncs with the cluster before tasks are consumed (``--without-mingle`` leaves it out)."""

    requires = (Events,)
    timeout = HELLO_TIMEOUT

    def include_if(self, consumer: Consumer) -> bool:
        return not consumer.worker.without_mingle

    async def start(self, consumer: Consumer) -> None:
        worker = consumer.worker
        transport = consumer.blueprint.get(Connection).transport
        assert transport is not None
        log.info("mingle: searching for neighbors")
        arguments = {"from_node": worker.hostname, "revoked": [task_id for task_id, _ in worker.state.revoked.items()]}
        try:
            # Every other worker answers hello: where the broker counts who got it (Redis), the round ends with the
            # last reply (at once when alone) instead of after a silent second; elsewhere it waits the timeout.
            replies = await Mailbox(transport, signing_key=consumer.app.conf.control_signing_key).call(
                "hello", arguments, reply=True, timeout=self.timeout, every_receiver_replies=True
            )
        except TransportError as exc:
            log.warning("mingle: could not reach the other nodes: %s", exc)
            return
        synced = 0
        for reply in replies:
            for node, value in reply.items():
                if node != worker.hostname and merge_reply(worker.state, value):
                    synced += 1
        if synced:
            log.info("mingle: sync with %d nodes", synced)
            log.info("mingle: sync complete")
        else:
            log.info("mingle: all alone")

"""StateDB step (``--statedb FILE``): keep revoked task ids and the Lamport clock across restarts.

The file is JSON, ``{"version": 1, "clock": n, "revoked": [[id, unix time], ...]}`` (oldest first), written
whole to a temporary file and renamed over the old one, so a crash leaves the old or the new state, never half.
It is loaded before the consumer starts (so mingle and the first messages see the ids), saved every
``interval`` seconds when something changed, and at shutdown. Revoked ids keep their age: they still expire
after ``RevokedSet.expires``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from typing import TYPE_CHECKING, Any

from celeriac.errors import ConfigurationError
from celeriac.worker.bootsteps import Step

if TYPE_CHECKING:
    from celeriac.worker.state import WorkerState
    from celeriac.worker.worker import Worker

log = logging.getLogger("celeriac.worker")

FORMAT_VERSION = 1


def load_state(path: str, state: WorkerState) -> int:
    """Merge the file's revoked ids and clock into ``state``; returns how many ids. A missing file is empty.

    Raises:
        ConfigurationError: the file exists but is not a state file (one line naming it).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            data: Any = json.load(handle)
    except FileNotFoundError:
        return 0
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"--statedb {path}: cannot read it: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("revoked", []), list):
        raise ConfigurationError(f"--statedb {path}: not a celeriac state file")
    count = 0
    for entry in data.get("revoked", []):
        if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], int | float):
            state.revoked.add(str(entry[0]), at=float(entry[1]))
            count += 1
    clock = data.get("clock")
    if isinstance(clock, int) and clock > state.clock.value:
        state.clock.adjust(clock)
    return count


def save_state(path: str, state: WorkerState) -> None:
    """Write ``state``'s revoked ids and clock to ``path`` atomically. Raises OSError."""
    state.revoked.purge()
    data = {"version": FORMAT_VERSION, "clock": state.clock.value, "revoked": state.revoked.items()}
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class StateDB(Step["Worker"]):
    """Loads the state file at start, saves it periodically and at stop (only with ``--statedb``)."""

    interval = 10.0

    def __init__(self) -> None:
        self._saver: asyncio.Task[None] | None = None
        self._saved: tuple[int, Any, int] | None = None

    def include_if(self, worker: Worker) -> bool:
        return bool(worker.statedb)

    async def start(self, worker: Worker) -> None:
        assert worker.statedb is not None
        count = load_state(worker.statedb, worker.state)
        log.info("statedb: %d revoked id(s) loaded from %s", count, worker.statedb)
        self._saved = self._signature(worker.state)
        self._saver = asyncio.create_task(self._save_forever(worker), name="statedb")

    @staticmethod
    def _signature(state: WorkerState) -> tuple[int, Any, int]:
        items = state.revoked.items()
        return len(items), items[-1] if items else None, state.clock.value

    def save(self, worker: Worker) -> None:
        """Write the file now (errors are logged)."""
        assert worker.statedb is not None
        try:
            save_state(worker.statedb, worker.state)
        except OSError as exc:
            log.error("statedb: cannot write %s: %s", worker.statedb, exc)
            return
        self._saved = self._signature(worker.state)

    async def _save_forever(self, worker: Worker) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self._signature(worker.state)[:2] != (self._saved or (0, None, 0))[:2]:
                self.save(worker)

    async def stop(self, worker: Worker) -> None:
        if self._saver is not None:
            self._saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._saver
            self._saver = None
        self.save(worker)

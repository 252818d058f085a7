"""What beat keeps in the cluster per entry, and the names it keeps it under (the result backend's fenced
records of the beat lease)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass

LEASE = "celeriac-beat"
"""The lease every beat process of a cluster competes for; its fenced records hold each entry's progress."""

_IDS = uuid.UUID("6f1c1f2e-3b5d-4d39-9a55-2a3c1d0be7a1")


def key(entry: str) -> str:
    """The record key of entry ``entry``."""
    return f"entry:{entry}"


@dataclass(frozen=True)
class Progress:
    """An entry's latest settled slot, and the schedule it was computed with (a changed rule re-anchors)."""

    done: dt.datetime
    rule: str

    def encode(self) -> bytes:
        """The stored form (JSON)."""
        return json.dumps({"done": self.done.timestamp(), "rule": self.rule}).encode()

    @classmethod
    def decode(cls, raw: bytes | None) -> Progress | None:
        """The stored form read back; None for nothing stored or a record this version cannot read."""
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return cls(dt.datetime.fromtimestamp(float(data["done"]), dt.UTC), str(data["rule"]))
        except (ValueError, KeyError, TypeError):
            return None


def task_id(entry: str, slot: dt.datetime) -> str:
    """The id of the task sent for ``slot`` of ``entry``: the same in every beat process (a duplicate would
    show as one id twice in the results and events, never as two different tasks)."""
    return str(uuid.uuid5(_IDS, f"{entry}\x00{slot.timestamp():.6f}"))

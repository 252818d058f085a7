"""Lamport clock: the logical counter events and remote-control messages carry (celery-wire.md §4.7); no I/O."""

from __future__ import annotations


class LamportClock:
    """A logical clock: ``forward()`` on send, ``adjust(other)`` on receive (kombu's LamportClock semantics)."""

    def __init__(self, initial: int = 0) -> None:
        self.value = initial

    def forward(self) -> int:
        """Tick for a local event and return the new value."""
        self.value += 1
        return self.value

    def adjust(self, other: int) -> int:
        """Merge a value heard from another node: max(ours, theirs) + 1."""
        self.value = max(self.value, int(other)) + 1
        return self.value

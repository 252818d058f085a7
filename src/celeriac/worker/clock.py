"""Lamport clock: a counter every worker keeps and forwards when it hears a larger one."""

from __future__ import annotations


class LamportClock:
    """A logical clock (celery-wire.md §4.7): ``forward()`` on send, ``adjust(other)`` on receive."""

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

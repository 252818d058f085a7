"""Task states, whose string values are Celery's (celery-wire.md §6.4)."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """A task's state as stored in results and sent in events."""

    PENDING = "PENDING"
    RECEIVED = "RECEIVED"
    STARTED = "STARTED"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    RETRY = "RETRY"
    REVOKED = "REVOKED"
    REJECTED = "REJECTED"
    IGNORED = "IGNORED"


READY_STATES = frozenset({State.SUCCESS, State.FAILURE, State.REVOKED})
EXCEPTION_STATES = frozenset({State.RETRY, State.FAILURE, State.REVOKED})
PROPAGATE_STATES = frozenset({State.FAILURE, State.REVOKED})

# Highest first; unknown (custom) states rank between FAILURE and REVOKED, as in Celery.
_PRECEDENCE = ["SUCCESS", "FAILURE", None, "REVOKED", "STARTED", "RECEIVED", "REJECTED", "RETRY", "PENDING"]


def precedence(state: str) -> int:
    """Lower is stronger: used to merge out-of-order state information."""
    try:
        return _PRECEDENCE.index(state)
    except ValueError:
        return _PRECEDENCE.index(None)

"""RequestContext: what a running task knows about its own message (``self.request`` in a bound task)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RequestContext:
    """The request of a running task, as Celery's ``self.request``.

    ``called_directly`` is True when the task function was called as a plain function, not by a worker;
    ``is_eager`` when it runs through ``Task.apply()`` (or ``task_always_eager``). The fields are Celery's
    ``Context`` fields (``taskset``, ``time_limit`` and ``soft_time_limit`` are derived).
    """

    id: str | None = None
    task: str | None = None
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    retries: int = 0
    eta: str | None = None
    expires: str | None = None
    hostname: str | None = None
    delivery_info: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, Any] = field(default_factory=dict)
    root_id: str | None = None
    parent_id: str | None = None
    group: str | None = None
    group_index: int | None = None
    reply_to: str | None = None
    correlation_id: str | None = None
    priority: int | None = None
    timelimit: tuple[float | None, float | None] = (None, None)
    origin: str | None = None
    ignore_result: bool = False
    called_directly: bool = False
    # canvas: the message's embed (signature dicts), as Celery's request has them
    callbacks: list[Any] | None = None
    errbacks: list[Any] | None = None
    chain: list[Any] | None = None
    chord: Mapping[str, Any] | None = None
    is_eager: bool = False
    shadow: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    stamped_headers: list[str] | None = None
    stamps: Mapping[str, Any] = field(default_factory=dict)
    replaced_task_nesting: int = 0
    utc: bool = True
    loglevel: int | None = None
    logfile: str | None = None

    @property
    def taskset(self) -> str | None:
        """Celery's old name of ``group``."""
        return self.group

    @property
    def time_limit(self) -> float | None:
        """The hard time limit of this run (``timelimit[0]``)."""
        return self.timelimit[0]

    @property
    def soft_time_limit(self) -> float | None:
        """The soft time limit of this run (``timelimit[1]``)."""
        return self.timelimit[1]

    def context(self) -> RequestContext:
        """Itself: a RequestContext can stand wherever a source of one is expected."""
        return self

"""Which remote-control requests a worker obeys: `ControlGuard`, built from the worker's settings; no I/O.

- ``control_signing_key``: requests not signed with it are ignored (no reply; a log line), see `signing`;
- ``worker_control_disabled``: the commands named (or one of their aliases) get an error reply naming them;
- ``worker_control_readonly``: only inspect commands answer; every control command gets an error reply.

Refusals reply as Celery replies to a command it cannot run: ``{"error": "<why>"}`` (celery-wire.md §5.2).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from celeriac.control.commands import Command, CommandRegistry, Kind
from celeriac.control.signing import signature_problem
from celeriac.protocol.message import Message


@dataclass(frozen=True, slots=True)
class ControlGuard:
    """The rules one worker applies to each request before running it.

    Attributes:
        disabled: command names (or aliases) refused.
        readonly: refuse every control command (inspect commands still answer).
        signing_key: when set, requests must be signed with it.
    """

    disabled: frozenset[str] = frozenset()
    readonly: bool = False
    signing_key: str | None = None

    @classmethod
    def of(cls, disabled: Iterable[str], readonly: bool, signing_key: str | None) -> ControlGuard:
        """A guard from the three settings' values."""
        return cls(frozenset(str(name) for name in disabled), bool(readonly), signing_key or None)

    def unknown_names(self, registry: CommandRegistry) -> list[str]:
        """Names in ``disabled`` that are no command of ``registry`` (a typo disables nothing: worth a warning)."""
        return sorted(name for name in self.disabled if registry.get(name) is None)

    def ignores(self, message: Message) -> str | None:
        """Why the request in ``message`` must be ignored without a reply, or None to read it."""
        if self.signing_key is None:
            return None
        return signature_problem(message, self.signing_key)

    def refusal(self, method: str, command: Command | None) -> str | None:
        """The error text replied instead of running ``method`` (found as ``command``), or None to run it."""
        if command is None:
            return None  # unknown: the registry replies as Celery does
        if self.disabled & {method, command.name, *command.aliases}:
            return f"command {command.name!r} is disabled on this worker (worker_control_disabled)"
        if self.readonly and command.kind is Kind.CONTROL:
            return f"command {command.name!r} refused: remote control is read-only here (worker_control_readonly)"
        return None


__all__ = ["ControlGuard"]

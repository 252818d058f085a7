"""AsyncResource: the connect/close life cycle shared by transports and result backends.

``async with resource:`` connects on entry and closes on exit; ``close`` must be idempotent and release
everything even when the graceful part fails.
"""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Self


class AsyncResource(abc.ABC):
    """Something that is connected before use and closed after."""

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the connection."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release everything; idempotent."""

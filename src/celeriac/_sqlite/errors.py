"""sqlite3 errors -> celeriac errors, for one boundary (the broker's or the result store's)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from celeriac.errors import CeleriacError


@dataclass(frozen=True, slots=True)
class ErrorMap:
    """Which celeriac errors stand for sqlite3's at one boundary (the broker's or the result store's).

    Attributes:
        where: what the errors name, e.g. ``sqlite broker /srv/celeriac.db``.
        lost: raised for operational trouble (locked past the busy timeout, I/O error, cannot open).
        failed: raised for anything else sqlite3 reports.
        closed: raised when the connection is used after it was closed.
    """

    where: str
    lost: type[CeleriacError]
    failed: type[CeleriacError]
    closed: type[CeleriacError]
    busy_timeout: float

    def translate(self, exc: sqlite3.Error) -> CeleriacError:
        """The celeriac error for ``exc``, with a message that says what to do about a locked database."""
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError):
            if "locked" in text or "busy" in text:
                text = f"database stayed locked for more than {self.busy_timeout:g} s ({text})"
            return self.lost(f"{self.where}: {text}")
        return self.failed(f"{self.where}: {text}")

    def closed_error(self) -> CeleriacError:
        return self.closed(f"{self.where} is closed")

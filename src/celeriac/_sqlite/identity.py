"""Whether a database path still names the file a connection opened, and clearing what it left if not.

A connection to a deleted or replaced file works on, unseen by any other process (a deaf worker). Worse, SQLite
keeps the old file's ``-wal`` and ``-shm`` beside the path when such a connection closes, and a connection then
opened at that path takes that WAL for its own: the new file would read the old file's pages (checked with SQLite
3.40: a replaced file showed the tables of the one it replaced). So when the file is found gone, the WAL and
shared-memory files this connection opened are removed, if they are still the ones at the path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3

log = logging.getLogger("celeriac.sqlite")

_SIDE_FILES = ("-wal", "-shm")


def _inode(path: str) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


class FileIdentity:
    """The device and inode of a database file and of its WAL and shared-memory files, as opened."""

    def __init__(self, path: str) -> None:
        """Record what ``path`` (and its ``-wal``, ``-shm``) are now: call it once the connection is open."""
        self.path = path
        self._main = _inode(path)
        self._sides = {suffix: _inode(path + suffix) for suffix in _SIDE_FILES}

    def changed(self) -> str | None:
        """None while ``path`` is the file opened; else what happened to it. Raises OSError if it cannot tell."""
        now = _inode(self.path)
        if now is None:
            return "was deleted"
        if now != self._main:
            return "was replaced by another file"
        return None

    def lost(self) -> str | None:
        """`changed`, with a check that fails (the directory gone, no permission) as the reason."""
        try:
            return self.changed()
        except OSError as exc:
            return f"cannot be checked ({exc})"

    def abandon(self, conn: sqlite3.Connection, where: str, gone: str) -> None:
        """Close ``conn``, whose file is lost (``gone`` says how), remove the WAL files it leaves, and log it."""
        conn.close()  # nothing more goes to the lost file
        removed = self.discard_stale()
        cleared = f", removed its stale {' and '.join(removed)}" if removed else ""
        log.error(
            "%s: the database file %s under this process; refusing to use it%s (a reconnect opens or creates "
            "the file now at that path)", where, gone, cleared,
        )  # fmt: skip

    def discard_stale(self) -> list[str]:
        """Remove the ``-wal``/``-shm`` files this connection opened, if they are still at the path (the file
        they belong to is gone: applied to whatever is at the path now, they would corrupt it). Returns the
        paths removed."""
        removed = []
        for suffix, opened in self._sides.items():
            side = self.path + suffix
            if opened is not None and _inode(side) == opened:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(side)
                    removed.append(side)
        return removed

"""Wake-ups across the processes that share one SQLite file, so a waiting consumer need not poll to see a commit.

Each process that waits binds a Unix datagram socket in ``<database>.wake/`` (named after its pid and a random
suffix) and watches it on its event loop; a process that commits something others may wait for (a task, a
result) sends one byte to every socket there. A poke only makes the receiver look at ``PRAGMA data_version`` at
once: the poll (`celeriac._sqlite.watch`) stays underneath, so a lost or impossible poke (a full socket buffer, a
path too long for a Unix socket, a file system that refuses sockets) costs latency, never a message. A socket whose
process is gone refuses the datagram and is removed by the next sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable

log = logging.getLogger("celeriac.sqlite")

LIST_EVERY = 1.0  # seconds a sender trusts its list of peers (a new peer is poked within this long)
MAX_PATH = 100  # bytes: AF_UNIX paths are limited to 108 on Linux (less elsewhere)


class Wake:
    """This process's wake-up socket for one database file, and the sending side."""

    def __init__(self, database: str, on_poke: Callable[[], None]) -> None:
        self.directory = database + ".wake"
        self._on_poke = on_poke
        self._sock: socket.socket | None = None  # bound: receives pokes (once `listen` ran)
        self._sender: socket.socket | None = None  # unbound: sends pokes
        self._path: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._peers: list[str] = []
        self._listed = float("-inf")

    def listen(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind this process's socket and watch it on ``loop`` (best effort: on failure, polling alone)."""
        if self._sock is not None:
            return
        path = os.path.join(self.directory, f"{os.getpid()}-{uuid.uuid4().hex[:8]}")
        if len(os.fsencode(path)) > MAX_PATH:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            os.makedirs(self.directory, exist_ok=True)
            sock.setblocking(False)
            sock.bind(path)
            loop.add_reader(sock.fileno(), self._drain)
        except (OSError, NotImplementedError) as exc:
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(path)
            log.debug("no wake-up socket in %s (polling only): %s", self.directory, exc)
            return
        self._sock, self._path, self._loop = sock, path, loop

    def _drain(self) -> None:
        assert self._sock is not None
        with contextlib.suppress(OSError):
            while self._sock.recv(64):
                pass
        self._on_poke()

    def poke_others(self) -> None:
        """Send one byte to every other process waiting on this database (never blocks, never raises)."""
        now = time.monotonic()
        if now - self._listed > LIST_EVERY:
            self._listed = now
            try:
                names = os.listdir(self.directory)
            except OSError:
                names = []
            self._peers = [path for name in names if (path := os.path.join(self.directory, name)) != self._path]
        if not self._peers:
            return
        if self._sender is None:
            try:
                self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sender.setblocking(False)
            except OSError:
                return
        for peer in list(self._peers):
            try:
                self._sender.sendto(b"!", peer)
            except ConnectionRefusedError:  # nobody bound there: its process is gone
                self._peers.remove(peer)
                with contextlib.suppress(OSError):
                    os.unlink(peer)
            except FileNotFoundError:
                self._peers.remove(peer)
            except OSError:  # a full buffer (it has pokes to read already), or anything else: its poll will see
                continue

    def close(self) -> None:
        """Stop listening; remove this process's socket."""
        sock, self._sock = self._sock, None
        if sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(sock.fileno())
            sock.close()
        if self._path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._path)
            self._path = None
        if self._sender is not None:
            self._sender.close()
            self._sender = None

"""Cross-process wake-ups of the SQLite broker (`celeriac._sqlite.wake`): a poke reaches every other waiting
endpoint of the same database file, a gone endpoint's socket is removed, and an endpoint that cannot bind (a path
too long for a Unix socket) falls back to polling without an error."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

from celeriac._sqlite.wake import Wake


async def test_a_poke_reaches_the_other_waiting_endpoints(tmp_path: Path) -> None:
    database = str(tmp_path / "b.db")
    poked = {"a": asyncio.Event(), "b": asyncio.Event()}
    a, b = Wake(database, poked["a"].set), Wake(database, poked["b"].set)
    loop = asyncio.get_running_loop()
    a.listen(loop)
    b.listen(loop)
    sender = Wake(database, lambda: None)  # a producer: never listens, still pokes
    try:
        sender.poke_others()
        async with asyncio.timeout(10):
            await poked["a"].wait()
            await poked["b"].wait()
        poked["a"].clear()
        a.poke_others()  # never itself
        async with asyncio.timeout(10):
            while not poked["b"].is_set():
                await asyncio.sleep(0)
        assert not poked["a"].is_set()
    finally:
        for end in (a, b, sender):
            end.close()
    assert os.listdir(tmp_path / "b.db.wake") == []  # closed endpoints leave nothing behind


async def test_a_gone_endpoint_is_removed_and_a_long_path_just_polls(tmp_path: Path) -> None:
    database = str(tmp_path / "b.db")
    os.makedirs(database + ".wake")
    ghost = os.path.join(database + ".wake", "1-dead")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(ghost)
    dead.close()  # bound once, nobody listening now: a process that was killed
    sender = Wake(database, lambda: None)
    sender.poke_others()
    sender.close()
    assert not os.path.exists(ghost)
    deep = tmp_path / ("x" * 120)
    deep.mkdir()
    far = Wake(str(deep / "b.db"), lambda: None)
    far.listen(asyncio.get_running_loop())  # too long for AF_UNIX: no socket, no error
    far.poke_others()
    far.close()
    assert not os.path.exists(str(deep / "b.db.wake"))

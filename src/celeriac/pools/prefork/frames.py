"""The parent <-> child IPC of the prefork pool: length-prefixed pickle frames over a Unix socketpair.

Only our own objects travel: a `Call` (whose args are the decoded message arguments), `Ready`, `Done`, or
None (the parent asks the child to exit). The child side blocks on its socket; the parent side reads with
asyncio streams, so the worker's loop never waits on a child.
"""

from __future__ import annotations

import asyncio
import operator
import pickle
import socket
import struct
from dataclasses import fields
from typing import Any, NamedTuple

from celeriac.app.context import RequestContext
from celeriac.pools.call import Call

_HEADER = struct.Struct("!I")


# Frames are NamedTuples and plain tuples, not dataclasses: a slotted dataclass pickles through
# dataclasses.fields() on both ends (~30 us a frame on the 2-core VM, measured with cProfile on 5,000 no-ops).
class Ready(NamedTuple):
    """A child is up: its pid, and its resident memory (KiB) before any task ran."""

    pid: int
    rss_kib: int


class Done(NamedTuple):
    """One body's end in a child.

    Attributes:
        ok: the body returned ``value``; otherwise it raised ``value`` (an exception).
        value: the return value or the exception.
        traceback: the child's formatted traceback of a failure.
        exiting: why the child exits after this frame (``max-tasks-per-child``...), or None.
    """

    ok: bool
    value: Any
    traceback: str | None = None
    exiting: str | None = None


_context_values = operator.attrgetter(*(field.name for field in fields(RequestContext)))


def call_frame(call: Call) -> tuple[Any, ...]:
    """A `Call` as the plain tuple sent to a child (the request context as its field values)."""
    values = _context_values(call.context)
    return (call.task, call.args, dict(call.kwargs), values, call.time_limit, call.soft_time_limit)


def call_from_frame(frame: tuple[Any, ...]) -> Call:
    """The `Call` a child rebuilds from `call_frame`."""
    task, args, kwargs, values, hard, soft = frame
    return Call(task, args, kwargs, RequestContext(*values), hard, soft)


def pack(obj: Any) -> bytes:
    """One frame: 4-byte big-endian length, then the pickle."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


def recv(sock: socket.socket) -> tuple[bool, Any]:
    """Child side: block for one frame; ``(False, None)`` when the parent is gone (end of stream)."""
    header = _recv_exactly(sock, _HEADER.size)
    if header is None:
        return False, None
    body = _recv_exactly(sock, _HEADER.unpack(header)[0])
    if body is None:
        return False, None
    return True, pickle.loads(body)


async def read(reader: asyncio.StreamReader) -> Any:
    """Parent side: one frame from a child.

    Raises:
        asyncio.IncompleteReadError: the child's end closed (it exited or died).
    """
    header = await reader.readexactly(_HEADER.size)
    return pickle.loads(await reader.readexactly(_HEADER.unpack(header)[0]))

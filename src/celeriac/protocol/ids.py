"""Task ids and delivery tags: random (version 4) UUIDs as text, made at half the cost of ``str(uuid4())``.

Every send makes two (the task id and, on Redis, the delivery tag); ``str(uuid.uuid4())`` builds a `uuid.UUID`
object only to format it, 3.6 us against 1.7 us here (timeit on the 2-core benchmark VM). The randomness is the
same: 16 bytes of ``os.urandom``, never a seeded generator, so forked processes never repeat each other's ids.
"""

from __future__ import annotations

from os import urandom


def new_id() -> str:
    """A random UUID (RFC 4122 version 4) in its canonical text form, as ``str(uuid.uuid4())`` gives."""
    raw = bytearray(urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

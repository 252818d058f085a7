"""Compress and decompress task bodies under kombu's MIME types (celery-wire.md §1.2); no I/O."""

from __future__ import annotations

import bz2
import difflib
import lzma
import zlib
from collections.abc import Callable
from typing import Any

from celeriac.errors import ConfigurationError, DecodeError

_COMPRESSORS: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
    # zlib streams travel as "application/x-gzip": a kombu naming quirk every Celery client shares.
    "application/x-gzip": (zlib.compress, zlib.decompress),
    "application/x-bz2": (bz2.compress, bz2.decompress),
    "application/x-lzma": (lzma.compress, lzma.decompress),
}
_COMPRESSION_NAMES = {
    "zlib": "application/x-gzip",
    "gzip": "application/x-gzip",
    "bz2": "application/x-bz2",
    "bzip2": "application/x-bz2",
    "lzma": "application/x-lzma",
    "xz": "application/x-lzma",
}


def compression_type(name: str) -> str:
    """The MIME type for compression ``name`` (``zlib``, ``bz2``, ``lzma``, or a MIME type we support).

    Raises:
        ConfigurationError: an unknown compression, naming the closest known one.
    """
    if name in _COMPRESSORS:
        return name
    if name in _COMPRESSION_NAMES:
        return _COMPRESSION_NAMES[name]
    close = difflib.get_close_matches(name, list(_COMPRESSION_NAMES), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(_COMPRESSION_NAMES))}"
    raise ConfigurationError(f"unknown compression {name!r}; {hint}")


def compress(body: bytes, name: str) -> tuple[str, bytes]:
    """``(MIME type, compressed body)`` for compression ``name``. Raises ConfigurationError when unknown."""
    mime = compression_type(name)
    return mime, _COMPRESSORS[mime][0](body)


def decompress(body: bytes, compression: Any) -> bytes:
    """``body`` decompressed as the ``compression`` header says. Raises DecodeError naming the problem."""
    codec = _COMPRESSORS.get(compression) if isinstance(compression, str) else None
    if codec is None:
        raise DecodeError(f"unsupported compression {compression!r}")
    try:
        return codec[1](body)
    except (zlib.error, OSError, ValueError, EOFError, lzma.LZMAError) as exc:
        raise DecodeError(f"cannot decompress {compression} body: {exc}") from exc


__all__ = ["compress", "compression_type", "decompress"]

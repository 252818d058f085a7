"""Compress and decompress task bodies under kombu's MIME types (celery-wire.md §1.2), never past a size cap.

Decompression is incremental and stops as soon as the output would pass ``max_bytes``: a 2 KB "bomb" that
expands to gigabytes costs at most ``max_bytes`` (plus one chunk) of memory before it is refused. No I/O.
"""

from __future__ import annotations

import difflib
import sys
import zlib
from collections.abc import Callable
from typing import Any, Protocol

from celeriac.errors import ConfigurationError, DecodeError

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""The default of ``worker_max_message_bytes``: the largest body a worker reads, raw or decompressed."""


class _Decompressor(Protocol):
    """What ``zlib.decompressobj()``, ``bz2.BZ2Decompressor()`` and ``lzma.LZMADecompressor()`` share."""

    @property
    def eof(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: bytes, max_length: int = ..., /) -> bytes: ...


def _zlib() -> _Decompressor:
    return zlib.decompressobj()


def _stream_errors() -> tuple[type[BaseException], ...]:
    """What a bad stream raises; lzma's own error only once lzma is in use (it is imported on first use)."""
    lzma = sys.modules.get("lzma")
    return (OSError, ValueError, EOFError, *((lzma.LZMAError,) if lzma is not None else ()))


def _decompress_errors() -> tuple[type[BaseException], ...]:
    return (zlib.error, *_stream_errors())


# bz2 and lzma are imported when a message uses them: almost none do, and every worker would pay for them.
def _bz2_compress(data: bytes) -> bytes:
    import bz2

    return bz2.compress(data)


def _bz2() -> _Decompressor:
    import bz2

    return bz2.BZ2Decompressor()


def _lzma_compress(data: bytes) -> bytes:
    import lzma

    return lzma.compress(data)


def _lzma() -> _Decompressor:
    import lzma

    return lzma.LZMADecompressor()


_COMPRESSORS: dict[str, tuple[Callable[[bytes], bytes], Callable[[], _Decompressor]]] = {
    # zlib streams travel as "application/x-gzip": a kombu naming quirk every Celery client shares.
    "application/x-gzip": (zlib.compress, _zlib),
    "application/x-bz2": (_bz2_compress, _bz2),
    "application/x-lzma": (_lzma_compress, _lzma),
}
_COMPRESSION_NAMES = {
    "zlib": "application/x-gzip",
    "gzip": "application/x-gzip",
    "bz2": "application/x-bz2",
    "bzip2": "application/x-bz2",
    "lzma": "application/x-lzma",
    "xz": "application/x-lzma",
}
_CHUNK = 1024 * 1024  # output asked for per step: the most a refused bomb costs past the cap


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


def _too_large(compression: str, max_bytes: int) -> DecodeError:
    return DecodeError(
        f"{compression} body decompresses to more than {max_bytes} bytes (worker_max_message_bytes); refused"
    )


def _one_stream(decompressor: _Decompressor, data: bytes, out: bytearray, max_bytes: int, compression: str) -> None:
    """Append the stream at the start of ``data`` to ``out``, refusing it once ``out`` passes ``max_bytes``."""
    chunk = decompressor.decompress(data, min(_CHUNK, max_bytes + 1 - len(out)))
    while True:
        out += chunk
        if len(out) > max_bytes:
            raise _too_large(compression, max_bytes)
        if decompressor.eof or not chunk:
            break
        # More output may be pending (zlib keeps the input it has not read yet in `unconsumed_tail`).
        pending = getattr(decompressor, "unconsumed_tail", b"")
        chunk = decompressor.decompress(pending, min(_CHUNK, max_bytes + 1 - len(out)))
    if not decompressor.eof:
        raise DecodeError(f"cannot decompress {compression} body: the stream is truncated")


def _bounded(make: Callable[[], _Decompressor], body: bytes, max_bytes: int, compression: str) -> bytes:
    """``body`` decompressed as the one-shot functions do it (bz2 and lzma read concatenated streams; bytes
    after the last stream are ignored), stopping as soon as the output passes ``max_bytes``."""
    out = bytearray()
    decompressor = make()
    _one_stream(decompressor, body, out, max_bytes, compression)
    rest = decompressor.unused_data
    while rest and make is not _zlib:
        decompressor = make()
        try:
            _one_stream(decompressor, rest, out, max_bytes, compression)
        except _stream_errors():
            break  # trailing bytes that are not a stream: ignored, as bz2.decompress/lzma.decompress do
        rest = decompressor.unused_data
    return bytes(out)


def decompress(body: bytes, compression: Any, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> bytes:
    """``body`` decompressed as the ``compression`` header says, at most ``max_bytes`` long.

    Raises:
        DecodeError: unknown compression, a corrupt or truncated stream, or an output over ``max_bytes``.
    """
    codec = _COMPRESSORS.get(compression) if isinstance(compression, str) else None
    if codec is None:
        raise DecodeError(f"unsupported compression {compression!r}")
    try:
        return _bounded(codec[1], body, max_bytes, compression)
    except _decompress_errors() as exc:
        raise DecodeError(f"cannot decompress {compression} body: {exc}") from exc


__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "compress", "compression_type", "decompress"]

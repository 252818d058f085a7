"""Hostile task messages without a broker: decompression bombs stop at the cap, for every compression, and a
refused content type is never decompressed (issue 10, item 8)."""

from __future__ import annotations

import bz2
import lzma
import time
import tracemalloc
import zlib
from collections.abc import Callable
from functools import cache

import pytest

from celeriac.errors import ContentDisallowed, DecodeError
from celeriac.protocol import Message, TaskMessage, decode_off_loop, decode_task, encode_task, serializers
from celeriac.protocol.compressors import DEFAULT_MAX_MESSAGE_BYTES, decompress

JSON = serializers.normalize_accept(["json"])
MIME = {"zlib": "application/x-gzip", "bz2": "application/x-bz2", "lzma": "application/x-lzma"}
COMPRESS: dict[str, Callable[[bytes], bytes]] = {"zlib": zlib.compress, "bz2": bz2.compress, "lzma": lzma.compress}


@cache
def bomb(kind: str, size: int) -> Message:
    """A task message whose small body expands to ``size`` bytes of JSON-looking text."""
    body = COMPRESS[kind](b'[["' + b"0" * size + b'"], {}, {}]')
    return Message(body=body, headers={"task": "t", "id": f"bomb-{kind}", "lang": "py", "compression": MIME[kind]})


@pytest.mark.parametrize("kind", list(MIME))
def test_a_decompression_bomb_is_refused_at_the_cap_without_taking_its_size_in_memory(kind: str) -> None:
    message = bomb(kind, DEFAULT_MAX_MESSAGE_BYTES + 1024)
    assert len(message.body) < 100_000  # (bz2 ~ 100 B, lzma ~ 10 KB, zlib ~ 65 KB) for 64 MB
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError, match=r"more than 1048576 bytes \(worker_max_message_bytes\)"):
            decode_task(message, JSON, max_bytes=1024 * 1024)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, peak  # the cap, one chunk and lzma's 8 MB dictionary; not 64 MB


@pytest.mark.parametrize("kind", list(MIME))
def test_the_default_cap_refuses_a_bomb_quickly(kind: str) -> None:
    message = bomb(kind, DEFAULT_MAX_MESSAGE_BYTES + 1024)
    started = time.monotonic()
    with pytest.raises(DecodeError, match="worker_max_message_bytes"):
        decode_task(message, JSON)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("kind", list(MIME))
def test_bodies_under_the_cap_still_decode(kind: str) -> None:
    task = TaskMessage(id="ok", task="t", args=("x" * 50_000,))
    message = encode_task(task, compression=kind)
    assert decode_task(message, JSON, max_bytes=100_000).args == ("x" * 50_000,)
    with pytest.raises(DecodeError, match="more than 1000 bytes"):
        decode_task(message, JSON, max_bytes=1000)


@pytest.mark.parametrize("kind", list(MIME))
def test_truncated_and_concatenated_streams(kind: str) -> None:
    whole = COMPRESS[kind](b"hello" * 100)
    with pytest.raises(DecodeError, match="cannot decompress"):
        decompress(whole[:-8], MIME[kind])
    # The one-shot functions' reading of trailing bytes is kept: bz2/lzma read every stream, zlib the first.
    twice = decompress(whole + COMPRESS[kind](b"!") + b"junk", MIME[kind])
    assert twice == (b"hello" * 100 if kind == "zlib" else b"hello" * 100 + b"!")


def test_a_raw_body_over_the_cap_is_refused_before_it_is_parsed() -> None:
    message = Message(body=b"[[" + b"1," * 1000 + b"1], {}, {}]", headers={"task": "t", "id": "big"})
    with pytest.raises(DecodeError, match=r"body of \d+ bytes is over 1000 \(worker_max_message_bytes\)"):
        decode_task(message, JSON, max_bytes=1000)


def test_a_refused_content_type_is_not_decompressed() -> None:
    message = bomb("zlib", DEFAULT_MAX_MESSAGE_BYTES + 1024)
    pickled = Message(
        body=message.body,
        content_type="application/x-python-serialize",
        content_encoding="binary",
        headers=message.headers,
    )
    started = time.process_time()
    with pytest.raises(ContentDisallowed):
        decode_task(pickled, JSON)
    assert time.process_time() - started < 0.05  # refused before 10 MB were inflated


def test_only_compressed_or_large_bodies_are_decoded_off_the_loop() -> None:
    plain = encode_task(TaskMessage(id="a", task="t"))
    assert not decode_off_loop(plain)
    assert decode_off_loop(encode_task(TaskMessage(id="a", task="t"), compression="zlib"))
    assert decode_off_loop(Message(body=b" " * 300_000, headers={"task": "t"}))

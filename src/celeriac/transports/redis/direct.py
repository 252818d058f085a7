"""The Redis transport's blocking publisher: one thread's LPUSHes on a `BlockingLink` of its own."""

from __future__ import annotations

import hiredis

from celeriac._redis.blocking import BlockingLink
from celeriac.protocol.message import Message
from celeriac.transports.base import BlockingPublisher
from celeriac.transports.redis import envelope as redis_envelope
from celeriac.transports.redis.keys import RedisKeys


class RedisBlockingPublisher(BlockingPublisher):
    """``LPUSH`` of kombu's envelope onto the queue's list (its priority list), as `RedisTransport.publish` does
    for the default exchange."""

    def __init__(self, link: BlockingLink, keys: RedisKeys) -> None:
        self._link = link
        self._keys = keys

    def publish(self, message: Message, queue: str) -> None:
        """LPUSH the envelope; returns once Redis answered (see `BlockingPublisher`)."""
        payload = redis_envelope.encode(message, "", queue)
        command = ("LPUSH", self._keys.queue(queue, message.priority), payload)
        self._link.round_trip(hiredis.pack_command(command))  # type: ignore[arg-type]  # its stub takes 1-tuples

    def close(self) -> None:
        """Close the link (see `BlockingPublisher.close`)."""
        self._link.close()

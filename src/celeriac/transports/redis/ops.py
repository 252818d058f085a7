"""The Redis commands and scripts of the transport, one method per round trip, redis-py errors translated.

Everything that touches the server goes through `RedisOps`, so the flow-control code above it (consumer,
restorer, transport) never sees a redis-py type or exception: a broken link raises `ConnectionLost`, any
other server error `TransportError`.
"""

from __future__ import annotations

import functools
import re
import time
import uuid
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions as redis_exc

from celeriac._redis.errors import redis_errors
from celeriac._redis.lane import Lane
from celeriac.transports.redis import scripts
from celeriac.transports.redis.fetch import FETCH, Outcome, fetch_command, outcome, text
from celeriac.transports.redis.keys import Binding
from celeriac.transports.redis.options import RedisSettings


@functools.lru_cache(maxsize=256)
def _topic(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _matches(binding: Binding, routing_key: str) -> bool:
    """kombu's routing for an exchange whose type we do not know: a topic pattern if stored, else direct."""
    if not binding.pattern:
        return binding.routing_key == routing_key
    compiled = _topic(binding.pattern)
    return compiled is not None and compiled.match(routing_key) is not None


class RedisOps:
    """The transport's server operations over two clients: ``client`` (commands) and ``blocking`` (waits).

    Args:
        client: the command client; its socket timeout bounds every non-blocking call.
        blocking: the template of blocking connections (`wait`): its socket timeout is longer than
            ``settings.block_timeout``.
        settings: names and tunables.
        where: the redacted URL, for error messages.
    """

    def __init__(self, client: aioredis.Redis, blocking: aioredis.Redis, settings: RedisSettings, where: str) -> None:
        self.client = client
        self.blocking = blocking
        self.settings = settings
        self.keys = settings.keys
        self.where = where
        self.owned = settings.keys.owned(uuid.uuid4().hex)  # what this transport fetched and has not settled
        self._fetch = client.register_script(scripts.FETCH)
        self._ack = client.register_script(scripts.ACK)
        self._move_back = client.register_script(scripts.MOVE_BACK)
        self._bury = client.register_script(scripts.BURY)
        self._release = client.register_script(scripts.RELEASE_MUTEX)
        self._renew_mutex = client.register_script(scripts.RENEW_MUTEX)
        self._close_claim = client.register_script(scripts.CLOSE_CLAIM)
        # The hot paths send one round trip at a time each: a connection of their own spares them the pool.
        self._fetch_lane = Lane(client)
        self._ack_lane = Lane(client)
        self._push_lane = Lane(client)

    async def close(self) -> None:
        """Drop the lanes' connections (the clients' pools are closed by their owner)."""
        for lane in (self._fetch_lane, self._ack_lane, self._push_lane):
            await lane.close()

    async def ping(self) -> None:
        """One round trip, to prove the link works."""
        with redis_errors(self.where):
            await self.client.ping()

    # -- queues ------------------------------------------------------------------------------------------------

    async def declare(self, queue: str, exchange: str, routing_key: str, pattern: str = "") -> None:
        """Bind ``queue`` to ``exchange``: SADD the member to the binding set and to kombu 5.7's permanent set."""
        member = self.keys.binding_member(Binding(routing_key, pattern, queue))
        with redis_errors(self.where):
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.sadd(self.keys.binding(exchange), member)
                pipe.sadd(self.keys.binding_permanent(exchange), member)
                await pipe.execute()

    async def unbind(self, queue: str, exchange: str, routing_key: str, pattern: str = "") -> None:
        """Remove a binding from both sets (the routing table is deleted by Redis when it empties)."""
        member = self.keys.binding_member(Binding(routing_key, pattern, queue))
        with redis_errors(self.where):
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.srem(self.keys.binding(exchange), member)
                pipe.srem(self.keys.binding_permanent(exchange), member)
                await pipe.execute()

    async def route(self, exchange: str, routing_key: str) -> list[str]:
        """The queues a message published to ``exchange`` with ``routing_key`` goes to (kombu's lookup)."""
        if not exchange:
            return [routing_key]
        with redis_errors(self.where):
            members = await self.client.smembers(self.keys.binding(exchange))
        queues: list[str] = []
        for member in sorted(text(m) for m in members):
            binding = self.keys.parse_binding(member)
            if binding is not None and _matches(binding, routing_key) and binding.queue not in queues:
                queues.append(binding.queue)
        return queues

    async def push(self, batch: Sequence[tuple[Sequence[str], str]]) -> None:
        """LPUSH each ``(lists, payload)`` onto each of its lists (kombu's publish), all in one round trip.

        Not a transaction, as kombu's own multi-queue publish is not: an error fails the whole batch, though
        some pushes may have been applied.
        """
        # Consecutive pushes to one list go as one LPUSH of several values: Redis inserts them one after the other,
        # exactly as the separate LPUSHes would, and answers once instead of once per message.
        commands: list[list[str]] = []
        for lists, payload in batch:
            for key in lists:
                if commands and commands[-1][1] == key:
                    commands[-1].append(payload)
                else:
                    commands.append(["LPUSH", key, payload])
        with redis_errors(self.where):
            for reply in await self._push_lane.pipeline(commands):
                if isinstance(reply, redis_exc.ResponseError):
                    raise reply

    async def size(self, queue: str) -> int:
        """Messages waiting in ``queue``: the sum of LLEN over its priority lists."""
        with redis_errors(self.where):
            async with self.client.pipeline(transaction=True) as pipe:
                for key in self.keys.queue_lists(queue):
                    pipe.llen(key)
                lengths: list[int] = await pipe.execute()
        return sum(lengths)

    async def purge(self, queue: str) -> int:
        """Delete every priority list of ``queue``; return how many messages they held (atomic)."""
        lists = self.keys.queue_lists(queue)
        with redis_errors(self.where):
            async with self.client.pipeline(transaction=True) as pipe:
                for key in lists:
                    pipe.llen(key)
                pipe.delete(*lists)
                replies: list[int] = await pipe.execute()
        return sum(replies[: len(lists)])

    async def publish(self, channel: str, payload: str) -> int:
        """PUBLISH ``payload`` on the Redis ``channel``; returns the number of receivers."""
        with redis_errors(self.where):
            receivers: int = await self.client.publish(channel, payload)
        return receivers

    # -- deliveries --------------------------------------------------------------------------------------------

    def fetch_command(
        self,
        order: Sequence[tuple[str, str]],
        count: int,
        mode: str,
        claim: str,
        generation: int,
        rid: str = "",
        open_id: int = 0,
    ) -> list[Any]:
        """The EVALSHA command of the fetch script (`scripts.FETCH`) over the lists of ``order``."""
        return fetch_command(
            self._fetch.sha, self.settings, self.owned, order, count, mode, claim, generation, rid, open_id
        )

    @staticmethod
    def outcome(order: Sequence[tuple[str, str]], reply: Sequence[Any]) -> Outcome:
        """The `Outcome` of a fetch script reply for the lists of ``order``."""
        return outcome(order, reply)

    async def fetch(
        self, order: Sequence[tuple[str, str]], count: int, claim: str, generation: int, open_id: int
    ) -> Outcome:
        """Move up to ``count`` messages from the lists of ``order`` into unacked (script `scripts.FETCH`).

        Ends any claim under ``claim``; when every list is empty, opens claim ``open_id`` for ``generation`` and
        ``count`` messages (state ``opened``).
        """
        command = self.fetch_command(order, count, FETCH, claim, generation, open_id=open_id)
        keys_count = command[2]
        with redis_errors(self.where):
            reply = await self._fetch_lane.script(self._fetch, command[3 : 3 + keys_count], command[3 + keys_count :])
        return self.outcome(order, reply)

    @property
    def fetch_retries(self) -> int:
        """How many fetches were sent twice after a broken link (the first may have run, its reply lost)."""
        return self._fetch_lane.retries

    async def disown(self, tags: Sequence[str]) -> None:
        """Drop ``tags`` from this transport's owned hash (they left unacked by another way)."""
        if tags:
            with redis_errors(self.where):
                await self.client.hdel(self.owned, *tags)

    async def load_fetch(self) -> None:
        """Load the fetch script into the server's script cache again (after a restart or SCRIPT FLUSH)."""
        with redis_errors(self.where):
            await self.client.script_load(scripts.FETCH)

    async def close_claim(self, claim: str) -> str | None:
        """Close the claim ``claim`` if open (script `scripts.CLOSE_CLAIM`); returns its value before."""
        with redis_errors(self.where):
            value = await self._close_claim(keys=[claim], args=[])
        return None if value is None else text(value)

    async def delete_claim(self, claim: str) -> None:
        """Delete the claim key ``claim`` (its consumer has ended)."""
        with redis_errors(self.where):
            await self.client.delete(claim)

    async def ack(self, items: Sequence[tuple[str, int]]) -> None:
        """Forget the deliveries ``(tag, count)`` in one round trip (script `scripts.ACK`)."""
        args: list[Any] = [self.keys.delivery_count_prefix]
        for tag, count in items:
            args += [tag, count]
        with redis_errors(self.where):
            await self._ack_lane.script(self._ack, [self.keys.unacked, self.keys.unacked_index, self.owned], args)

    async def move_back(
        self,
        tag: str,
        payload: str,
        lists: Sequence[str],
        *,
        front: bool,
        count: int | None = None,
        expected: str | None = None,
        cutoff: float | None = None,
        suspect: bool = False,
    ) -> int:
        """Take ``tag`` out of unacked and push ``payload`` onto ``lists`` (script `scripts.MOVE_BACK`).

        ``front`` pushes to the end consumed next (RPUSH, a restore), else to the back (LPUSH, a requeue).
        The move happens only if the entry still has delivery count ``count``, value ``expected`` and a
        score <= ``cutoff`` (each when given); ``suspect`` marks it for delivery alone (`scripts.FETCH`).
        Returns the number of lists pushed to, -1 if nothing moved.
        """
        keys = [self.keys.unacked, self.keys.unacked_index, self.keys.delivery_count(tag), self.owned, *lists]
        args = [
            tag,
            payload,
            "R" if front else "L",
            "" if count is None else str(count),
            expected or "",
            "" if cutoff is None else repr(cutoff),
            str(self.settings.counter_ttl) if suspect else "",
        ]
        with redis_errors(self.where):
            moved: int = await self._move_back(keys=keys, args=args)
        return moved

    async def bury(self, tag: str, raw: bytes | str, queue: str, reason: str) -> bool:
        """Move an unreadable delivered message from unacked to the dead-letter list of ``queue``, with ``reason``."""
        # The tag and queue come from a message that may not be valid UTF-8 (read with surrogateescape): turn
        # them back into the very bytes Redis holds, as redis-py's strict encoding would refuse a lone surrogate.
        keys = [
            _raw(self.keys.unacked),
            _raw(self.keys.unacked_index),
            _raw(self.keys.delivery_count(tag)),
            _raw(self.keys.dead_letter(queue)),
            _raw(self.keys.dead_reasons(queue)),
        ]
        args: list[bytes | int] = [
            _raw(tag),
            _raw(raw),
            self.settings.dead_letter_ttl,
            reason.encode("utf-8", "backslashreplace"),
        ]
        with redis_errors(self.where):
            buried: int = await self._bury(keys=keys, args=args)
        return bool(buried)

    async def renew(self, tags: Sequence[str]) -> None:
        """Set the unacked_index score of each still-present tag to now (``ZADD XX``): not yet expired."""
        now = time.time()
        with redis_errors(self.where):
            for start in range(0, len(tags), 1000):
                await self.client.zadd(self.keys.unacked_index, dict.fromkeys(tags[start : start + 1000], now), xx=True)
            await self.client.pexpire(self.owned, int(self.settings.claim_ttl * 1000))

    # -- restore -----------------------------------------------------------------------------------------------

    async def owned_entries(self) -> list[tuple[str, int, str | None]]:
        """What this transport fetched and has not settled: ``(tag, delivery count, unacked value or None)``."""
        with redis_errors(self.where):
            owned = await self.client.hgetall(self.owned)
            if not owned:
                return []
            tags = list(owned)
            values = await self.client.hmget(self.keys.unacked, tags)
        return [
            (text(tag), int(owned[tag]), None if value is None else text(value))
            for tag, value in zip(tags, values, strict=True)
        ]

    async def forget_owned(self) -> None:
        """Delete this transport's owned hash (everything in it was re-queued or settled)."""
        with redis_errors(self.where):
            await self.client.delete(self.owned)

    async def expired(self, cutoff: float, limit: int | None) -> list[tuple[str, str | None]]:
        """Tags whose unacked_index score is <= ``cutoff`` (oldest first), with their unacked values."""
        with redis_errors(self.where):
            found = await self.client.zrangebyscore(
                self.keys.unacked_index, "-inf", repr(cutoff), start=0 if limit else None, num=limit
            )
            tags = [tag for tag in found if isinstance(tag, bytes | str)]
            if not tags:
                return []
            values = await self.client.hmget(self.keys.unacked, tags)
        return [(text(tag), None if value is None else text(value)) for tag, value in zip(tags, values, strict=True)]

    async def lock(self, token: str, renew: bool = False) -> bool:
        """Take the restore lock for ``mutex_expire`` seconds (``SET unacked_mutex NX PX``, as kombu), or with
        ``renew`` extend it by as much if it is still ours (`scripts.RENEW_MUTEX`)."""
        ttl = max(1, int(self.settings.mutex_expire * 1000))
        with redis_errors(self.where):
            if renew:
                taken = await self._renew_mutex(keys=[self.keys.unacked_mutex], args=[token, ttl])
            else:
                taken = await self.client.set(self.keys.unacked_mutex, token, nx=True, px=ttl)
        return bool(taken)

    async def unlock(self, token: str) -> None:
        """Release the restore lock if it is still ours."""
        with redis_errors(self.where):
            await self._release(keys=[self.keys.unacked_mutex], args=[token])


def _raw(value: bytes | str) -> bytes:
    """``value`` as the bytes it was read from (a str read leniently keeps undecodable bytes as surrogates)."""
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")

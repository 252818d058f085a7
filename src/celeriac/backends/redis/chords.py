"""Chord joins on Redis with Celery 5.7's keys, so Celery and celeriac workers finish each other's chords.

Keys (all ``<global_keyprefix>celery-taskset-meta-<group id>`` plus a suffix, celery-wire.md §6.6):

* ``.s`` the chord size (set by the client before the header is sent; ``.c`` is deleted then);
* ``.j`` the header outcomes ``[1, task id, state, result]``: a sorted set scored by ``group_index``
  (``result_chord_ordered``, Celery's default) or a list;
* ``.d`` the fence: ``"<task id>:<group_index>"`` of every outcome counted, so a redelivered header task, or
  a second run of it, never counts twice;
* ``.t`` header tasks added at run time (Celery's ``add_to_chord``), counted into the total;
* ``.c`` the dispatch claim: a token with a TTL while one worker sends the body, then ``"done"``.

One script records an outcome, counts, and takes the claim when the join is complete, atomically: of two
workers finishing the last header tasks at once, exactly one claims. The claim has a TTL, so a claimer that
dies before sending the body leaves it to the next caller (its own header task, redelivered with acks_late);
after the body is sent, the cleanup script (only under the same token) drops the join and writes ``done``,
kept as long as results are (at least Celery's 300 s), so a late duplicate finds the chord finished. Celery
5.7 workers run the same protocol on the same keys (their claim script and ours agree on every key's meaning).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from celeriac._redis.errors import redis_errors
from celeriac.errors import BackendError

GROUP_PREFIX = "celery-taskset-meta-"

# KEYS .j .t .s .d <group key> .c; ARGV task id, entry, ordered (1/0), index, TTL s (0: none), claim TTL s,
# claim token, size from the body ('' when unknown). Returns {status[, entries]}.
CHORD_PART = """
local j, t, s, d, g, c = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local ordered, ttl = ARGV[3] == '1', tonumber(ARGV[5])
if redis.call('GET', c) == 'done' then
    return {'done'}
end
local member = ARGV[1] .. ':' .. ARGV[4]
if redis.call('SISMEMBER', d, member) == 0 then
    if ordered then
        redis.call('ZADD', j, ARGV[4], ARGV[2])
    else
        redis.call('RPUSH', j, ARGV[2])
    end
    redis.call('SADD', d, member)
end
local size = redis.call('GET', s)
if not size and ARGV[8] ~= '' then
    size = ARGV[8]
    redis.call('SET', s, size)
end
if ttl > 0 then
    for _, key in ipairs({j, t, s, d}) do
        redis.call('EXPIRE', key, ttl)
    end
    if redis.call('EXISTS', g) == 1 then
        redis.call('EXPIRE', g, ttl)
    end
end
if not size then
    return {'waiting'}
end
local count
if ordered then
    count = redis.call('ZCOUNT', j, '-inf', '+inf')
else
    count = redis.call('LLEN', j)
end
if count < tonumber(size) + tonumber(redis.call('GET', t) or '0') then
    return {'waiting'}
end
if not redis.call('SET', c, ARGV[7], 'NX', 'EX', ARGV[6]) then
    return {'busy'}
end
if ordered then
    return {'claimed', redis.call('ZRANGE', j, 0, -1)}
end
return {'claimed', redis.call('LRANGE', j, 0, -1)}
"""

# KEYS .c .j .t .s .d; ARGV token, seconds to keep "done". 1 when the claim was still ours.
CHORD_DONE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('SET', KEYS[1], 'done', 'EX', ARGV[2])
return 1
"""

DONE_KEPT_MIN = 300  # seconds: Celery 5.7's minimum for the done marker


class RedisChords:
    """The chord join commands on one client (see the module docstring).

    Args:
        client: the backend's client.
        prefix: ``global_keyprefix``.
        where: the redacted URL, for errors.
        ordered: ``result_chord_ordered`` (sorted set, Celery's default) or a list.
    """

    def __init__(self, client: aioredis.Redis, prefix: str, where: str, ordered: bool = True) -> None:
        self._client = client
        self._prefix = prefix
        self._where = where
        self._ordered = ordered
        self._part = client.register_script(CHORD_PART)
        self._done = client.register_script(CHORD_DONE)

    def key(self, group_id: str, suffix: str = "") -> str:
        """The key of chord/group ``group_id`` with ``suffix`` (``.j``, ``.s`` ...; '' the saved group)."""
        return f"{self._prefix}{GROUP_PREFIX}{group_id}{suffix}"

    async def start(self, group_id: str, size: int, ttl: int) -> None:
        """Record the size; a reapplied chord (same group id) is a new run, so its claim is dropped."""
        with redis_errors(self._where, lost=BackendError, other=BackendError):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(self.key(group_id, ".c"))
                pipe.set(self.key(group_id, ".s"), size, ex=ttl or None)
                await pipe.execute()

    async def part(
        self, group_id: str, task_id: str, index: int, entry: bytes, size: int | None, ttl: int, claim: tuple[str, int]
    ) -> tuple[str, list[bytes]]:
        """Record one outcome; (status, entries in index order when claimed)."""
        keys = [self.key(group_id, s) for s in (".j", ".t", ".s", ".d", "", ".c")]
        token, claim_ttl = claim
        args: list[Any] = [task_id, entry, 1 if self._ordered else 0, index, ttl, claim_ttl, token, size or ""]
        with redis_errors(self._where, lost=BackendError, other=BackendError):
            reply = await self._part(keys, args)
        status = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        entries = [bytes(e) if not isinstance(e, str) else e.encode() for e in (reply[1] if len(reply) > 1 else [])]
        return status, entries

    async def done(self, group_id: str, token: str, ttl: int) -> bool:
        """Drop the join and mark it done, if ``token`` still holds the claim."""
        keys = [self.key(group_id, s) for s in (".c", ".j", ".t", ".s", ".d")]
        with redis_errors(self._where, lost=BackendError, other=BackendError):
            return bool(await self._done(keys, [token, max(DONE_KEPT_MIN, ttl)]))

    async def save_group(self, group_id: str, value: bytes, ttl: int) -> None:
        """``SET`` the saved group (Celery's key and shape)."""
        with redis_errors(self._where, lost=BackendError, other=BackendError):
            await self._client.set(self.key(group_id), value, ex=ttl or None)

    async def restore_group(self, group_id: str) -> bytes | None:
        """The saved group's bytes, or None."""
        with redis_errors(self._where, lost=BackendError, other=BackendError):
            value = await self._client.get(self.key(group_id))
        return None if value is None else value.encode() if isinstance(value, str) else bytes(value)

    async def forget_group(self, group_id: str) -> None:
        """Delete the saved group."""
        with redis_errors(self._where, lost=BackendError, other=BackendError):
            await self._client.delete(self.key(group_id))

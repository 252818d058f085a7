"""The Redis result store's join and lease: one Lua script each, so every step is atomic on the server.

The promises are `celeriac.backends.base`'s (`ResultBackend.join_add`, `ResultBackend.acquire_lease` and the
rest). Keys, all under ``global_keyprefix``, none of them a key Celery uses:

* ``celeriac-join-<group id>``: a hash, member index -> its encoded record. ``HSETNX`` keeps the first record
  of an index, and the add whose ``HSETNX`` made the hash complete (``HLEN`` = size) is the one that returns it.
  Its TTL is renewed by every add.
* ``celeriac-lease-<name>``: a hash {holder, token} with the lease's TTL (Redis's clock: ``PEXPIRE``), gone
  when the lease expires or is released.
* ``celeriac-lease-<name>.token``: the last token handed out (``INCR``, no TTL), so tokens are never reused.
* ``celeriac-lease-<name>.fenced``: a hash of what holders recorded (no TTL).
"""

from __future__ import annotations

import math

import redis.asyncio as aioredis

from celeriac._redis.errors import redis_errors
from celeriac.errors import BackendError

# KEYS[1] the join; ARGV index, record, size, TTL in seconds (0: none).
JOIN_ADD = """
local added = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
if tonumber(ARGV[4]) > 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[4])
end
if added == 1 and redis.call('HLEN', KEYS[1]) == tonumber(ARGV[3]) then
    return redis.call('HGETALL', KEYS[1])
end
return false
"""

# KEYS[1] the lease, KEYS[2] its token counter; ARGV holder, TTL in ms. The token, or nil while another holds it.
ACQUIRE = """
local holder = redis.call('HGET', KEYS[1], 'holder')
if holder then
    if holder ~= ARGV[1] then
        return false
    end
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(redis.call('HGET', KEYS[1], 'token'))
end
local token = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', token)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return token
"""

# KEYS[1] the lease; ARGV holder, token, TTL in ms (renew) or nothing (release). 1 when it was held so.
RENEW_OR_RELEASE = """
if redis.call('HGET', KEYS[1], 'holder') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then
    return 0
end
if ARGV[3] then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
    redis.call('DEL', KEYS[1])
end
return 1
"""

# KEYS[1] the lease, KEYS[2] its records; ARGV token, key, value. 1 when written.
RECORD_FENCED = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
    return 0
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
"""


def _ms(ttl: float) -> int:
    return max(1, math.ceil(ttl * 1000))


class RedisPrimitives:
    """Join and lease commands on one client (see the module docstring).

    Args:
        client: the backend's client.
        prefix: ``global_keyprefix``.
        where: the redacted URL, for errors.
    """

    def __init__(self, client: aioredis.Redis, prefix: str, where: str) -> None:
        self._client = client
        self._prefix = prefix
        self._where = where
        self._join = client.register_script(JOIN_ADD)
        self._acquire = client.register_script(ACQUIRE)
        self._renew_or_release = client.register_script(RENEW_OR_RELEASE)
        self._record = client.register_script(RECORD_FENCED)

    def _lease_key(self, name: str) -> str:
        return f"{self._prefix}celeriac-lease-{name}"

    async def join_add(self, group_id: str, index: int, record: bytes, size: int, ttl: int) -> list[bytes] | None:
        """Record member ``index``; every record ordered by index when this add completed the set, else None."""
        with redis_errors(self._where, lost=BackendError, other=BackendError):
            reply = await self._join([f"{self._prefix}celeriac-join-{group_id}"], [index, record, size, ttl])
        if not reply:
            return None
        pairs = sorted(zip(reply[::2], reply[1::2], strict=True), key=lambda pair: int(pair[0]))
        return [bytes(value) for _, value in pairs]

    async def acquire(self, name: str, holder: str, ttl: float) -> int | None:
        key = self._lease_key(name)
        with redis_errors(self._where, lost=BackendError, other=BackendError):
            token = await self._acquire([key, f"{key}.token"], [holder, _ms(ttl)])
        return None if token is None else int(token)

    async def renew(self, name: str, holder: str, token: int, ttl: float) -> bool:
        with redis_errors(self._where, lost=BackendError, other=BackendError):
            return bool(await self._renew_or_release([self._lease_key(name)], [holder, token, _ms(ttl)]))

    async def release(self, name: str, holder: str, token: int) -> bool:
        with redis_errors(self._where, lost=BackendError, other=BackendError):
            return bool(await self._renew_or_release([self._lease_key(name)], [holder, token]))

    async def record_fenced(self, name: str, token: int, key: str, value: bytes) -> bool:
        lease = self._lease_key(name)
        with redis_errors(self._where, lost=BackendError, other=BackendError):
            return bool(await self._record([lease, f"{lease}.fenced"], [token, key, value]))

    async def read_fenced(self, name: str, key: str) -> bytes | None:
        with redis_errors(self._where, lost=BackendError, other=BackendError):
            value = await self._client.hget(f"{self._lease_key(name)}.fenced", key)
        return None if value is None else value.encode() if isinstance(value, str) else bytes(value)

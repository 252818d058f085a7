"""An idle consumer's blocking wait with its fetch armed behind it: one connection, one round trip per wake-up.

A `Waiter` owns one connection outside the pool. `Waiter.claim_when_nonempty` sends, in one write::

    BLMOVE <list> <list> RIGHT RIGHT <block_timeout>     -- returns once <list> is non-empty (or times out)
    EVALSHA <fetch script> ... mode C                     -- the armed fetch

Redis reads no further command from a client blocked in BLMOVE, so the script runs the moment the list fills
(or the wait times out), and both replies come back together: the messages are already in ``unacked`` when the
consumer first hears of them. `scripts.FETCH` explains the claim that keeps several armed fetches within
the consumer's prefetch window.

Connection loss: a request whose connection broke is sent once more on a fresh connection, with the same
request id, so a retried armed fetch cannot claim twice (it finds the claim ``claimed <its own id>`` and
reports it: its first reply was lost, and those messages wait in ``unacked`` for the visibility timeout).
It is not retried when the waiting task was cancelled meanwhile (redis-py can swallow a cancel that arrives
while it connects). A cancelled request drops its connection, so its replies are never read by anyone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import redis.exceptions as redis_exc

from celeriac._redis.client import dedicated_connection
from celeriac._redis.compat import raise_if_cancelled
from celeriac._redis.errors import redis_errors
from celeriac.transports.redis.fetch import CLAIM, NOT_RUN, Outcome
from celeriac.transports.redis.ops import RedisOps


class Waiter:
    """One blocking connection of a consumer, for one list at a time. Not safe for concurrent requests."""

    def __init__(self, ops: RedisOps) -> None:
        self._ops = ops
        self._connection = dedicated_connection(ops.blocking)

    async def claim_when_nonempty(
        self, list_key: str, order: Sequence[tuple[str, str]], claim: str, generation: int, rid: str
    ) -> Outcome:
        """Block until ``list_key`` holds a message or ``block_timeout`` passes, then run the armed fetch.

        Returns what the armed fetch did (`NOT_RUN` if the server had lost the script: it is loaded again).

        Raises:
            ConnectionLost: the link broke twice.
            TransportError: another server error (a queue key that is not a list).
        """
        commands = [
            ("BLMOVE", list_key, list_key, "RIGHT", "RIGHT", self._ops.settings.block_timeout),
            self._ops.fetch_command(order, 0, CLAIM, claim, generation, rid),
        ]
        with redis_errors(self._ops.where):
            try:
                reply = await self._send(commands)
            except redis_exc.ConnectionError:
                raise_if_cancelled()
                reply = await self._send(commands)
        if reply is None:
            await self._ops.load_fetch()
            return NOT_RUN
        return self._ops.outcome(order, reply)

    async def _send(self, commands: Sequence[Sequence[Any]]) -> Any:
        connection = self._connection
        await connection.send_packed_command(connection.pack_commands(commands), check_health=False)
        # Both replies are always read, so the connection stays in step. A BLMOVE error (a key of the wrong
        # type) is the script's error too: the script checks every list before it takes anything.
        with contextlib.suppress(redis_exc.ResponseError):
            await connection.read_response()
        try:
            return await connection.read_response()
        except redis_exc.NoScriptError:
            return None

    async def close(self) -> None:
        """Drop the connection (a request still on it is abandoned: its replies are never read)."""
        with contextlib.suppress(Exception):
            await self._connection.disconnect(nowait=True)

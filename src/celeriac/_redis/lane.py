"""A Redis connection kept for one caller's commands, outside redis-py's connection pool.

Every command through a redis-py client takes a connection from the pool and gives it back: with redis-py 8 that
is an ``asyncio.Lock`` on each side, an event dispatch and metrics, ~20 us of CPU per command on the 2-core
benchmark VM (a py-spy profile of a busy worker put 6 % of its samples in ``ConnectionPool.release`` alone).
The hot paths send one command (or one pipeline) at a time anyway: a worker's fetches and ack batches, a
client's publishes, a worker's result stores. A `Lane` gives such a caller a connection of its own.

Same rules as the pool's clients (`celeriac._redis.client`): a command that finds its connection broken is sent once
more on a fresh one (not when the caller was cancelled meanwhile); a connection whose round trip did not end
cleanly (cancelled, timed out, broken) is dropped, so no half-read reply can reach the next command. A call
that comes while another is on the lane goes through the pool instead: a lane never makes callers queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions as redis_exc
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript

from celeriac._redis.client import dedicated_connection
from celeriac._redis.compat import raise_if_cancelled


class Lane:
    """One connection for commands sent one at a time (see the module docstring); ``close`` drops it."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._connection: AbstractConnection | None = None
        self._busy = False
        self.retries = 0  # calls sent a second time after a broken link: the first may have run, its reply lost

    async def execute(self, *args: Any) -> Any:
        """One command's reply. Raises redis-py's errors, as ``client.execute_command`` does."""
        replies = await self.pipeline([args])
        reply = replies[0]
        if isinstance(reply, redis_exc.ResponseError):
            raise reply
        return reply

    async def script(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run a registered script by its SHA, loading it first if the server lost it (restart, SCRIPT FLUSH)."""
        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except redis_exc.NoScriptError:
            await self.execute("SCRIPT", "LOAD", script.script)
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)

    async def pipeline(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send ``commands`` in one write; their replies in order, a command's error as its reply (not raised).

        Raises:
            redis.exceptions.ConnectionError, TimeoutError: the link broke (twice) or timed out.
        """
        if self._busy:  # another call is on the lane: this one takes a pooled connection
            async with self._client.pipeline(transaction=False) as pipe:
                for command in commands:
                    pipe.execute_command(*command)
                replies: list[Any] = await pipe.execute(raise_on_error=False)
                return replies
        self._busy = True
        try:
            try:
                return await self._round_trip(commands)
            except redis_exc.ConnectionError:
                raise_if_cancelled()
                self.retries += 1
                return await self._round_trip(commands)  # once more, on a fresh connection
        finally:
            self._busy = False

    async def _round_trip(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        connection = self._connection
        if connection is None:
            connection = self._connection = dedicated_connection(self._client)
        try:
            await connection.send_packed_command(connection.pack_commands(commands), check_health=False)
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(await connection.read_response())
                except redis_exc.ResponseError as exc:  # the reply was read whole: the link is still in step
                    replies.append(exc)
            return replies
        except BaseException:
            self._connection = None
            await connection.disconnect(nowait=True)
            raise

    async def close(self) -> None:
        """Drop the connection (the lane reconnects if used again)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.disconnect(nowait=True)

"""The translation of redis-py (and socket) errors into celeriac's, at the boundary of the Redis code."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis.exceptions as redis_exc

from celeriac.errors import ConnectionLost, TransportError

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    redis_exc.ConnectionError,
    redis_exc.TimeoutError,
    ConnectionError,
    OSError,
)
"""The errors that mean the link broke (or timed out)."""


@contextlib.contextmanager
def redis_errors(
    where: str, lost: type[Exception] = ConnectionLost, other: type[Exception] = TransportError
) -> Iterator[None]:
    """Turn redis-py (and socket) errors into celeriac's: a broken link into ``lost``, the rest into ``other``.

    ``where`` must already be redacted: it goes into the message.
    """
    try:
        yield
    except redis_exc.AuthenticationError as exc:
        raise other(f"redis at {where}: authentication failed: {exc}") from exc
    except CONNECTION_ERRORS as exc:
        raise lost(f"redis at {where}: {exc or type(exc).__name__}") from exc
    except redis_exc.RedisError as exc:
        raise other(f"redis at {where}: {exc}") from exc

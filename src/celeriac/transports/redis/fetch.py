"""The fetch script (`scripts.FETCH`) in Python terms: its command for a list order, and its reply as an `Outcome`.

A fetch (mode `FETCH`) is the consumer's own; an armed fetch (mode `CLAIM`) waits behind a blocking wait (`wait`).
No I/O here: `ops.RedisOps.fetch` and `wait.Waiter` send the command.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celeriac.transports.redis.options import RedisSettings


@dataclass(frozen=True, slots=True)
class Fetched:
    """One message the fetch script moved: from which queue and list, its envelope, its delivery count."""

    queue: str
    list_key: str
    raw: bytes  # the envelope as Redis returned it: decoded from these bytes, never re-encoded
    count: int
    suspect: bool = False  # restored after its consumer died: delivered alone (`scripts.FETCH`)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one run of the fetch script did (`scripts.FETCH`).

    Attributes:
        delivered: messages moved into unacked for this consumer.
        dead: messages moved to dead-letter lists instead.
        state: ``fetched`` or ``opened`` (a fetch), ``claimed``, ``open`` or ``stale`` (an armed fetch).
        detail: for ``claimed``, the id of the claim taken; for ``stale``, the claim key's value the armed fetch
            found (None: there was none).
    """

    delivered: list[Fetched]
    dead: list[Fetched]
    state: str
    detail: str | None = None


NOT_RUN = Outcome([], [], "open")
"""An armed fetch that did not run (the server had lost the script): as if it found nothing."""

FETCH = "F"
CLAIM = "C"


def text(value: bytes | str) -> str:
    """A reply's bytes as text (undecodable bytes kept as surrogates)."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def fetch_command(
    sha: str,
    settings: RedisSettings,
    owned: str,
    order: Sequence[tuple[str, str]],
    count: int,
    mode: str,
    claim: str,
    generation: int,
    rid: str = "",
    open_id: int = 0,
) -> list[Any]:
    """The EVALSHA command of the fetch script (SHA ``sha``) over the lists of ``order``, recording what it
    moves in the transport's hash ``owned``."""
    keys = settings.keys
    script_keys = [keys.unacked, keys.unacked_index, claim, owned]
    script_keys += [key for _, key in order]
    script_keys += [keys.dead_letter(queue) for queue, _ in order]
    args: list[Any] = [
        count,
        repr(time.time()),
        keys.delivery_count_prefix,
        settings.counter_ttl,
        settings.max_deliveries,
        settings.dead_letter_ttl,
        mode,
        generation,
        rid,
        int(settings.claim_ttl * 1000),
        open_id,
    ]
    return ["EVALSHA", sha, len(script_keys), *script_keys, *args]


def outcome(order: Sequence[tuple[str, str]], reply: Sequence[Any]) -> Outcome:
    """The `Outcome` of a fetch script reply for the lists of ``order``."""

    def unpack(flat: list[Any]) -> list[Fetched]:
        found = []
        for i in range(0, len(flat), 3):
            queue, key = order[int(flat[i]) - 1]
            raw = flat[i + 1]
            count = int(flat[i + 2])  # negative: a suspect
            found.append(Fetched(queue, key, raw if type(raw) is bytes else str(raw).encode(), abs(count), count < 0))
        return found

    delivered, dead, state, detail = reply
    return Outcome(unpack(delivered), unpack(dead), text(state), None if detail is None else text(detail))

"""Every Redis key and pub/sub channel name the Redis transport uses, built in one place; no I/O.

The names are kombu's (celery-wire.md §2), so celeriac and kombu processes share queues, bindings and the
unacked bookkeeping. Every name starts with ``prefix`` (kombu's ``global_keyprefix``, applied to lists,
binding sets, unacked keys *and* pub/sub channels, §2.4).

Names only celeriac writes (each has a TTL or is deleted by its owner):

==================================  ======  ==================================================================
``<p>celeriac.deliveries.<tag>``    string  times the message ``<tag>`` was moved into ``unacked``; TTL, and
                                            deleted on ack, drop or dead-lettering
``<p><queue>.dead``                 list    messages delivered more than ``max_deliveries`` times, or whose
                                            envelope cannot be read; TTL refreshed on every push
``<p>celeriac.claim.<consumer>``    string  an idle consumer's claim on its armed fetches (`scripts.FETCH`);
                                            TTL (renewed while armed), deleted when the consumer ends
``<p><queue>.dead.reasons``         hash    delivery tag -> why celeriac dead-lettered it (`scripts.BURY`)
``<p>celeriac.owned.<transport>``   hash    delivery tag -> delivery count of what a transport fetched and has
                                            not settled, written in the fetch's own step, so what a lost reply
                                            moved is known (`recover`); TTL renewed, deleted at close
==================================  ======  ==================================================================

Fanout channels (§2.4): a celeriac *channel* is ``"<exchange>"`` or ``"<exchange>/<routing key>"``; on Redis it
becomes ``<p>/<db>.<exchange>`` or ``<p>/<db>.<exchange>/<routing key>``, exactly what kombu publishes
and subscribes to (``fanout_prefix`` and ``fanout_patterns`` on).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

SEP = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)
# Redis glob characters: a channel containing one is subscribed with PSUBSCRIBE.
_GLOB = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class Binding:
    """One member of a ``_kombu.binding.<exchange>`` set: messages with a matching routing key go to ``queue``.

    ``pattern`` is the regular expression of a topic binding, empty for a direct (or fanout) one.
    """

    routing_key: str
    pattern: str
    queue: str


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """Key and channel names for one Redis database and key prefix.

    Attributes:
        prefix: ``global_keyprefix``, prepended to every name.
        db: the database number, part of fanout channel names.
        sep: kombu's separator between a queue name and its priority step, and inside binding members.
        priority_steps: the priority lists of a queue, ascending; step 0 is the bare queue name.
        fanout_prefix: True for kombu's ``/<db>.`` channel prefix, False for none, or the prefix itself.
        fanout_patterns: True to put the routing key in fanout channel names (kombu's default).
    """

    prefix: str = ""
    db: int = 0
    sep: str = SEP
    priority_steps: tuple[int, ...] = PRIORITY_STEPS
    fanout_prefix: bool | str = True
    fanout_patterns: bool = True
    unacked_key: str = "unacked"
    unacked_index_key: str = "unacked_index"
    unacked_mutex_key: str = "unacked_mutex"

    def __post_init__(self) -> None:
        steps = tuple(sorted(set(self.priority_steps)))
        if not steps:
            raise ValueError("priority_steps must not be empty")
        object.__setattr__(self, "priority_steps", steps)

    # -- queues ------------------------------------------------------------------------------------------------

    def step_for(self, priority: int) -> int:
        """The priority step a message of ``priority`` goes to: the highest step <= priority (kombu's rule)."""
        steps = self.priority_steps
        index = bisect.bisect_right(steps, priority) - 1
        return steps[max(index, 0)]

    def queue(self, queue: str, priority: int = 0) -> str:
        """The list holding the messages of ``queue`` whose priority falls in the step of ``priority``."""
        step = self.step_for(priority)
        if step == 0:  # kombu: the step-0 list is the bare queue name
            return self.prefix + queue
        return f"{self.prefix}{queue}{self.sep}{step}"

    def queue_lists(self, queue: str) -> list[str]:
        """Every priority list of ``queue``, highest-served (lowest step) first."""
        return [self.queue(queue, step) for step in self.priority_steps]

    def consume_order(self, queues: Sequence[str]) -> list[tuple[str, str]]:
        """``(queue, list key)`` pairs in the order kombu's BRPOP serves them: by step, then by queue."""
        return [(queue, self.queue(queue, step)) for step in self.priority_steps for queue in queues]

    def dead_letter(self, queue: str) -> str:
        """The dead-letter list of ``queue`` (a plain list kombu can consume as queue ``<queue>.dead``)."""
        return f"{self.prefix}{queue}.dead"

    def dead_reasons(self, queue: str) -> str:
        """The hash of why each message of ``queue``'s dead-letter list is there: delivery tag -> reason."""
        return f"{self.prefix}{queue}.dead.reasons"

    def delivery_count(self, delivery_tag: str) -> str:
        """The counter of how many times the message ``delivery_tag`` was delivered."""
        return f"{self.prefix}celeriac.deliveries.{delivery_tag}"

    def owned(self, transport: str) -> str:
        """The hash of the deliveries the transport ``transport`` (a unique id) fetched and has not settled."""
        return f"{self.prefix}celeriac.owned.{transport}"

    def claim(self, consumer: str) -> str:
        """The claim key of the consumer ``consumer`` (a unique id): which of its armed fetches may take messages."""
        return f"{self.prefix}celeriac.claim.{consumer}"

    @property
    def delivery_count_prefix(self) -> str:
        """`delivery_count` without the tag (the Lua scripts append it)."""
        return f"{self.prefix}celeriac.deliveries."

    # -- acknowledgement emulation (celery-wire.md §2.5) -------------------------------------------------------

    @property
    def unacked(self) -> str:
        """The hash ``delivery_tag -> [envelope, exchange, routing_key]`` of delivered, un-acked messages."""
        return self.prefix + self.unacked_key

    @property
    def unacked_index(self) -> str:
        """The sorted set ``delivery_tag -> time delivered (or last renewed)``."""
        return self.prefix + self.unacked_index_key

    @property
    def unacked_mutex(self) -> str:
        """The lock that lets one process at a time restore expired deliveries."""
        return self.prefix + self.unacked_mutex_key

    # -- bindings (celery-wire.md §2.3) ------------------------------------------------------------------------

    def binding(self, exchange: str) -> str:
        """The routing table of ``exchange``: a set of binding members."""
        return f"{self.prefix}_kombu.binding.{exchange}"

    def binding_permanent(self, exchange: str) -> str:
        """kombu 5.7's marker set that keeps the routing table of a durable queue from being swept."""
        return f"{self.prefix}_kombu.binding_permanent.{exchange}"

    def binding_member(self, binding: Binding) -> str:
        """The set member for ``binding``: routing key, pattern and queue joined by `sep`."""
        return self.sep.join((binding.routing_key, binding.pattern, binding.queue))

    def parse_binding(self, member: str) -> Binding | None:
        """The `Binding` a set member stands for, or None for a member that is not three fields."""
        parts = member.split(self.sep)
        if len(parts) != 3:
            return None
        return Binding(parts[0], parts[1], parts[2])

    # -- fanout (celery-wire.md §2.4) --------------------------------------------------------------------------

    @property
    def _fanout_prefix(self) -> str:
        if self.fanout_prefix is True:
            return f"{self.prefix}/{self.db}."
        if self.fanout_prefix is False:
            return self.prefix
        return self.prefix + self.fanout_prefix

    def fanout_channel(self, channel: str) -> str:
        """The Redis channel a celeriac ``channel`` (``exchange`` or ``exchange/routing_key``) is published on.

        With ``fanout_patterns`` off, kombu drops the routing key; so does this.
        """
        exchange, _, routing_key = channel.partition("/")
        if routing_key and self.fanout_patterns:
            return f"{self._fanout_prefix}{exchange}/{routing_key}"
        return self._fanout_prefix + exchange

    def fanout_subscription(self, channel: str) -> tuple[str, bool]:
        """The Redis channel or pattern to listen to for ``channel``, and whether it is a pattern.

        AMQP's ``#`` wildcard becomes Redis's ``*`` (as kombu does); a name with a glob character is a pattern.
        """
        name = self.fanout_channel(channel.replace("#", "*"))
        return name, any(c in _GLOB for c in name)

    def channel_name(self, redis_channel: str) -> str:
        """The celeriac channel name of a Redis channel built by `fanout_channel` (the inverse)."""
        prefix = self._fanout_prefix
        return redis_channel[len(prefix) :] if redis_channel.startswith(prefix) else redis_channel

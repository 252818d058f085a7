"""The embedded default broker: messages are rows of one SQLite file, leased to one consumer at a time.

Several worker and producer processes on one machine share the file (WAL mode). How the promises of
`celeriac.transports.base` are kept:

* ``publish`` inserts a row; concurrent publishes commit in one transaction (group commit) and each returns
  only after that commit. ``not_before`` keeps the row invisible until then (``has_delayed_delivery``).
* ``consume`` leases up to (prefetch - un-acked) ready rows in one write transaction (``lease_owner``,
  ``lease_until`` = now + visibility_timeout). The transport renews the leases of its un-acked deliveries
  at least every visibility_timeout/3, so only the leases of a dead process run out; such a row is ready
  again and is delivered with ``redelivered=True``.
* ``ack`` deletes the row; concurrent acks commit in one ``DELETE`` (group commit). ``reject(requeue=True)``
  clears the lease; ``reject()`` moves the row to ``dead_letters`` with its reason, and so does a lease past
  ``max_deliveries`` (<= 0: no limit) instead of delivering the row again.
* Order: queues in the order given, then **higher priority first** (AMQP's direction; Redis serves 0 first),
  then publish order.
* Routing: the default exchange ``""`` sends to the queue named by the routing key; a named exchange to the
  queues of its ``bindings`` rows with that routing key (``declare`` binds a queue to its own name's exchange),
  and nowhere when there are none (as kombu's direct exchanges).
* Waiting costs no CPU worth the name: ``PRAGMA data_version``, polled with a backoff from 1 ms up to
  ``polling_interval`` while someone waits, tells when another connection committed; a commit made through
  this transport wakes its own consumers at once.
* Broadcast: rows of ``broadcasts`` read by id > the last one seen (subscribed names with ``*``/``#`` match
  as GLOB patterns); rows older than ``broadcast_ttl`` go.
* ``close`` gives the leases of un-acked deliveries back at once (as AMQP does when a channel closes).

Each connection belongs to one thread (`SQLiteThread`); coroutines hand it functions to run. `SQLiteThread`,
`ChangeWatcher`, `GroupCommit` and the helpers above them are shared with the SQLite result backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import queue
import re
import socket
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Concatenate, Generic, NamedTuple, ParamSpec, TypeVar

from celeriac.errors import (
    CeleriacError,
    ConfigurationError,
    ConnectionLost,
    DecodeError,
    TransportClosed,
    TransportError,
)
from celeriac.protocol.message import Message
from celeriac.protocol.serializers import json_dumps, json_loads
from celeriac.transports.base import Consumer, Delivery, Subscription, Transport, TransportOptions

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
Row = tuple[Any, ...]

DEFAULT_PATH = "celeriac.db"
MIN_POLL = 0.001  # first pause of an idle poll
# Each idle poll waits 25% longer than the last, up to the polling interval: reaching 50 ms takes ~200 ms of
# quiet (~17 polls), so intermittent traffic keeps ~1-6 ms latency (doubling gave 14 ms after a 20 ms gap).
POLL_GROWTH = 1.25
IDLE_RECHECK = 1.0  # an idle waiter looks again at least this often, even if nothing announced a change
DEAD_LETTER_TTL = 7 * 86400.0  # dead letters are kept a week by default, for someone to look at
MAINTENANCE_EVERY = 10.0  # pruning period (and the longest gap between two lease renewals)
_GLOB = frozenset("*?[")  # a subscribed channel name with one of these is a GLOB pattern


# -- helpers shared with the SQLite result backend ---------------------------------------------------------


def load_queries(package: str, name: str) -> dict[str, str]:
    """The named SQL blocks of a ``.sql`` resource: each starts at a ``-- name: <key>`` line."""
    text = resources.files(package).joinpath(name).read_text(encoding="utf-8")
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        header = re.fullmatch(r"--\s*name:\s*(\w+)\s*", line)
        if header:
            current = blocks.setdefault(header.group(1), [])
        elif current is not None:
            current.append(line)
    return {key: "\n".join(lines).strip() for key, lines in blocks.items()}


def database_path(url: str) -> str:
    """The absolute file path a ``sqlite://`` URL names.

    ``sqlite:///rel/x.db`` is relative to the current directory (resolved now, so a later chdir does not
    move the database), ``sqlite:////abs/x.db`` absolute, bare ``sqlite://`` is ``./celeriac.db``.

    Raises:
        ConfigurationError: not a sqlite URL, a host part, or an in-memory database (which other connections
            and processes could not share).
    """
    scheme, sep, rest = url.partition("://")
    if scheme.lower() != "sqlite" or not sep:
        raise ConfigurationError(f"not a sqlite URL: {url!r}")
    rest = rest.split("?", 1)[0]
    if not rest:
        return os.path.abspath(DEFAULT_PATH)
    if not rest.startswith("/"):
        raise ConfigurationError(
            f"sqlite URL {url!r} has a host part; use sqlite:///relative.db or sqlite:////absolute.db"
        )
    path = rest[1:]
    if path in ("", ":memory:"):
        raise ConfigurationError(f"sqlite URL {url!r} names no file; an in-memory database cannot be shared")
    return os.path.abspath(path)


def configure_connection(conn: sqlite3.Connection) -> None:
    """WAL (readers never block the writer, several processes share the file) and synchronous=NORMAL
    (durable at each checkpoint, a commit costs no fsync)."""
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise sqlite3.OperationalError(f"cannot switch the database to WAL mode (journal_mode is {mode!r})")
    conn.execute("PRAGMA synchronous=NORMAL")


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: BEGIN IMMEDIATE takes the write lock up front, so a busy database makes us
    wait (busy_timeout) at the start instead of failing at the first write; rolls back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def read_data_version(conn: sqlite3.Connection) -> int:
    """The connection's ``PRAGMA data_version``: it changes when another connection commits."""
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def option_number(extra: dict[str, Any], key: str, default: float) -> float:
    """A numeric ``*_transport_options`` entry. Raises ConfigurationError naming the key if it is not."""
    value = extra.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"transport option {key!r} must be a number, not {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class ErrorMap:
    """Which celeriac errors stand for sqlite3's at one boundary (the broker's or the result store's).

    Attributes:
        where: what the errors name, e.g. ``sqlite broker /srv/celeriac.db``.
        lost: raised for operational trouble (locked past the busy timeout, I/O error, cannot open).
        failed: raised for anything else sqlite3 reports.
        closed: raised when the connection is used after it was closed.
    """

    where: str
    lost: type[CeleriacError]
    failed: type[CeleriacError]
    closed: type[CeleriacError]
    busy_timeout: float

    def translate(self, exc: sqlite3.Error) -> CeleriacError:
        """The celeriac error for ``exc``, with a message that says what to do about a locked database."""
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError):
            if "locked" in text or "busy" in text:
                text = f"database stayed locked for more than {self.busy_timeout:g} s ({text})"
            return self.lost(f"{self.where}: {text}")
        return self.failed(f"{self.where}: {text}")

    def closed_error(self) -> CeleriacError:
        return self.closed(f"{self.where} is closed")


# -- one connection, one thread ----------------------------------------------------------------------------


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the awaiting coroutine was cancelled; nobody wants the outcome
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class SQLiteThread:
    """One sqlite3 connection and the one thread that uses it.

    sqlite3 calls block, so they run on this thread, never on the event loop; one thread per connection keeps
    the connection's use serial without locks. Jobs run in submission order. sqlite3 errors leave as the
    errors of ``errors`` (nothing above this class sees a sqlite3 exception).
    """

    def __init__(self, path: str, name: str, errors: ErrorMap) -> None:
        self.path = path
        self.errors = errors
        self._name = name
        self._jobs: queue.SimpleQueue[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]] | None]
        self._jobs = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False

    async def start(self, setup: Callable[[sqlite3.Connection], None]) -> None:
        """Open the connection on a new thread and run ``setup`` on it. Raises ``errors.lost`` on failure."""
        if self._stopped:
            raise self.errors.closed_error()
        self._loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._main, args=(opened, setup), name=self._name, daemon=True)
        self._thread.start()
        await opened

    async def run(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``fn(connection, *args, **kwargs)`` on the thread; waits for it without blocking the loop.

        A cancelled caller does not stop ``fn``: it runs to its end (or rollback) and the outcome is dropped.
        """
        return await self.submit(fn, *args, **kwargs)

    def submit(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> asyncio.Future[T]:
        """Queue ``fn(connection, *args, **kwargs)`` now (jobs run in the order queued); the future gets its
        outcome. Raises ``errors.closed`` after `stop`."""
        if self._stopped or self._loop is None:
            raise self.errors.closed_error()
        future: asyncio.Future[T] = self._loop.create_future()
        self._jobs.put((lambda conn: fn(conn, *args, **kwargs), future))
        return future

    async def stop(self) -> None:
        """Run the jobs already submitted, close the connection, end the thread. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread is None or self._loop is None:
            return
        barrier: asyncio.Future[None] = self._loop.create_future()
        self._jobs.put((lambda conn: None, barrier))
        self._jobs.put(None)
        with contextlib.suppress(Exception):
            await asyncio.shield(barrier)
        self._thread.join()  # only conn.close() is left to do there

    def _main(self, opened: asyncio.Future[None], setup: Callable[[sqlite3.Connection], None]) -> None:
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.errors.busy_timeout, isolation_level=None, cached_statements=64
            )
            setup(conn)
        except sqlite3.Error as exc:
            self._reply(opened, None, self._translated(exc))
            return
        except BaseException as exc:  # report anything, or start() would wait forever
            self._reply(opened, None, exc)
            return
        self._reply(opened, None, None)
        try:
            while (job := self._jobs.get()) is not None:
                fn, future = job
                try:
                    result, error = fn(conn), None
                except sqlite3.Error as exc:
                    result, error = None, self._translated(exc)
                except BaseException as exc:
                    result, error = None, exc
                self._reply(future, result, error)
        finally:
            conn.close()

    def _translated(self, exc: sqlite3.Error) -> BaseException:
        error = self.errors.translate(exc)
        error.__cause__ = exc
        return error

    def _reply(self, future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self._loop.call_soon_threadsafe(_settle, future, result, error)


class ChangeWatcher:
    """Wakes waiters when the database may have changed.

    Another connection's commit shows as a new ``PRAGMA data_version``; it is polled only while someone waits,
    every 1 ms at first, each pause 25% longer while nothing changes, up to ``max_interval``. A commit on this
    very connection does not change the version, so local writers call `notify`, which sets every listening
    event (listening is permanent, so a notify that comes while the listener is busy reading is not lost).
    """

    def __init__(self, thread: SQLiteThread, max_interval: float) -> None:
        self._thread = thread
        self._max_interval = max(max_interval, MIN_POLL)
        self._listeners: set[asyncio.Event] = set()
        self._waiters: dict[asyncio.Event, int] = {}
        self._poller: asyncio.Task[None] | None = None

    def listen(self, event: asyncio.Event) -> None:
        """Have `notify` set ``event`` from now on."""
        self._listeners.add(event)

    def unlisten(self, event: asyncio.Event) -> None:
        self._listeners.discard(event)

    def notify(self) -> None:
        """Wake every listener: this connection just committed something they may want."""
        for event in self._listeners:
            event.set()

    async def wait(self, event: asyncio.Event, baseline: int, timeout: float | None) -> None:
        """Wait until ``event`` is set (by `notify`, by a data_version other than ``baseline``, or by the
        caller's own wakers), or ``timeout`` seconds pass. ``baseline`` is the version read before the
        caller last looked at the data, so a change made since then wakes it at once."""
        if event.is_set():
            return
        self._waiters[event] = baseline
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll())
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            pass
        finally:
            self._waiters.pop(event, None)

    async def close(self) -> None:
        """Stop polling and wake every listener and waiter."""
        self.notify()
        for event in self._waiters:
            event.set()
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    async def _poll(self) -> None:
        interval, last = MIN_POLL, None
        try:
            while self._waiters:
                version = await self._thread.run(read_data_version)
                for event, baseline in self._waiters.items():
                    if baseline != version:
                        event.set()
                interval = MIN_POLL if version != last else min(interval * POLL_GROWTH, self._max_interval)
                last = version
                await asyncio.sleep(interval)
        except CeleriacError:
            for event in self._waiters:  # their own next call meets the error and reports it
                event.set()
        finally:
            self._poller = None


class GroupCommit(Generic[T]):
    """Writes items submitted by concurrent coroutines together: one transaction per batch (group commit).

    `submit` returns once the transaction holding its item has committed. An item submitted while no batch
    is being written is queued on the thread at once; items submitted meanwhile gather and are written as the
    next batch when the current one ends, so batches grow with the load and no item waits for a timer.
    Each submitter waits on its own future, completed in one pass when its batch ends (no task, no shield:
    a cancelled submitter just stops waiting, and its item is written all the same).
    """

    def __init__(self, thread: SQLiteThread, write: Callable[[sqlite3.Connection, list[T]], None]) -> None:
        self._thread = thread
        self._write = write
        self._pending: list[tuple[T, asyncio.Future[None]]] = []
        self._writing: asyncio.Future[None] | None = None

    async def submit(self, item: T) -> None:
        """Write ``item`` and wait for its commit. Raises what the write raised, for the whole batch."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writing is None:
            self._write_pending()
        await future

    async def drain(self) -> None:
        """Wait until everything submitted so far is written (or has failed)."""
        while self._writing is not None:
            await asyncio.wait({self._writing})

    def _write_pending(self) -> None:
        batch, self._pending = self._pending, []
        try:
            self._writing = self._thread.submit(self._write, [item for item, _ in batch])
        except CeleriacError as exc:
            self._settle(batch, exc)
            return
        self._writing.add_done_callback(functools.partial(self._written, batch))

    def _written(self, batch: list[tuple[T, asyncio.Future[None]]], job: asyncio.Future[None]) -> None:
        self._writing = None
        self._settle(batch, None if job.cancelled() else job.exception())
        if self._pending:
            self._write_pending()

    @staticmethod
    def _settle(batch: list[tuple[T, asyncio.Future[None]]], error: BaseException | None) -> None:
        for _, future in batch:
            _settle(future, None, error)


# -- what runs on the broker's thread ----------------------------------------------------------------------

SQL = load_queries(__package__ or "celeriac.transports", "sqlite.sql")


class LeasedRow(NamedTuple):
    """A row as the ``lease`` query returns it."""

    id: int
    queue: str
    priority: int
    body: bytes
    content_type: str
    content_encoding: str
    headers: str
    properties: str
    exchange: str
    routing_key: str
    deliveries: int


@dataclass(frozen=True, slots=True)
class _Leased:
    rows: list[LeasedRow]  # in delivery order
    dead: list[LeasedRow]  # moved to dead_letters instead: past max_deliveries
    version: int  # data_version read before looking
    next_hold_end: float | None  # when a lease or delay ends next: worth looking again then


def _setup(conn: sqlite3.Connection) -> None:
    configure_connection(conn)
    conn.executescript(SQL["schema"])


def _next_hold_end(conn: sqlite3.Connection) -> float | None:
    value = conn.execute(SQL["next_hold_end"]).fetchone()[0]
    return float(value) if value is not None else None


def _lease(
    conn: sqlite3.Connection,
    queues: tuple[str, ...],
    limit: int,
    owner: str,
    visibility_timeout: float,
    max_deliveries: int,
) -> _Leased:
    version = read_data_version(conn)
    hold_end = _next_hold_end(conn)
    holds_ended = hold_end is not None and hold_end <= time.time()
    # Reads first: an idle consumer woken by some unrelated commit must not take the write lock.
    if not holds_ended and not any(conn.execute(SQL["has_ready"], (q,)).fetchone()[0] for q in queues):
        return _Leased([], [], version, hold_end)
    rows: list[LeasedRow] = []
    dead: list[LeasedRow] = []
    with write_transaction(conn):
        now = time.time()
        if holds_ended:
            conn.execute(SQL["end_holds"], {"now": now})
        for name in queues:
            wanted = limit - len(rows)
            if wanted <= 0:
                break
            params = {"owner": owner, "until": now + visibility_timeout, "queue": name, "limit": wanted}
            batch = [LeasedRow._make(row) for row in conn.execute(SQL["lease"], params)]
            batch.sort(key=lambda row: (-row.priority, row.id))
            rows.extend(batch)
        if max_deliveries > 0:
            dead = [row for row in rows if row.deliveries > max_deliveries]
        if dead:
            ids = json.dumps([row.id for row in dead])
            reason = f"delivered more than max_deliveries={max_deliveries} times"
            conn.execute(SQL["dead_letter"], {"owner": owner, "ids": ids, "reason": reason, "now": now})
            conn.execute(SQL["ack"], {"owner": owner, "ids": ids})
            rows = [row for row in rows if row.deliveries <= max_deliveries]
    return _Leased(rows, dead, version, _next_hold_end(conn))


def _ack_batch(conn: sqlite3.Connection, acks: list[tuple[str, int]]) -> None:
    by_owner: dict[str, list[int]] = {}
    for owner, row_id in acks:
        by_owner.setdefault(owner, []).append(row_id)
    with write_transaction(conn):
        for owner, ids in by_owner.items():
            conn.execute(SQL["ack"], {"owner": owner, "ids": json.dumps(ids)})


def _dead_letter(conn: sqlite3.Connection, owner: str, row_id: int, reason: str) -> None:
    params = {"owner": owner, "ids": json.dumps([row_id]), "reason": reason, "now": time.time()}
    with write_transaction(conn):
        conn.execute(SQL["dead_letter"], params)
        conn.execute(SQL["ack"], params)


def _release(conn: sqlite3.Connection, releases: list[tuple[str, list[int], list[int]]]) -> None:
    """Give leases back: (owner, handed-out ids to requeue, never-handed-out ids to unlease)."""
    with write_transaction(conn):
        for owner, handed_out, unseen in releases:
            conn.execute(SQL["requeue"], {"owner": owner, "ids": json.dumps(handed_out)})
            conn.execute(SQL["unlease"], {"owner": owner, "ids": json.dumps(unseen)})


def _renew(conn: sqlite3.Connection, leases: list[tuple[str, list[int]]], until: float) -> None:
    with write_transaction(conn):
        for owner, ids in leases:
            conn.execute(SQL["renew"], {"owner": owner, "ids": json.dumps(ids), "until": until})


def _insert(conn: sqlite3.Connection, sql: str, rows: list[Row]) -> None:
    with write_transaction(conn):
        conn.executemany(sql, rows)


def _publish_batch(conn: sqlite3.Connection, rows: list[Row]) -> None:
    _insert(conn, SQL["publish"], rows)


def _fanout_batch(conn: sqlite3.Connection, rows: list[Row]) -> None:
    _insert(conn, SQL["fanout"], rows)


def _read_broadcasts(
    conn: sqlite3.Connection, channels: str, patterns: str, after: int, limit: int
) -> tuple[list[Row], int]:
    version = read_data_version(conn)
    params = {"channels": channels, "patterns": patterns, "after": after, "limit": limit}
    return conn.execute(SQL["read_broadcasts"], params).fetchall(), version


def _bind(conn: sqlite3.Connection, exchange: str, routing_key: str, queue: str) -> None:
    with write_transaction(conn):
        conn.execute(SQL["bind"], {"exchange": exchange, "routing_key": routing_key, "queue": queue})


def _route(conn: sqlite3.Connection, exchange: str, routing_key: str) -> list[str]:
    rows = conn.execute(SQL["route"], {"exchange": exchange, "routing_key": routing_key}).fetchall()
    return [str(row[0]) for row in rows]


def _delete_queue(conn: sqlite3.Connection, queue: str) -> None:
    with write_transaction(conn):
        conn.execute(SQL["unbind_queue"], {"queue": queue})
        conn.execute(SQL["delete_queue"], {"queue": queue})


def _scalar(conn: sqlite3.Connection, sql: str, params: dict[str, Any]) -> int:
    return int(conn.execute(sql, params).fetchone()[0])


def _purge(conn: sqlite3.Connection, name: str) -> int:
    with write_transaction(conn):
        ready = conn.execute(SQL["purge_ready"], {"queue": name}).rowcount
        delayed = conn.execute(SQL["purge_delayed"], {"queue": name}).rowcount
    return ready + delayed


def _prune(conn: sqlite3.Connection, broadcasts_before: float, dead_before: float | None) -> None:
    with write_transaction(conn):
        conn.execute(SQL["prune_broadcasts"], {"before": broadcasts_before})
        if dead_before is not None:
            conn.execute(SQL["prune_dead_letters"], {"before": dead_before})


def _json_object(text: str) -> Any:
    # kombu JSON's object_hook makes json.loads build a new decoder per call: 8.5 us against 4.5 us for a
    # protocol-2 task's headers (timeit, this 2-core box), paid twice per delivery. Text without a type
    # marker reads the same either way.
    return json_loads(text) if "__type__" in text else json.loads(text)


def _message(body: bytes, content_type: str, content_encoding: str, headers: str, properties: str) -> Message:
    return Message(
        body=body,
        content_type=content_type,
        content_encoding=content_encoding,
        headers=_json_object(headers),
        properties=_json_object(properties),
    )


# -- the transport -----------------------------------------------------------------------------------------


class SQLiteDelivery(Delivery):
    """One leased row. ``delivery_tag`` is the row id (ids are never reused)."""

    def __init__(self, consumer: SQLiteConsumer, message: Message, row: LeasedRow) -> None:
        self.message = message
        self.queue, self.exchange, self.routing_key = row.queue, row.exchange, row.routing_key
        self.redelivered = row.deliveries > 1
        self.delivery_tag = str(row.id)
        self.row_id = row.id
        self._consumer = consumer
        self._settled = False

    async def ack(self) -> None:
        """Delete the row (batched with concurrent acks); returns after the commit."""
        if not self._settled:
            self._settled = True
            await self._consumer._ack(self)

    async def reject(self, requeue: bool = False) -> None:
        """Clear the lease (``requeue``: deliverable now), else move the row to ``dead_letters``."""
        if not self._settled:
            self._settled = True
            await self._consumer._reject(self, requeue)


class SQLiteConsumer(Consumer):
    """Leases rows of its queues for one owner id and hands them out, at most ``prefetch`` un-acked."""

    def __init__(self, transport: SQLiteTransport, queues: Sequence[str], prefetch: int) -> None:
        self.owner = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:12]}"
        self._transport = transport
        self._queues = tuple(dict.fromkeys(queues))
        self._prefetch = prefetch
        self._unseen: deque[SQLiteDelivery] = deque()  # leased, not handed out yet
        self._unacked: dict[int, SQLiteDelivery] = {}  # leased and not settled (includes _unseen)
        self._wake = asyncio.Event()
        self._cancelled = False
        self._fetching: asyncio.Task[None] | None = None
        self._version = -1
        self._next_hold_end: float | None = None
        transport.watcher.listen(self._wake)

    @property
    def queues(self) -> tuple[str, ...]:
        return self._queues

    @property
    def held_ids(self) -> list[int]:
        """Row ids whose leases this consumer holds (renewed while the transport lives)."""
        return list(self._unacked)

    def set_prefetch(self, prefetch: int) -> None:
        self._prefetch = prefetch
        self._wake.set()

    async def add_queue(self, queue: str) -> None:
        await self._transport.declare(queue)
        if queue not in self._queues:
            self._queues = (*self._queues, queue)
            self._wake.set()

    async def remove_queue(self, queue: str) -> None:
        self._queues = tuple(q for q in self._queues if q != queue)

    async def __anext__(self) -> SQLiteDelivery:
        while True:
            self._wake.clear()  # before looking: whatever happens from here on wakes the wait below
            if self._unseen:
                return self._unseen.popleft()
            if self._cancelled:
                raise StopAsyncIteration
            room = self._room()
            if room <= 0:
                await self._wake.wait()  # an ack, a reject, set_prefetch or cancel
                continue
            if self._fetching is None:
                self._fetching = asyncio.create_task(self._fetch(room))
            # shield: if this __anext__ is cancelled, the fetch still files its rows for the next call.
            await asyncio.shield(self._fetching)
            if not self._unseen and not self._cancelled:
                await self._transport.watcher.wait(self._wake, self._version, self._idle_timeout())

    async def cancel(self) -> None:
        """Stop fetching and give back the leases of rows not handed out yet (they stay undelivered)."""
        if self._cancelled:
            return
        self._cancelled = True
        self._wake.set()
        if self._fetching is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._fetching)
        unseen = [d.row_id for d in self._unseen]
        self._forget(*self._unseen)
        self._unseen.clear()
        if unseen and self._transport.is_open:
            await self._transport.release([(self.owner, [], unseen)])

    def shutdown(self) -> tuple[str, list[int], list[int]]:
        """End iteration now; the release the transport's close must do: (owner, handed out, unseen)."""
        self._cancelled = True
        self._wake.set()
        self._transport.watcher.unlisten(self._wake)
        unseen = [d.row_id for d in self._unseen]
        handed_out = [row_id for row_id in self._unacked.keys() - set(unseen)]
        self._unseen.clear()
        self._unacked.clear()
        return self.owner, handed_out, unseen

    async def wait_fetched(self) -> None:
        """Wait for a fetch in flight to file its rows."""
        if self._fetching is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._fetching)

    def _room(self) -> int:
        """How many rows to lease now; 0 means wait for acks first."""
        batch = self._transport.lease_batch
        if self._prefetch <= 0:
            return batch
        room = min(self._prefetch - len(self._unacked), batch)
        # With 3/4 of the window still in hand the application is busy: wait for a quarter of it to free up
        # rather than leasing a few rows per transaction (no-op worker, prefetch 256: 33 -> 64 rows a lease).
        if self._unacked and room < min(self._prefetch, batch) // 4:
            return 0
        return room

    def _idle_timeout(self) -> float:
        if self._next_hold_end is None:
            return IDLE_RECHECK
        return min(max(self._next_hold_end - time.time(), 0.0) + MIN_POLL, IDLE_RECHECK)

    async def _fetch(self, room: int) -> None:
        try:
            await self._lease(room)
        finally:
            self._fetching = None

    async def _lease(self, room: int) -> None:
        transport = self._transport
        options = transport.options
        leased = await transport.thread.run(
            _lease, self._queues, room, self.owner, options.visibility_timeout, options.max_deliveries
        )
        self._version, self._next_hold_end = leased.version, leased.next_hold_end
        for row in leased.dead:
            log.warning(
                "message %d of queue %r dead-lettered: delivered %d times (max_deliveries=%d)",
                row.id, row.queue, row.deliveries, options.max_deliveries,
            )  # fmt: skip
        for row in leased.rows:
            try:
                message = _message(
                    row.body, row.content_type, row.content_encoding, row.headers, row.properties
                )
            except DecodeError as exc:  # cannot happen to rows we wrote; keep it, but out of the way
                log.error("message %d of queue %r is corrupt, dead-lettered: %s", row.id, row.queue, exc)
                await transport.thread.run(_dead_letter, self.owner, row.id, f"corrupt row: {exc}")
                continue
            delivery = SQLiteDelivery(self, message, row)
            self._unacked[row.id] = delivery
            self._unseen.append(delivery)
        if self._cancelled and self._unseen and transport.is_open:
            # cancel() ran while this fetch was in flight: these rows were never handed out.
            unseen = [d.row_id for d in self._unseen]
            self._forget(*self._unseen)
            self._unseen.clear()
            await transport.release([(self.owner, [], unseen)])

    async def _ack(self, delivery: SQLiteDelivery) -> None:
        try:
            await self._transport.ack(self.owner, delivery.row_id)
        finally:
            self._forget(delivery)

    async def _reject(self, delivery: SQLiteDelivery, requeue: bool) -> None:
        try:
            if requeue:
                await self._transport.release([(self.owner, [delivery.row_id], [])])
            else:
                await self._transport.dead_letter(self.owner, delivery.row_id, "rejected")
        finally:
            self._forget(delivery)

    def _forget(self, *deliveries: SQLiteDelivery) -> None:
        for delivery in deliveries:
            self._unacked.pop(delivery.row_id, None)
        self._wake.set()  # the prefetch window has room again
        if self._cancelled and not self._unacked:
            self._transport.watcher.unlisten(self._wake)
            self._transport.forget_consumer(self)


class SQLiteSubscription(Subscription):
    """Reads the broadcast rows of its channels with id > the last one it has seen."""

    def __init__(self, transport: SQLiteTransport, channels: Sequence[str], after: int) -> None:
        self._transport = transport
        names = [channel.replace("#", "*") for channel in dict.fromkeys(channels)]
        self._channels = json.dumps([name for name in names if not _GLOB.intersection(name)])
        self._patterns = json.dumps([name for name in names if _GLOB.intersection(name)])
        self._after = after
        self._buffer: deque[tuple[str, Message]] = deque()
        self._wake = asyncio.Event()
        self._closed = False
        transport.watcher.listen(self._wake)

    async def __anext__(self) -> tuple[str, Message]:
        while True:
            self._wake.clear()
            if self._buffer:
                return self._buffer.popleft()
            if self._closed:
                raise StopAsyncIteration
            rows, version = await self._transport.thread.run(
                _read_broadcasts, self._channels, self._patterns, self._after, 256
            )
            for row in rows:
                self._after = row[0]
                try:
                    self._buffer.append((row[1], _message(row[2], row[3], row[4], row[5], row[6])))
                except DecodeError as exc:
                    log.error("broadcast %d on %r is corrupt, skipped: %s", row[0], row[1], exc)
            if not rows:
                await self._transport.watcher.wait(self._wake, version, IDLE_RECHECK)

    async def close(self) -> None:
        self.end()
        self._transport.forget_subscription(self)

    def end(self) -> None:
        """End iteration (a pending ``__anext__`` returns StopAsyncIteration)."""
        self._closed = True
        self._wake.set()
        self._transport.watcher.unlisten(self._wake)


class SQLiteTransport(Transport):
    """The embedded broker on the SQLite file a ``sqlite://`` URL names (see the module docstring).

    ``options.extra`` keys: ``busy_timeout`` (s a write waits for the lock, default 5), ``lease_batch``
    (most rows leased per transaction, default 256), ``broadcast_ttl`` (s broadcasts are kept, default 60),
    ``dead_letter_ttl`` (s dead letters are kept, default 7 days; None keeps them).
    """

    has_broadcast = True
    has_delayed_delivery = True

    def __init__(self, url: str, options: TransportOptions) -> None:
        self.url = url
        self.options = options
        self.path = database_path(url)
        extra = options.extra
        busy_timeout = option_number(extra, "busy_timeout", 5.0)
        self.lease_batch = max(1, int(option_number(extra, "lease_batch", 256)))
        self._broadcast_ttl = option_number(extra, "broadcast_ttl", 60.0)
        keep_dead_forever = "dead_letter_ttl" in extra and extra["dead_letter_ttl"] is None
        dead_ttl = option_number(extra, "dead_letter_ttl", DEAD_LETTER_TTL) if not keep_dead_forever else None
        self._dead_letter_ttl = dead_ttl
        where = f"sqlite broker {self.path}"
        errors = ErrorMap(where, ConnectionLost, TransportError, TransportClosed, busy_timeout)
        self.thread = SQLiteThread(self.path, "celeriac-sqlite-broker", errors)
        self.watcher = ChangeWatcher(self.thread, options.polling_interval)
        self._publisher = GroupCommit(self.thread, _publish_batch)
        self._acker = GroupCommit(self.thread, _ack_batch)
        self._broadcaster = GroupCommit(self.thread, _fanout_batch)
        self._consumers: set[SQLiteConsumer] = set()
        self._subscriptions: set[SQLiteSubscription] = set()
        self._maintenance: asyncio.Task[None] | None = None
        self._opened = False
        self._closed = False

    @property
    def is_open(self) -> bool:
        return self._opened and not self._closed

    async def connect(self) -> None:
        """Open (and if needed create) the database file. Raises `ConnectionLost` when that fails."""
        if self._closed:
            raise TransportClosed(f"{self.url} is closed")
        if self._opened:
            return
        await self.thread.start(_setup)
        self._opened = True
        self._maintenance = asyncio.create_task(self._maintain())

    async def close(self) -> None:
        """End consumers and subscriptions, give un-acked leases back, close the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for subscription in list(self._subscriptions):
            subscription.end()
        self._subscriptions.clear()
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        try:
            if self._opened:
                for consumer in list(self._consumers):
                    await consumer.wait_fetched()
                for batcher in (self._publisher, self._acker, self._broadcaster):
                    await batcher.drain()
                releases = [consumer.shutdown() for consumer in self._consumers]
                if releases:
                    await self.thread.run(_release, releases)
        except CeleriacError as exc:
            log.warning(
                "%s: leases not given back on close (they come back when they expire): %s", self.url, exc
            )
        finally:
            self._consumers.clear()
            await self.watcher.close()
            await self.thread.stop()

    async def declare(self, queue: str) -> None:
        """Bind ``queue`` to the exchange of its own name (a queue itself is just the set of rows naming it)."""
        await self.bind(queue, queue, queue)

    async def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        """Add the ``bindings`` row: messages to ``exchange`` with ``routing_key`` also go to ``queue``."""
        self._check_open()
        await self.thread.run(_bind, exchange, routing_key, queue)

    async def delete(self, queue: str) -> None:
        """Delete every binding of ``queue`` and every row naming it (leased ones too: their acks do nothing)."""
        self._check_open()
        await self.thread.run(_delete_queue, queue)

    async def publish(
        self,
        message: Message,
        routing_key: str,
        exchange: str = "",
        *,
        not_before: float | None = None,
    ) -> None:
        """Insert a row for each queue ``exchange`` routes ``routing_key`` to; returns after the commit (shared
        with concurrent ones). A named exchange with no matching binding drops the message (logged).

        Raises:
            TypeError: headers or properties hold a value kombu JSON cannot represent.
        """
        self._check_open()
        if not exchange:
            await self._insert_message(message, routing_key, exchange, routing_key, not_before)
            return
        queues = await self.thread.run(_route, exchange, routing_key)
        if not queues:
            log.warning("message to exchange %r with routing key %r dropped: no queue is bound", exchange, routing_key)
        for queue_name in queues:
            await self._insert_message(message, queue_name, exchange, routing_key, not_before)

    async def _insert_message(
        self, message: Message, queue_name: str, exchange: str, routing_key: str, not_before: float | None
    ) -> None:
        now = time.time()
        delayed = not_before is not None and not_before > now
        visible_at = not_before if delayed and not_before is not None else now
        row = (
            queue_name,
            message.priority,
            bytes(message.body),
            message.content_type,
            message.content_encoding,
            json_dumps(dict(message.headers)),
            json_dumps(dict(message.properties)),
            exchange,
            routing_key,
            visible_at,
            visible_at if delayed else None,
        )
        await self._publisher.submit(row)
        self.watcher.notify()

    def consume(self, queues: Sequence[str], prefetch: int) -> SQLiteConsumer:
        self._check_open()
        consumer = SQLiteConsumer(self, queues, prefetch)
        self._consumers.add(consumer)
        return consumer

    async def fanout(self, channel: str, message: Message) -> None:
        self._check_open()
        row = (
            channel,
            bytes(message.body),
            message.content_type,
            message.content_encoding,
            json_dumps(dict(message.headers)),
            json_dumps(dict(message.properties)),
            time.time(),
        )
        await self._broadcaster.submit(row)
        self.watcher.notify()

    async def subscribe(self, channels: Sequence[str]) -> SQLiteSubscription:
        self._check_open()
        after = await self.thread.run(_scalar, SQL["last_broadcast"], {})
        subscription = SQLiteSubscription(self, channels, after)
        self._subscriptions.add(subscription)
        return subscription

    async def purge(self, queue: str) -> int:
        """Delete the rows of ``queue`` no consumer holds, delayed ones included; return how many."""
        self._check_open()
        return await self.thread.run(_purge, queue)

    async def size(self, queue: str) -> int:
        """Rows of ``queue`` deliverable now (not leased, not delayed)."""
        self._check_open()
        return await self.thread.run(_scalar, SQL["size"], {"queue": queue, "now": time.time()})

    # -- for SQLiteConsumer and SQLiteSubscription -------------------------------------------------------

    async def ack(self, owner: str, row_id: int) -> None:
        self._check_open()
        await self._acker.submit((owner, row_id))

    async def release(self, releases: list[tuple[str, list[int], list[int]]]) -> None:
        self._check_open()
        await self.thread.run(_release, releases)
        self.watcher.notify()

    async def dead_letter(self, owner: str, row_id: int, reason: str) -> None:
        self._check_open()
        await self.thread.run(_dead_letter, owner, row_id, reason)

    def forget_consumer(self, consumer: SQLiteConsumer) -> None:
        self._consumers.discard(consumer)

    def forget_subscription(self, subscription: SQLiteSubscription) -> None:
        self._subscriptions.discard(subscription)

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosed(f"{self.url} is closed")
        if not self._opened:
            raise TransportError(f"{self.url} is not connected: call connect() first")

    async def _maintain(self) -> None:
        """Renew the leases of live deliveries; prune old broadcasts and dead letters."""
        period = min(self.options.visibility_timeout / 3, MAINTENANCE_EVERY)
        next_prune = 0.0
        while True:
            await asyncio.sleep(period)
            try:
                leases = [(c.owner, c.held_ids) for c in self._consumers if c.held_ids]
                if leases:
                    await self.thread.run(_renew, leases, time.time() + self.options.visibility_timeout)
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + MAINTENANCE_EVERY
                    now = time.time()
                    dead_before = None if self._dead_letter_ttl is None else now - self._dead_letter_ttl
                    await self.thread.run(_prune, now - self._broadcast_ttl, dead_before)
            except TransportClosed:
                return
            except TransportError as exc:
                log.warning("%s: lease renewal or pruning failed, will retry: %s", self.url, exc)

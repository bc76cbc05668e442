"""Keyed state of one stream processor: one way to read, write and scan it, in a changelogged
RocksDB table or, for unit tests and tools, in a dict.

Both stream processors (the resolver's identity map and the score agent's accounts) keep
their state as bytes keys and bytes values, read and write it one input message at a
time, and find what is due (the resolver's expiring holds and links, the score agent's
accounts to re-evaluate) by a key-ordered range scan of a prefix whose keys start with a
12-digit due second (:func:`state.keys.due_part`). :class:`KeyedStore` is that contract;
:class:`TableState` keeps it over a Faust table, :class:`MemoryState` over a dict.

:class:`TableState` writes the changelog first and RocksDB only once the broker has
acknowledged the records, with the changelog offset they bring the DB up to in the same
RocksDB batch (:class:`PendingWrites`, :func:`write_with_offset`): the local RocksDB is
never ahead of the changelog, so after a ``kill -9`` it is kept as it is and recovery
replays only what came after it. Faust's per-key ``table[key] = value`` (a RocksDB put, a
buffered changelog send and a persisted-offset put per key) is never used.

For each input message::

    state.begin(partition)      # reads now see this partition
    ... state.get / put / delete / scan ...
    if await state.flush():     # False: the partition was handed over meanwhile
        ... send the message's outputs ...
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from state.faust_adapter import partition_db, persisted_offset_entry

if TYPE_CHECKING:
    import faust
    from faust.types import CollectionT
    from rocksdict import Rdict

log = logging.getLogger(__name__)


class KeyedStore(Protocol):
    """What a stream processor needs of its state, whatever holds it."""

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key``, ``None`` when it has none."""

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None:
        """Remove ``key``; nothing happens when it has no value."""

    def scan(self, start: bytes, stop: bytes) -> Iterator[bytes]:
        """Keys ``start`` ≤ key < ``stop`` with a value, in byte order. Only keys of the
        store's indexed prefixes are guaranteed to include writes not yet flushed."""


class MemoryState(dict[bytes, bytes]):
    """:class:`KeyedStore` over a dict: unit tests and runs without Kafka. Still a dict, so
    a test can look at exactly what was written."""

    def put(self, key: bytes, value: bytes) -> None:
        self[key] = value

    def delete(self, key: bytes) -> None:
        self.pop(key, None)

    def scan(self, start: bytes, stop: bytes) -> Iterator[bytes]:
        return iter(sorted(k for k in self if start <= k < stop))


# --------------------------------------------------------------------- writes in flight


class PendingWrites:
    """One partition's writes that were sent to its changelog and are not acknowledged yet.

    A message's writes go to the changelog first and wait here; when the broker
    acknowledges the last record of a flush, :meth:`acked` writes that flush to RocksDB as
    one ``WriteBatch`` together with the changelog offset it brings the DB up to.
    Meanwhile every read of the partition sees the pending value over RocksDB's, and
    every scan of an ``indexed`` prefix merges the pending keys in, so processing sees
    what it would have seen with RocksDB written first.

    Flushes are applied in the order they were sent, whatever order their
    acknowledgements arrive in: a flush acknowledged early waits for the ones before it.

    Memory: only unacknowledged writes are held, one value per key (the newest). The
    producer keeps at most two batches per changelog partition (one in flight, one being
    filled; ``producer.send`` waits while both are full), so this holds at most about
    two producer batches of records per partition (2 × 512 KiB with Telltale's producer
    settings) plus the writes of the message being sent: milliseconds of traffic.
    """

    __slots__ = ("_flushes", "_idle", "_indexed", "_latest", "_prefixes", "_sent")

    def __init__(self, indexed: Iterable[bytes] = ()) -> None:
        # key → (sequence number of the flush that wrote it, value; None for a delete)
        self._latest: dict[bytes, tuple[int, bytes | None]] = {}
        self._prefixes = tuple(indexed)
        self._indexed: set[bytes] = set()  # the keys of indexed prefixes, for range scans
        self._flushes: deque[_Flush] = deque()
        self._sent = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        """Keys with a pending value."""
        return len(self._latest)

    @property
    def flushes(self) -> int:
        """Flushes sent and not yet written to RocksDB."""
        return len(self._flushes)

    def lookup(self, key: bytes) -> tuple[bool, bytes | None]:
        """(whether ``key`` has a pending write, its newest pending value)."""
        entry = self._latest.get(key)
        return (False, None) if entry is None else (True, entry[1])

    def writes(self) -> Iterator[tuple[bytes, bytes | None]]:
        """(key, newest pending value) of every pending key, in no particular order."""
        return ((key, value) for key, (_, value) in self._latest.items())

    def range(self, start: bytes, stop: bytes) -> list[tuple[bytes, bytes | None]]:
        """Pending writes of indexed keys with ``start`` ≤ key < ``stop``, in key order."""
        return [(key, self._latest[key][1])
                for key in sorted(k for k in self._indexed if start <= k < stop)]

    def add(self, db: Rdict, writes: list[tuple[bytes, bytes | None]]) -> _Flush:
        """Hold ``writes`` (in write order) for ``db`` until :meth:`acked` says the
        changelog has them; call before the first of them is sent."""
        self._sent += 1
        flush = _Flush(self._sent, db, writes)
        for key, value in writes:
            self._latest[key] = (flush.sequence, value)
            if key.startswith(self._prefixes):
                self._indexed.add(key)
        self._flushes.append(flush)
        self._idle.clear()
        return flush

    def acked(self, flush: _Flush, offset: int) -> None:
        """The changelog has ``flush`` up to its last record, at ``offset``: write it,
        and every flush before it that is acknowledged too, to RocksDB in send order."""
        flush.offset = offset
        while self._flushes and self._flushes[0].offset is not None:
            self._apply(self._flushes.popleft())
        if not self._flushes:
            self._idle.set()

    def _apply(self, flush: _Flush) -> None:
        assert flush.offset is not None
        write_with_offset(flush.db, flush.writes, flush.offset)
        for key, _ in flush.writes:
            entry = self._latest.get(key)
            # A later flush that wrote the key again keeps its value pending.
            if entry is not None and entry[0] == flush.sequence:
                del self._latest[key]
                self._indexed.discard(key)

    async def drain(self) -> None:
        """Wait until every flush sent so far is in RocksDB (before a partition is handed
        over and before the worker stops)."""
        await self._idle.wait()


@dataclass(slots=True)
class _Flush:
    """One message's writes on their way: sent to the changelog, not yet in RocksDB."""

    sequence: int
    db: Rdict
    writes: list[tuple[bytes, bytes | None]]
    #: Changelog offset of the last record, once the broker acknowledged it.
    offset: int | None = None


def write_with_offset(db: Rdict, writes: Iterable[tuple[bytes, bytes | None]],
                      offset: int) -> None:
    """``writes`` (key, value; None deletes) in order, and the changelog ``offset`` they
    bring ``db`` up to, as one atomic RocksDB ``WriteBatch``: the records and the offset
    that vouches for them land together or not at all."""
    import rocksdict

    batch = rocksdict.WriteBatch(raw_mode=True)
    for key, value in writes:
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
    batch.put(*persisted_offset_entry(offset))
    db.write(batch)


def scan_keys(db: Rdict, start: bytes, stop: bytes,
              pending: PendingWrites | None = None) -> Iterator[bytes]:
    """Keys with ``start`` ≤ key < ``stop`` in key order: RocksDB's range with the
    partition's ``pending`` writes over it (a pending delete hides a key)."""
    it = db.iter()
    it.seek(start)

    def stored() -> bytes | None:
        if not it.valid():
            return None
        key = bytes(it.key())
        return key if key < stop else None

    overlay = pending.range(start, stop) if pending is not None else []
    key = stored()
    for pending_key, value in overlay:
        while key is not None and key < pending_key:
            yield key
            it.next()
            key = stored()
        if key == pending_key:
            it.next()
            key = stored()
        if value is not None:
            yield pending_key
    while key is not None:
        yield key
        it.next()
        key = stored()


# --------------------------------------------------------------------- in a Faust table


class TableState:
    """:class:`KeyedStore` over a changelogged RocksDB table, one input message at a time.

    ``source_topic`` is the topic the table is co-partitioned with (the processor's input);
    ``indexed`` the key prefixes that are range-scanned (due indexes). Reads see this
    message's own writes, then the partition's flushes not yet acknowledged, then
    RocksDB (read directly: Faust's table API would check membership, then read).
    Without a table (``db_for`` gives each partition's RocksDB) it only reads and holds
    writes: tests over a bare RocksDB.
    """

    def __init__(self, table: CollectionT | None, source_topic: str,
                 indexed: Iterable[bytes] = (),
                 db_for: Callable[[int], Rdict] | None = None) -> None:
        self.table = table
        self.source_topic = source_topic
        self.indexed = tuple(indexed)
        if db_for is None:
            db_for = _no_db if table is None else functools.partial(partition_db, table)
        self._db_for = db_for
        self._pending: dict[int, PendingWrites] = {}
        self.partition = -1
        self.db: Rdict | None = None
        # The current partition's flushes not in RocksDB yet (one of ``_pending``).
        self._here = PendingWrites(self.indexed)
        self._order: list[tuple[bytes, bytes | None]] = []
        self._latest: dict[bytes, bytes | None] = {}

    def begin(self, partition: int) -> None:
        """Start a message of ``partition``: reads see it, writes collect for it. A message
        begun and not flushed is dropped with everything it wrote."""
        self.partition = partition
        self.db = self._db_for(partition)
        pending = self._pending.get(partition)
        if pending is None:
            pending = self._pending[partition] = PendingWrites(self.indexed)
        self._here = pending
        self._order = []
        self._latest = {}

    @property
    def pending(self) -> PendingWrites:
        """The current partition's flushes not in RocksDB yet."""
        return self._here

    def get(self, key: bytes) -> bytes | None:
        if key in self._latest:
            return self._latest[key]
        found, pending = self._here.lookup(key)
        if found:
            return pending
        db = self.db if self.db is not None else self._db()
        value: bytes | None = db.get(key)
        return value

    def put(self, key: bytes, value: bytes) -> None:
        self._order.append((key, value))
        self._latest[key] = value

    def delete(self, key: bytes) -> None:
        self._order.append((key, None))
        self._latest[key] = None

    def scan(self, start: bytes, stop: bytes) -> Iterator[bytes]:
        if not self._latest:
            return scan_keys(self._db(), start, stop, self._here)
        # This message's own writes in the range go over the flushed ones.
        own = {k: v for k, v in self._latest.items() if start <= k < stop}
        merged = set(scan_keys(self._db(), start, stop, self._here)) | set(own)
        return iter(sorted(k for k in merged if own.get(k, b"") is not None))

    def __len__(self) -> int:
        """Writes of the current message."""
        return len(self._order)

    async def flush(self) -> bool:
        """Send the message's writes to the changelog, in write order, to the changelog
        partition of the message's partition; RocksDB gets them once the broker has them.

        Returns False, writing nothing, when this worker no longer owns the partition:
        Faust stops the flow on revocation but lets a message in flight finish, and its
        writes would land in the changelog after those of the new owner and roll its
        records back. The new owner processes the message again.
        """
        if not self._still_assigned():
            self._order, self._latest = [], {}
            return False
        if not self._order:
            return True
        from faust.types import TP

        assert self.table is not None, "a keyed state without a table cannot flush"
        producer = self.table.app.producer
        topic = self.table.changelog_topic.get_topic_name()
        partition = self.partition
        tp = TP(topic, partition)
        pending = self._here
        flush = self.seal()
        future: Any = None
        try:
            for key, value in flush.writes:
                future = await producer.send(topic, key, value, partition, None, None)
        except Exception as exc:  # any refusal leaves a partial flush
            _stop_hard(tp, exc)

        def _persisted(done: Any) -> None:
            if done.cancelled() or done.exception() is not None:
                _stop_hard(tp, None if done.cancelled() else done.exception())
            try:
                pending.acked(flush, done.result().offset)
            except Exception as exc:  # RocksDB refused the write
                _stop_hard(tp, exc)

        future.add_done_callback(_persisted)
        return True

    def seal(self) -> _Flush:
        """Make this message's writes the partition's next pending flush (read by every
        later message until the broker acknowledges them) and start afresh; what
        :meth:`flush` does before it sends them."""
        flush = self._here.add(self._db(), self._order)
        self._order, self._latest = [], {}
        return flush

    async def settle(self) -> None:
        """Wait until every message flushed so far is in this worker's RocksDB.

        Before a rebalance hands partitions over (Faust then drops its handles on their
        DBs, and a flush applied later would hold one open) and before the worker stops
        (what is acknowledged is then kept locally instead of replayed at the next start).
        """
        for pending in list(self._pending.values()):
            await pending.drain()

    def settle_at_handover(self, app: faust.App) -> None:
        """:meth:`settle` whenever ``app`` hands partitions over, and before it stops."""

        @app.on_partitions_revoked.connect
        async def _settle_before_handover(sender: Any, /, *args: Any, signal: Any,
                                          **kwargs: Any) -> None:
            await self.settle()

        @app.on_before_shutdown.connect
        async def _settle_before_stop(sender: Any, /, *args: Any, signal: Any,
                                      **kwargs: Any) -> None:
            await app.producer.flush()
            await self.settle()

    def _db(self) -> Rdict:
        if self.db is None:
            raise RuntimeError("begin a message before reading or writing the state")
        return self.db

    def _still_assigned(self) -> bool:
        if self.table is None:
            return False
        try:
            assignment = self.table.app.consumer.assignment()
        except Exception:  # consumer stopping
            return False
        return any(tp.topic == self.source_topic and tp.partition == self.partition
                   for tp in assignment)


def _no_db(partition: int) -> Rdict:
    raise RuntimeError(f"no table, so no RocksDB for partition {partition}")


def _stop_hard(tp: Any, why: BaseException | None) -> NoReturn:
    """A flush could not complete (the producer gave up after its retries, or RocksDB
    refused the batch). The commit that follows could still pass its source offsets, so
    stop like a crash: the messages are redelivered, and the local DB, never ahead of the
    changelog, is kept."""
    log.critical("changelog write to %s failed: %r; stopping", tp, why)
    os._exit(70)


__all__ = ["KeyedStore", "MemoryState", "PendingWrites", "TableState", "scan_keys",
           "write_with_offset"]

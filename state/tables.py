"""The score agent's RocksDB state: one changelogged Faust table, raw bytes in and out.

Why one table and not one per record kind: every record that one by-account message
changes (the account, its users, its due-index entries, the partition clock) must reach
the changelog *in the order it was written*, so that a record saying "source offset N was
applied" is never in the changelog without the user records and due entries that offset
produced. Kafka orders records only within one partition of one topic; two tables would
mean two changelog topics and no order between them. So the kinds share one table and are
told apart by a one-byte key prefix:

- ``a`` account record   ``a␟workspace␟account``         → :class:`AccountRecord` bytes
- ``u`` user record      ``u␟workspace␟account␟user``    → the core's ``UserState`` bytes
- ``d`` due-index entry  ``d␟<due, 12 digits>␟workspace␟account`` → empty
- ``c`` partition clock  ``c␟<partition>``               → :class:`PartitionClock` bytes

(␟ is the ASCII unit separator, 0x1F, which ids never contain in practice; ids that do are
rejected by :func:`state.keys.part`.)

Every key is written while the agent processes a message of the by-account topic, so Faust
puts it in the RocksDB store and changelog partition of *that* message: a user key lives in
the same partition as its account, and the due index of partition ``p`` is a range of keys
in ``p``'s own RocksDB, which the agent scans in key order (:func:`due_entries`) — the cost
of a tick grows with what is due, never with the number of accounts.

Values are bytes end to end (``raw`` serialisers): Faust's JSON codec never runs.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import shutil
import struct
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import orjson

from state.faust_adapter import skip_changelog_records_held
from state.keys import MAX_DUE, SEP, KeyPartError, due_part, make_key
from state.keys import part as key_part

if TYPE_CHECKING:
    import faust
    from faust.types import TableT

    from streams.settings import Settings

log = logging.getLogger(__name__)

ACCOUNT = b"a"
USER = b"u"
DUE = b"d"
CLOCK = b"c"

STATE_TABLE = "health-state"
#: RocksDB write buffers kept per partition DB (Faust's default is 3 of 64 MiB each).
WRITE_BUFFERS_PER_DB = 2


#: Raised for an id that cannot be part of a state key (the score table's name for it).
StateKeyError = KeyPartError


def account_key(workspace: str, account_id: str) -> bytes:
    return make_key(ACCOUNT, workspace, account_id)


def user_key(workspace: str, account_id: str, user_id: str) -> bytes:
    return make_key(USER, workspace, account_id, user_id)


def due_key(due: int, workspace: str, account_id: str) -> bytes:
    return SEP.join([DUE, due_part(due), key_part(workspace), key_part(account_id)])


class AccountKeys:
    """The state keys of one account, its workspace and account id checked once: a step
    writes the account record, each user's record and due entries, and checking the same
    two ids for every key was 2% of the score agent's time. Byte for byte the keys of
    :func:`account_key`, :func:`user_key` and :func:`due_key`."""

    __slots__ = ("_ids", "account")

    def __init__(self, workspace: str, account_id: str) -> None:
        self._ids = key_part(workspace) + SEP + key_part(account_id)
        self.account = ACCOUNT + SEP + self._ids

    def user(self, user_id: str) -> bytes:
        return USER + SEP + self._ids + SEP + key_part(user_id)

    def due(self, due: int) -> bytes:
        return DUE + SEP + due_part(due) + SEP + self._ids


def clock_key(partition: int) -> bytes:
    return CLOCK + SEP + b"%d" % partition


def due_second(due: float) -> int:
    """Due times are kept in whole seconds, rounded up (never re-evaluate early)."""
    return min(max(0, math.ceil(due)), MAX_DUE)


def parse_due_key(key: bytes) -> tuple[int, str, str]:
    """``due_key`` → (due second, workspace, account id)."""
    _, due, workspace, account = key.split(SEP, 3)
    return int(due), workspace.decode(), account.decode()


def key_kind(key: bytes) -> bytes:
    return key[:1]


# ------------------------------------------------------------------------- records

_HEADER = struct.Struct(">I")


def _frame(blobs: list[bytes]) -> bytes:
    return b"".join(_HEADER.pack(len(b)) + b for b in blobs)


def _unframe(raw: bytes, count: int, pos: int) -> tuple[list[bytes], int]:
    blobs = []
    for _ in range(count):
        (size,) = _HEADER.unpack_from(raw, pos)
        pos += 4
        blobs.append(bytes(raw[pos : pos + size]))
        pos += size
    return blobs, pos


@dataclass(slots=True)
class AccountRecord:
    """What the table keeps per account, around the core's ``AccountState`` bytes.

    The account record is the commit point of a message: it is written *before* the user
    records the same message changes, and carries them (``redo``), so that whatever prefix
    of a message's writes survived a crash, the state can be completed without applying
    the message twice.

    - ``applied``: by-account offset (in this account's partition) of the last message
      applied to the account; a message at or below it is a redelivery, never re-applied.
    - ``due``: second at which the account must be re-evaluated if nothing arrives (its
      due-index entry), ``None`` for never.
    - ``redo``: (user id, ``UserState`` bytes) written by the message at ``applied``;
      re-written on redelivery, since those user records may not have reached the
      changelog before the crash.
    - ``outbox``: for recent source offsets that produced health changes, the encoded
      changes, so a redelivery re-sends exactly those (ids are deterministic; consumers
      dedup by id) instead of losing them when the crash came before the producer flushed.
      Entries below the partition's committed offset are pruned.
    """

    state: bytes
    applied: int = -1
    due: int | None = None
    redo: list[tuple[str, bytes]] = field(default_factory=list)
    outbox: list[tuple[int, list[bytes]]] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        header = orjson.dumps(
            {
                "o": self.applied,
                "d": self.due,
                "r": [user_id for user_id, _ in self.redo],
                "x": [[offset, len(changes)] for offset, changes in self.outbox],
            }
        )
        blobs = [header, self.state]
        blobs.extend(user for _, user in self.redo)
        for _, changes in self.outbox:
            blobs.extend(changes)
        return _frame(blobs)

    @classmethod
    def from_bytes(cls, raw: bytes) -> AccountRecord:
        (header_raw, state), pos = _unframe(raw, 2, 0)
        header: dict[str, Any] = orjson.loads(header_raw)
        user_ids: list[str] = header["r"]
        users, pos = _unframe(raw, len(user_ids), pos)
        outbox: list[tuple[int, list[bytes]]] = []
        for offset, count in header["x"]:
            changes, pos = _unframe(raw, count, pos)
            outbox.append((int(offset), changes))
        return cls(
            state=state,
            applied=int(header["o"]),
            due=header["d"],
            redo=list(zip(user_ids, users, strict=True)),
            outbox=outbox,
        )

    def outbox_for(self, offset: int) -> list[bytes]:
        for entry_offset, changes in self.outbox:
            if entry_offset == offset:
                return changes
        return []


@dataclass(slots=True)
class PartitionClock:
    """Event-time clock of one by-account partition, written last for every message.

    ``now`` is the newest time seen (epoch seconds): event timestamps and tick times, and
    in live mode never behind the wall clock. It only moves forward. ``offset`` is the last
    source offset processed in the partition. ``recent`` lists, for recent offsets, the
    accounts that the due index re-evaluated with effects (health changes or user writes),
    so a redelivery of such an offset can re-send and re-write them; entries below the
    committed offset are pruned. ``newest_event`` is the newest event time applied
    (epoch seconds, 0 before any): in replay mode a tick may not move ``now`` far past it.
    """

    now: float = 0.0
    offset: int = -1
    recent: list[tuple[int, list[tuple[str, str]]]] = field(default_factory=list)
    newest_event: float = 0.0

    def to_bytes(self) -> bytes:
        return orjson.dumps([self.now, self.offset, self.recent, self.newest_event])

    @classmethod
    def from_bytes(cls, raw: bytes) -> PartitionClock:
        now, offset, recent, *rest = orjson.loads(raw)
        return cls(
            float(now),
            int(offset),
            [(int(o), [(ws, acc) for ws, acc in accounts]) for o, accounts in recent],
            # Clocks written before newest_event existed: their own time is the best bound.
            float(rest[0]) if rest else float(now),
        )

    def recent_for(self, offset: int) -> list[tuple[str, str]]:
        for entry_offset, accounts in self.recent:
            if entry_offset == offset:
                return accounts
        return []


# ------------------------------------------------------------------------- Faust table


def rocksdb_options(settings: Settings) -> dict[str, Any]:
    """Per-partition RocksDB sizes from settings (Faust's defaults: 2 GiB block cache and
    3 × 64 MiB write buffers per partition DB, far too much at 8+ partitions)."""
    mib = 1024 * 1024
    return {
        "driver": "rocksdict",
        "block_cache_size": settings.rocksdb_block_cache_mb * mib,
        "block_cache_compressed_size": settings.rocksdb_block_cache_mb * mib,
        "write_buffer_size": settings.rocksdb_write_buffer_mb * mib,
        "max_write_buffer_number": WRITE_BUFFERS_PER_DB,
    }


def raw_schema() -> faust.Schema:
    import faust

    return faust.Schema(
        key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


def raw_table(app: faust.App, settings: Settings, name: str, help: str) -> TableT:
    """A RocksDB table of bytes keys and bytes values, one partition per partition of the
    topics it is co-partitioned with."""
    # key_type/value_type, not only the schema: Faust picks the changelog topic's
    # serializers and its store codec from them and falls back to JSON, which breaks
    # recovery of raw keys and hands back JSON-decoded values.
    return app.Table(name, schema=raw_schema(), key_type=bytes, value_type=bytes,
                     partitions=settings.partitions, options=rocksdb_options(settings),
                     help=help)


def define_state_table(app: faust.App, settings: Settings) -> TableT:
    """The health-state table, co-partitioned with the by-account topic."""
    table = raw_table(app, settings, STATE_TABLE,
                      "Account, user, due-index and clock records of the score agent")
    skip_changelog_records_held(table)
    return table


class PendingWrites:
    """One partition's writes that were sent to its changelog and are not acknowledged yet.

    The local RocksDB must never be ahead of the changelog: after a ``kill -9`` it is
    trusted as it is, and Faust's recovery replays only the changelog records after the
    offset it holds (see :func:`discard_untrusted_local_state`). So a message's writes go
    to the changelog first and wait here; when the broker acknowledges the last record of
    a flush, :meth:`acked` writes that flush to RocksDB as one ``WriteBatch`` together
    with the changelog offset it brings the DB up to. Meanwhile every read of the
    partition (:meth:`MessageWrites.get`, the due-index scans) sees the pending value
    over RocksDB's, so processing sees what it would have seen with RocksDB written first.

    Flushes are applied in the order they were sent, whatever order their
    acknowledgements arrive in: a flush acknowledged early waits for the ones before it.

    Memory: only unacknowledged writes are held, one value per key (the newest). The
    producer keeps at most two batches per changelog partition (one in flight, one being
    filled; ``producer.send`` waits while both are full), so this holds at most about
    two producer batches of records per partition (2 × 512 KiB with Telltale's producer
    settings) plus the writes of the message being sent: milliseconds of traffic.
    """

    __slots__ = ("_due", "_flushes", "_idle", "_latest", "_sent")

    def __init__(self) -> None:
        # key → (sequence number of the flush that wrote it, value; None for a delete)
        self._latest: dict[bytes, tuple[int, bytes | None]] = {}
        self._due: set[bytes] = set()  # the due-index keys among them, for range scans
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

    def due_range(self, start: bytes, stop: bytes) -> list[tuple[bytes, bytes | None]]:
        """Pending due-index writes with ``start`` ≤ key < ``stop``, in key order."""
        return [(key, self._latest[key][1])
                for key in sorted(k for k in self._due if start <= k < stop)]

    def add(self, db: Any, writes: list[tuple[bytes, bytes | None]]) -> _Flush:
        """Hold ``writes`` (in write order) for ``db`` until :meth:`acked` says the
        changelog has them; call before the first of them is sent."""
        self._sent += 1
        flush = _Flush(self._sent, db, writes)
        for key, value in writes:
            self._latest[key] = (flush.sequence, value)
            if key[:1] == DUE:
                self._due.add(key)
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
                self._due.discard(key)

    async def drain(self) -> None:
        """Wait until every flush sent so far is in RocksDB (before a partition is handed
        over and before the worker stops)."""
        await self._idle.wait()


def write_with_offset(db: Any, writes: Iterable[tuple[bytes, bytes | None]],
                      offset: int) -> None:
    """``writes`` (key, value; None deletes) in order, and the changelog ``offset`` they
    bring ``db`` up to, as one atomic RocksDB ``WriteBatch``: the records and the offset
    that vouches for them land together or not at all."""
    import rocksdict

    from state.faust_adapter import persisted_offset_entry

    batch = rocksdict.WriteBatch(raw_mode=True)
    for key, value in writes:
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
    batch.put(*persisted_offset_entry(offset))
    db.write(batch)


@dataclass(slots=True)
class _Flush:
    """One message's writes on their way: sent to the changelog, not yet in RocksDB."""

    sequence: int
    db: Any
    writes: list[tuple[bytes, bytes | None]]
    #: Changelog offset of the last record, once the broker acknowledged it.
    offset: int | None = None


class MessageWrites:
    """The writes one by-account message makes, applied together.

    Faust's ``table[key] = value`` costs a RocksDB put, a buffered changelog send and a
    persisted-offset put per key, and its 100-record producer buffer then stalls the
    stream: with a message writing an account, a dozen users, due entries and the clock,
    that per-key cost dominated. So the agent collects a message's writes here and
    :meth:`flush` applies them at once: the changelog records in write order to the
    message's changelog partition (Faust's commit flushes the producer before committing
    source offsets, as for its own writes), then, when the last record is acked, one
    atomic RocksDB ``WriteBatch`` with the persisted offset (:class:`PendingWrites`).
    Reads see the message's own pending values, then the partition's pending flushes,
    then RocksDB. Every write of the state table goes through here: one written another
    way could put RocksDB ahead of the changelog.
    """

    def __init__(self, pending: PendingWrites | None = None) -> None:
        self._pending = pending if pending is not None else PendingWrites()
        self._order: list[tuple[bytes, bytes | None]] = []
        self._latest: dict[bytes, bytes | None] = {}

    @property
    def pending(self) -> PendingWrites:
        """The partition's flushes that are not in RocksDB yet."""
        return self._pending

    def put(self, key: bytes, value: bytes) -> None:
        self._order.append((key, value))
        self._latest[key] = value

    def delete(self, key: bytes) -> None:
        self._order.append((key, None))
        self._latest[key] = None

    def get(self, db: Any, key: bytes) -> bytes | None:
        if key in self._latest:
            return self._latest[key]
        found, pending = self._pending.lookup(key)
        if found:
            return pending
        value: bytes | None = db.get(key)
        return value

    def __len__(self) -> int:
        return len(self._order)

    async def flush(self, table: Any, db: Any, partition: int) -> None:
        if not self._order:
            return
        from faust.types import TP

        producer = table.app.producer
        topic = table.changelog_topic.get_topic_name()
        tp = TP(topic, partition)
        flush = self._pending.add(db, self._order)
        pending = self._pending
        future: Any = None
        try:
            for key, value in self._order:
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
        self._order = []
        self._latest = {}


def _stop_hard(tp: Any, why: BaseException | None) -> NoReturn:
    """A flush could not complete (the producer gave up after its retries, or RocksDB
    refused the batch). The commit that follows could still pass its source offsets, so
    stop like a crash: the messages are redelivered, and the local DB, never ahead of the
    changelog, is kept."""
    log.critical("changelog write to %s failed: %r; stopping", tp, why)
    os._exit(70)


def _due_keys(db: Any, start: bytes, stop: bytes,
              pending: PendingWrites | None) -> Iterator[bytes]:
    """Due-index keys with ``start`` ≤ key < ``stop`` in key order: RocksDB's range with
    the partition's pending writes over it (a pending delete hides a key)."""
    it = db.iter()
    it.seek(start)

    def stored() -> bytes | None:
        if not it.valid():
            return None
        key = bytes(it.key())
        return key if key < stop else None

    overlay = pending.due_range(start, stop) if pending is not None else []
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


#: Just past every due-index key (the byte after the separator).
_DUE_END = DUE + bytes([SEP[0] + 1])


def due_entries(db: Any, until: int, pending: PendingWrites | None = None,
                ) -> Iterator[tuple[bytes, int, str, str]]:
    """Due-index entries of one partition with due second ≤ ``until``, oldest first:
    (key, due second, workspace, account id). A key-ordered range scan of its RocksDB,
    with its ``pending`` writes merged in."""
    for key in _due_keys(db, DUE + SEP, DUE + SEP + due_part(until + 1), pending):
        due, workspace, account = parse_due_key(key)
        yield key, due, workspace, account


def first_due(db: Any, after: int = -1, pending: PendingWrites | None = None) -> int | None:
    """Earliest due second later than ``after`` in one partition, ``pending`` writes
    included (``None``: none)."""
    start = DUE + SEP + b"%012d" % (after + 1) if after >= 0 else DUE + SEP
    for key in _due_keys(db, start, _DUE_END, pending):
        return parse_due_key(key)[0]
    return None


def count_keys(db: Any, pending: PendingWrites | None = None) -> dict[str, int]:
    """Keys per record kind in one partition (RocksDB scan, ``pending`` writes included;
    for gauges and tests)."""
    counts = {"account": 0, "user": 0, "due": 0}
    names = {ACCOUNT: "account", USER: "user", DUE: "due"}
    for key in db.keys():  # noqa: SIM118 - Rdict.keys() is a key-only scan
        name = names.get(bytes(key[:1]))
        if name is not None:
            counts[name] += 1
    for key, value in (pending.writes() if pending is not None else ()):
        name = names.get(key[:1])
        if name is not None:
            counts[name] += (value is not None) - (db.get(key) is not None)
    return counts


# ------------------------------------------------------------------------- local state


def _trusted_marker(tabledir: Path) -> Path:
    # The name predates the changelog-first writes, when only a clean shutdown left it:
    # a worker of that time removes it when it starts, so a directory it ran on last
    # (and may have left ahead of the changelog) is never taken for a trusted one.
    return tabledir / f"{STATE_TABLE}.clean"


def discard_untrusted_local_state(tabledir: Path) -> bool:
    """Delete this table's local RocksDB unless it is known to be a prefix of the changelog,
    then mark the directory as such. Returns True when something was discarded.

    Since :class:`MessageWrites` writes the changelog first and RocksDB only once the
    broker acknowledged it (with the persisted offset in the same batch), a partition DB
    holds nothing the changelog lacks, even after ``kill -9``: it is kept, and Faust's
    recovery replays only the changelog records after the offset it holds. The marker
    says so for the directory, and stays while the worker runs. Workers before that wrote
    RocksDB first and left the marker only after a clean shutdown, removing it when they
    started: a directory without it may hold writes the changelog never got, and is
    rebuilt from the changelog (the path of last resort, as for an empty directory).
    """
    marker = _trusted_marker(tabledir)
    paths = [*tabledir.glob(f"{STATE_TABLE}-*.db"), *tabledir.glob(f"{STATE_TABLE}-backups")]
    discard = bool(paths) and not marker.exists()
    for path in paths if discard else ():
        shutil.rmtree(path, ignore_errors=True)
    mark_trusted(tabledir)
    return discard


def mark_trusted(tabledir: Path) -> None:
    """Record that this directory's local state never runs ahead of its changelog."""
    tabledir.mkdir(parents=True, exist_ok=True)
    _trusted_marker(tabledir).touch()

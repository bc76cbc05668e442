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

Every key is written while the agent processes a message of the by-account topic, to the
RocksDB and changelog partition of *that* message (:class:`state.keyed.TableState`, which
the resolver's identity table goes through too): a user key lives in
the same partition as its account, and the due index of partition ``p`` is a range of keys
in ``p``'s own RocksDB, which the agent scans in key order (:func:`due_entries`) — the cost
of a tick grows with what is due, never with the number of accounts.

Values are bytes end to end (``raw`` serialisers): Faust's JSON codec never runs.
"""

from __future__ import annotations

import logging
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import orjson

from state.faust_adapter import skip_changelog_records_held
from state.keys import SEP, KeyPartError, due_part, make_key
from state.keys import part as key_part

if TYPE_CHECKING:
    from rocksdict import Rdict

    from state.keyed import KeyedStore, PendingWrites

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


def keyed_table(app: faust.App, settings: Settings, name: str, help: str) -> TableT:
    """A stream processor's state table, written only through :class:`state.keyed.TableState`
    (changelog first, then RocksDB with the offset it holds up to): a raw table whose
    recovery skips the changelog records a partition DB already holds."""
    table = raw_table(app, settings, name, help)
    skip_changelog_records_held(table)
    return table


def define_state_table(app: faust.App, settings: Settings) -> TableT:
    """The health-state table, co-partitioned with the by-account topic."""
    return keyed_table(app, settings, STATE_TABLE,
                       "Account, user, due-index and clock records of the score agent")


#: Just past every due-index key (the byte after the separator).
_DUE_END = DUE + bytes([SEP[0] + 1])


def due_entries(store: KeyedStore, until: int) -> Iterator[tuple[bytes, int, str, str]]:
    """Due-index entries of one partition with due second ≤ ``until``, oldest first:
    (key, due second, workspace, account id). A key-ordered range scan of its state,
    writes not yet in RocksDB included."""
    for key in store.scan(DUE + SEP, DUE + SEP + due_part(until + 1)):
        due, workspace, account = parse_due_key(key)
        yield key, due, workspace, account


def first_due(store: KeyedStore, after: int = -1) -> int | None:
    """Earliest due second later than ``after`` in one partition (``None``: none)."""
    start = DUE + SEP + b"%012d" % (after + 1) if after >= 0 else DUE + SEP
    for key in store.scan(start, _DUE_END):
        return parse_due_key(key)[0]
    return None


def count_keys(db: Rdict, pending: PendingWrites | None = None) -> dict[str, int]:
    """Keys per record kind in one partition (RocksDB scan, ``pending`` writes included;
    for gauges and tests)."""
    counts = {"account": 0, "user": 0, "due": 0}
    names = {ACCOUNT: "account", USER: "user", DUE: "due"}
    for key in db.keys():  # noqa: SIM118 - Rdict.keys() is a key-only scan
        name = names.get(bytes(cast(bytes, key)[:1]))  # raw mode: keys are bytes
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

    Since :class:`state.keyed.TableState` writes the changelog first and RocksDB only once the
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

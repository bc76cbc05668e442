"""The stream processors' keyed state on a real RocksDB: a flushed message's writes stay
pending (and visible to every read and indexed range scan of the partition) until the
changelog acknowledges them, then land in one batch with the offset they bring the DB up
to, in send order whatever order the acknowledgements come in; and the table-backed state
answers every read and scan as the in-memory one does."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rocksdict

from state import tables
from state.faust_adapter import persisted_offset_entry
from state.keyed import MemoryState, PendingWrites, TableState

OFFSET_KEY = persisted_offset_entry(0)[0]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Any]:
    options = rocksdict.Options(raw_mode=True)
    options.create_if_missing(True)
    database = rocksdict.Rdict(str(tmp_path / "p0.db"), options=options)
    yield database
    database.close()


def _due(due: int, account: str) -> bytes:
    return tables.due_key(due, "w", account)


def _state(db: Any, partition: int = 0) -> TableState:
    """The score table's state over ``db``, begun on a message of ``partition`` (each
    partition has its own pending flushes)."""
    state = TableState(None, "by-account", indexed=(tables.DUE,), db_for=lambda _: db)
    state.begin(partition)
    return state


def test_reads_see_pending_writes_until_the_ack_puts_them_in_rocksdb(db: Any) -> None:
    db[b"k1"] = b"old"
    db[b"gone"] = b"old"
    reads = _state(db)
    pending = reads.pending
    flush = pending.add(db, [(b"k1", b"new"), (b"k2", b"v2"), (b"gone", None)])
    assert [reads.get(k) for k in (b"k1", b"k2", b"gone")] == [b"new", b"v2", None]
    assert db.get(b"k1") == b"old" and db.get(OFFSET_KEY) is None, "RocksDB waits for the ack"

    pending.acked(flush, 41)
    assert [db.get(k) for k in (b"k1", b"k2", b"gone")] == [b"new", b"v2", None]
    assert db.get(OFFSET_KEY) == b"41", "the offset lands in the same batch"
    assert len(pending) == 0 and pending.flushes == 0
    assert reads.get(b"k1") == b"new"


def test_a_message_reads_its_own_writes_over_the_pending_ones(db: Any) -> None:
    writes = _state(db)
    writes.pending.add(db, [(b"k", b"flushed")])
    writes.put(b"k", b"mine")
    assert writes.get(b"k") == b"mine"
    writes.begin(0)  # the next message: this one was never flushed
    assert writes.get(b"k") == b"flushed"


def test_due_scans_merge_pending_entries_and_hide_pending_deletes(db: Any) -> None:
    for due, account in [(100, "a"), (200, "b"), (300, "c")]:
        db[_due(due, account)] = b""
    db[tables.account_key("w", "a")] = b"x"
    state = _state(db)
    pending = state.pending
    pending.add(db, [(_due(150, "n"), b""), (_due(200, "b"), None),
                     (tables.account_key("w", "n"), b"x")])
    pending.add(db, [(_due(100, "a"), None), (_due(50, "m"), b"")])

    found = [(due, acc) for _, due, _, acc in tables.due_entries(state, 250)]
    assert found == [(50, "m"), (150, "n")]
    other = _state(db, partition=1)  # another partition's pending flushes: none
    assert [acc for _, _, _, acc in tables.due_entries(other, 250)] == ["a", "b"], \
        "RocksDB alone still holds the old entries"
    assert tables.first_due(state) == 50
    assert tables.first_due(state, after=150) == 300, "200 is deleted"
    assert tables.first_due(state, after=300) is None
    assert tables.count_keys(db, pending) == {"account": 2, "user": 0, "due": 3}


def test_acks_out_of_send_order_never_apply_an_older_batch_over_a_newer_one(db: Any) -> None:
    state = _state(db)
    pending = state.pending
    first = pending.add(db, [(b"k", b"v1"), (b"only-first", b"x")])
    second = pending.add(db, [(b"k", b"v2")])

    pending.acked(second, 11)
    assert db.get(b"k") is None, "the second waits for the first"
    assert state.get(b"k") == b"v2"

    pending.acked(first, 10)
    assert db.get(b"k") == b"v2" and db.get(b"only-first") == b"x"
    assert db.get(OFFSET_KEY) == b"11"
    assert pending.flushes == 0 and len(pending) == 0


def test_an_applied_batch_keeps_a_newer_pending_value_visible(db: Any) -> None:
    state = _state(db)
    pending = state.pending
    first = pending.add(db, [(b"k", b"v1"), (_due(10, "a"), b"")])
    pending.add(db, [(b"k", b"v2"), (_due(10, "a"), None)])
    pending.acked(first, 5)
    assert db.get(b"k") == b"v1"
    assert state.get(b"k") == b"v2", "the newer write is still pending"
    assert list(tables.due_entries(state, 100)) == []
    assert len(pending) == 2


async def test_drain_waits_for_every_sent_flush(db: Any) -> None:
    pending = PendingWrites()
    await asyncio.wait_for(pending.drain(), 1)  # nothing pending
    flush = pending.add(db, [(b"k", b"v")])
    drained = asyncio.ensure_future(pending.drain())
    await asyncio.sleep(0.01)
    assert not drained.done()
    asyncio.get_running_loop().call_soon(pending.acked, flush, 0)
    await asyncio.wait_for(drained, 1)
    assert db.get(b"k") == b"v"


def test_the_table_state_reads_and_scans_as_the_memory_state_does(db: Any) -> None:
    """Random puts and deletes over two indexed prefixes, flushed (pending), acknowledged
    (in RocksDB) or still the message's own: every read and every scan of an indexed
    range agrees with a dict that took the same writes."""
    rng = random.Random(7)
    state = TableState(None, "events", indexed=(b"d", b"x"), db_for=lambda _: db)
    state.begin(0)
    memory = MemoryState()
    keys = [kind + b"\x1f%012d\x1fk%d" % (rng.randrange(50), rng.randrange(5))
            for kind in (b"d", b"x", b"m") for _ in range(12)]
    flushes: list[Any] = []
    for round_ in range(60):
        for _ in range(rng.randrange(1, 6)):
            key = rng.choice(keys)
            if rng.random() < 0.3:
                state.delete(key)
                memory.delete(key)
            else:
                value = b"v%d" % round_
                state.put(key, value)
                memory.put(key, value)
        for key in keys:
            assert state.get(key) == memory.get(key), key
        for prefix in (b"d", b"x"):
            start, stop = prefix + b"\x1f%012d" % rng.randrange(25), prefix + b"\x1f~"
            assert list(state.scan(start, stop)) == list(memory.scan(start, stop))
        if rng.random() < 0.6:  # the message ends: its writes go to the changelog
            flushes.append(state.seal())
        while flushes and rng.random() < 0.5:  # the broker acknowledges some of them
            state.pending.acked(flushes.pop(0), round_)
    assert sorted(memory) == sorted(k for k in keys if state.get(k) is not None)

"""The score table's changelog-first writes on a real RocksDB: a flushed message's writes
stay pending (and visible to every read and due-index scan of the partition) until the
changelog acknowledges them, then land in one batch with the offset they bring the DB up
to, in send order whatever order the acknowledgements come in."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rocksdict

from state import tables
from state.faust_adapter import persisted_offset_entry
from state.tables import MessageWrites, PendingWrites

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


def test_reads_see_pending_writes_until_the_ack_puts_them_in_rocksdb(db: Any) -> None:
    db[b"k1"] = b"old"
    db[b"gone"] = b"old"
    pending = PendingWrites()
    flush = pending.add(db, [(b"k1", b"new"), (b"k2", b"v2"), (b"gone", None)])
    reads = MessageWrites(pending)
    assert [reads.get(db, k) for k in (b"k1", b"k2", b"gone")] == [b"new", b"v2", None]
    assert db.get(b"k1") == b"old" and db.get(OFFSET_KEY) is None, "RocksDB waits for the ack"

    pending.acked(flush, 41)
    assert [db.get(k) for k in (b"k1", b"k2", b"gone")] == [b"new", b"v2", None]
    assert db.get(OFFSET_KEY) == b"41", "the offset lands in the same batch"
    assert len(pending) == 0 and pending.flushes == 0
    assert reads.get(db, b"k1") == b"new"


def test_a_message_reads_its_own_writes_over_the_pending_ones(db: Any) -> None:
    pending = PendingWrites()
    pending.add(db, [(b"k", b"flushed")])
    writes = MessageWrites(pending)
    writes.put(b"k", b"mine")
    assert writes.get(db, b"k") == b"mine"
    assert MessageWrites(pending).get(db, b"k") == b"flushed"


def test_due_scans_merge_pending_entries_and_hide_pending_deletes(db: Any) -> None:
    for due, account in [(100, "a"), (200, "b"), (300, "c")]:
        db[_due(due, account)] = b""
    db[tables.account_key("w", "a")] = b"x"
    pending = PendingWrites()
    pending.add(db, [(_due(150, "n"), b""), (_due(200, "b"), None),
                     (tables.account_key("w", "n"), b"x")])
    pending.add(db, [(_due(100, "a"), None), (_due(50, "m"), b"")])

    found = [(due, acc) for _, due, _, acc in tables.due_entries(db, 250, pending)]
    assert found == [(50, "m"), (150, "n")]
    assert [acc for _, _, _, acc in tables.due_entries(db, 250)] == ["a", "b"], \
        "RocksDB alone still holds the old entries"
    assert tables.first_due(db, pending=pending) == 50
    assert tables.first_due(db, after=150, pending=pending) == 300, "200 is deleted"
    assert tables.first_due(db, after=300, pending=pending) is None
    assert tables.count_keys(db, pending) == {"account": 2, "user": 0, "due": 3}


def test_acks_out_of_send_order_never_apply_an_older_batch_over_a_newer_one(db: Any) -> None:
    pending = PendingWrites()
    first = pending.add(db, [(b"k", b"v1"), (b"only-first", b"x")])
    second = pending.add(db, [(b"k", b"v2")])

    pending.acked(second, 11)
    assert db.get(b"k") is None, "the second waits for the first"
    assert MessageWrites(pending).get(db, b"k") == b"v2"

    pending.acked(first, 10)
    assert db.get(b"k") == b"v2" and db.get(b"only-first") == b"x"
    assert db.get(OFFSET_KEY) == b"11"
    assert pending.flushes == 0 and len(pending) == 0


def test_an_applied_batch_keeps_a_newer_pending_value_visible(db: Any) -> None:
    pending = PendingWrites()
    first = pending.add(db, [(b"k", b"v1"), (_due(10, "a"), b"")])
    pending.add(db, [(b"k", b"v2"), (_due(10, "a"), None)])
    pending.acked(first, 5)
    assert db.get(b"k") == b"v1"
    assert MessageWrites(pending).get(db, b"k") == b"v2", "the newer write is still pending"
    assert list(tables.due_entries(db, 100, pending)) == []
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

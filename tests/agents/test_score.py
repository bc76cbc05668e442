"""The score agent's pure parts: state keys and records, the due-index range scan on a
real RocksDB, the per-message write batch, the local-state guard and the event-time
clock rules. The Kafka path is in tests/e2e/test_pipeline.py."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import rocksdict

from agents.score import FUTURE_TOLERANCE_SECONDS, ScoreProcessor, change_key
from state import tables
from state.keyed import TableState
from state.tables import AccountRecord, PartitionClock
from streams.envelope import ENVELOPES, TICK_SKEW_SECONDS, Envelope, Tick, kafka_key
from streams.events import Event, EventType, Source
from streams.settings import Settings


@pytest.fixture
def db(tmp_path: Path) -> Any:
    options = rocksdict.Options(raw_mode=True)
    options.create_if_missing(True)
    database = rocksdict.Rdict(str(tmp_path / "p0.db"), options=options)
    yield database
    database.close()


def _state(db: Any) -> TableState:
    state = TableState(None, "t.by-account", indexed=(tables.DUE,), db_for=lambda _: db)
    state.begin(0)
    return state


def test_account_record_round_trip_keeps_binary_users_and_outbox() -> None:
    record = AccountRecord(
        state=b"\x00state\xff", applied=41, due=1_700_000_000,
        redo=[("u1", b"\x01\x02"), ("u2", b"")],
        outbox=[(40, [b'{"id":"a"}']), (41, [b'{"id":"b"}', b'{"id":"c"}'])],
    )
    again = AccountRecord.from_bytes(record.to_bytes())
    assert again == record
    assert again.outbox_for(41) == [b'{"id":"b"}', b'{"id":"c"}']
    assert again.outbox_for(7) == []


def test_partition_clock_round_trip() -> None:
    clock = PartitionClock(1_700_000_000.5, 12, [(11, [("ws", "a")]), (12, [("ws", "b")])])
    assert PartitionClock.from_bytes(clock.to_bytes()) == clock
    assert clock.recent_for(12) == [("ws", "b")]


def test_keys_separate_kinds_and_refuse_the_separator() -> None:
    assert tables.key_kind(tables.account_key("w", "a")) == tables.ACCOUNT
    assert tables.key_kind(tables.user_key("w", "a", "u")) == tables.USER
    assert tables.parse_due_key(tables.due_key(5, "w", "a|b")) == (5, "w", "a|b")
    with pytest.raises(tables.StateKeyError):
        tables.account_key("w", "bad\x1fid")
    with pytest.raises(tables.StateKeyError):
        tables.user_key("w", "a", "")


def test_due_scan_is_a_key_ordered_range(db: Any) -> None:
    for due, account in [(300, "c"), (100, "a"), (200, "b"), (200, "a2"), (10**9, "far")]:
        db[tables.due_key(due, "w", account)] = b""
    db[tables.account_key("w", "a")] = b"x"  # other kinds never show up in the scan
    db[tables.clock_key(0)] = b"x"
    state = _state(db)
    found = [(due, acc) for _, due, _, acc in tables.due_entries(state, 250)]
    assert found == [(100, "a"), (200, "a2"), (200, "b")]
    assert [acc for _, _, _, acc in tables.due_entries(state, 99)] == []
    assert tables.first_due(state) == 100
    assert tables.first_due(state, after=200) == 300
    assert tables.first_due(state, after=10**9) is None


def test_count_keys_by_kind(db: Any) -> None:
    db[tables.account_key("w", "a")] = b"x"
    db[tables.user_key("w", "a", "u1")] = b"x"
    db[tables.user_key("w", "a", "u2")] = b"x"
    db[tables.due_key(5, "w", "a")] = b""
    assert tables.count_keys(db) == {"account": 1, "user": 2, "due": 1}


def test_message_writes_read_their_own_pending_values(db: Any) -> None:
    db[b"k1"] = b"old"
    writes = _state(db)
    assert writes.get(b"k1") == b"old"
    writes.put(b"k1", b"new")
    writes.put(b"k2", b"v2")
    writes.delete(b"k2")
    assert writes.get(b"k1") == b"new"
    assert writes.get(b"k2") is None
    assert len(writes) == 3
    assert db.get(b"k1") == b"old", "nothing reaches RocksDB before flush"


def test_local_state_of_an_older_unclean_worker_is_discarded_and_trusted_state_kept(
    tmp_path: Path,
) -> None:
    tabledir = tmp_path / "tables"
    partition_db = tabledir / f"{tables.STATE_TABLE}-0.db"
    partition_db.mkdir(parents=True)
    (partition_db / "CURRENT").write_text("x")
    other = tabledir / "resolve-state-0.db"
    other.mkdir()

    # No marker: left by a worker that wrote RocksDB before the changelog and never
    # stopped cleanly (it removed the marker when it started).
    assert tables.discard_untrusted_local_state(tabledir)
    assert not partition_db.exists()
    assert other.exists(), "only this table's state is touched"

    # From now on the directory is trusted, also after a kill -9 (the marker stays).
    partition_db.mkdir()
    assert not tables.discard_untrusted_local_state(tabledir)
    assert not tables.discard_untrusted_local_state(tabledir)
    assert partition_db.exists()


def test_an_empty_directory_is_marked_trusted(tmp_path: Path) -> None:
    tabledir = tmp_path / "absent" / "tables"
    assert not tables.discard_untrusted_local_state(tabledir), "nothing to discard"
    (tabledir / f"{tables.STATE_TABLE}-1.db").mkdir()
    assert not tables.discard_untrusted_local_state(tabledir)


def _processor(replay: bool) -> ScoreProcessor:
    class _Topic:
        def get_topic_name(self) -> str:
            return "t.health-changes"

    return ScoreProcessor(app=None, settings=Settings(replay=replay),  # type: ignore[arg-type]
                          config=None, table=None, changes_topic=_Topic())  # type: ignore[arg-type]


def _envelope(*timestamps: float) -> Envelope:
    events = [
        Event(workspace="w", message_id=f"m{i}", type=EventType.TRACK, timestamp=ts,
              received_at=ts, source=Source.KAFKA, name="Logged In", user_id="u",
              account_id="a")
        for i, ts in enumerate(timestamps)
    ]
    return Envelope("w", "a", events)


def test_replay_clock_moves_only_with_events_and_ticks() -> None:
    processor = _processor(replay=True)
    assert processor._advance(100.0, _envelope(50.0, 120.0)) == 120.0
    assert processor._advance(200.0, _envelope(150.0)) == 200.0, "never backwards"
    assert processor._advance(200.0, Tick(5_000.0, 0)) == 5_000.0
    assert processor._advance(200.0, _envelope()) == 200.0
    # A tick may lead the newest event by replay_tick_max_ahead_seconds, no more.
    ahead = Settings().replay_tick_max_ahead_seconds
    assert processor.tick_limit(5_000.0) == 5_000.0 + ahead


def test_live_clock_never_lags_the_wall_clock_nor_jumps_far_ahead() -> None:
    processor = _processor(replay=False)
    before = time.time()
    assert processor._advance(0.0, _envelope(1_000.0)) >= before
    far = before + 10 * FUTURE_TOLERANCE_SECONDS
    moved = processor._advance(0.0, _envelope(far))
    assert moved <= time.time() + FUTURE_TOLERANCE_SECONDS
    # A tick is bounded like an event before it moves the clock (tick_limit).
    limit = processor.tick_limit(0.0)
    assert time.time() < limit <= time.time() + TICK_SKEW_SECONDS
    assert processor._advance(0.0, Tick(limit, 0)) == limit


def test_changes_are_keyed_like_the_account_messages() -> None:
    assert change_key("acme", "acc-1") == kafka_key("acme", "acc-1")


def test_what_the_core_skips_is_dead_lettered_with_its_reason(db: Any) -> None:
    from scoring.config import load_config

    processor = _processor(replay=True)
    processor.config = load_config(None)
    processor._committed = lambda partition: 0  # type: ignore[method-assign]
    processor.state = _state(db)
    group = Event(workspace="w", message_id="g1", type=EventType.GROUP, timestamp=1.7e9,
                  received_at=1.7e9, source=Source.KAFKA, user_id="u", account_id="a",
                  traits={"salesforce_account_id": "//other.host/x"})
    processor._process(0, 7, ENVELOPES.encode(Envelope("w", "a", [group])))
    dead = [d for d in processor._dead_letters if d.reason == "skipped_by_scoring"]
    assert len(dead) == 1 and "salesforce" in dead[0].detail

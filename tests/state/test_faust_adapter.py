"""What Telltale relies on in Faust's internals, pinned against the installed Faust.

Each test names the behaviour ``state/faust_adapter.py`` depends on; a Faust release that
renames or changes it fails here.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
import mode
import pytest
from faust.stores import rocksdb
from faust.tables import recovery as faust_recovery
from faust.transport import consumer as faust_consumer
from faust.types import TP

from state import faust_adapter


@pytest.fixture
def app(tmp_path: Path) -> faust.App:
    # Used only from async tests, so that Faust takes the test's running event loop.
    return faust.App(f"adapter-{tmp_path.name}", store="rocksdb://", datadir=str(tmp_path),
                     autodiscover=False)


def _table(app: faust.App) -> Any:
    return app.Table("state", partitions=2, key_type=bytes, value_type=bytes)


@dataclass
class _Message:
    tp: TP
    offset: int


@dataclass
class _Event:
    message: _Message


async def test_partition_db_is_that_partitions_own_rocksdb(app: faust.App) -> None:
    table = _table(app)
    db = faust_adapter.partition_db(table, 1)
    db[b"k"] = b"v"
    assert faust_adapter.partition_db(table, 1) is db
    assert faust_adapter.partition_db(table, 0).get(b"k") is None
    assert (Path(app.conf.tabledir) / "state-1.db").is_dir()


async def test_each_partition_db_keeps_the_changelog_offset_it_holds(app: faust.App) -> None:
    table = _table(app)
    tp = TP(table.changelog_topic.get_topic_name(), 1)
    assert table.data.persisted_offset(tp) is None
    table.data.set_persisted_offset(tp, 41)
    assert table.data.persisted_offset(tp) == 41
    assert table.data.persisted_offset(TP(tp.topic, 0)) is None


async def test_a_persisted_offset_written_in_a_batch_is_the_one_faust_reads(
    app: faust.App,
) -> None:
    import rocksdict

    table = _table(app)
    tp = TP(table.changelog_topic.get_topic_name(), 1)
    batch = rocksdict.WriteBatch(raw_mode=True)
    batch.put(b"k", b"v")
    batch.put(*faust_adapter.persisted_offset_entry(57))
    faust_adapter.partition_db(table, 1).write(batch)
    assert table.data.persisted_offset(tp) == 57
    table.data.set_persisted_offset(tp, 58)  # and Faust's own write is the same key
    assert faust_adapter.partition_db(table, 1).get(
        faust_adapter.persisted_offset_entry(0)[0]) == b"58"
    assert list(table.data._visible_keys(faust_adapter.partition_db(table, 1))) == [b"k"]


async def test_changelog_records_a_partition_db_holds_are_not_applied_again(app: faust.App) -> None:
    table = _table(app)
    topic = table.changelog_topic.get_topic_name()
    applied: list[tuple[int, int]] = []
    table.apply_changelog_batch = lambda batch: applied.extend(
        (e.message.tp.partition, e.message.offset) for e in batch)
    table.data.set_persisted_offset(TP(topic, 1), 10)
    faust_adapter.skip_changelog_records_held(table)

    table.apply_changelog_batch([_Event(_Message(TP(topic, 1), offset))
                                 for offset in (9, 10, 11)] + [_Event(_Message(TP(topic, 0), 0))])
    table.apply_changelog_batch([_Event(_Message(TP(topic, 1), 3))])
    assert applied == [(1, 11), (0, 0)]


async def test_recovery_applies_the_changelog_through_the_table_object() -> None:
    # The wrapper is set on the table object, so recovery must call it there.
    assert "table.apply_changelog_batch(" in inspect.getsource(faust_recovery.Recovery)


async def test_the_consumer_tracks_committed_offsets_in_one_mapping() -> None:
    # A consumer object starts its own client thread; its class's source is enough here.
    assert "_committed_offset" in faust_consumer.Consumer.__annotations__
    source = inspect.getsource(faust_consumer.Consumer)
    assert "self._committed_offset = defaultdict(" in source  # made with the consumer
    assert "self._committed_offset.update(" in source  # and updated on each commit


async def test_first_start_runs_the_hook_then_faust(app: faust.App) -> None:
    order: list[str] = []

    async def faust_first_start() -> None:
        order.append("faust")

    async def hook() -> None:
        order.append("hook")

    app.on_first_start = faust_first_start  # type: ignore[method-assign]
    faust_adapter.run_before_first_start(app, hook)
    await app.on_first_start()
    assert order == ["hook", "faust"]
    assert "await self.on_first_start()" in inspect.getsource(mode.Service)


async def test_active_partition_dbs_are_rocksdb_only(app: faust.App) -> None:
    assert faust_adapter.active_partition_dbs(_table(app)) == []  # none assigned yet
    assert callable(rocksdb.Store._dbs_for_actives)
    memory = faust.App("adapter-memory", store="memory://", autodiscover=False)
    assert faust_adapter.active_partition_dbs(memory.Table("counts", partitions=2)) is None


async def test_recovery_remaining_before_any_assignment(app: faust.App) -> None:
    assert faust_adapter.recovery_remaining(app) == 0


async def test_recovery_builds_active_offsets_through_a_replaceable_step(app: faust.App) -> None:
    table = _table(app)
    topic = table.changelog_topic.get_topic_name()
    recovery = app.tables.recovery
    built: list[tuple[str, dict[TP, int | None]]] = []

    async def build_offsets(consumer: Any, tps: Any, destination: Any, title: str) -> None:
        built.append((title, dict(destination)))

    recovery._build_offsets = build_offsets
    asked: list[tuple[str, dict[int, int | None]]] = []

    async def restore(changelog: str, persisted: Any, deadline: float,
                      db_for: Any) -> dict[int, int]:
        asked.append((changelog, dict(persisted)))
        assert db_for(1) is faust_adapter.partition_db(table, 1)
        return {1: 99}

    faust_adapter.restore_before_recovery(app, table, restore)
    ours, other = TP(topic, 1), TP("elsewhere-changelog", 1)
    active = {ours: 41, other: 5}
    await recovery._build_offsets(None, {ours, other}, active, "active")
    standby = {TP(topic, 0): None}
    await recovery._build_offsets(None, set(standby), standby, "standby")
    # Only this table's active partitions are restored; Faust then carries on from there.
    assert asked == [(topic, {1: 41})]
    assert built == [("active", {ours: 99, other: 5}), ("standby", {TP(topic, 0): None})]
    # The step Faust's recovery awaits, with the persisted offsets it starts from.
    source = " ".join(inspect.getsource(faust_recovery.Recovery).split())
    assert 'T(self._build_offsets)( consumer, assigned_active_tps, active_offsets, "active"' \
        in source
    assert "persisted_offset = table.persisted_offset(tp)" in inspect.getsource(
        faust_recovery.Recovery._add)
    assert rocksdb.Store.offset_key == b"__faust\0offset__"

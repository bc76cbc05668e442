"""Every use of a Faust internal, in one place.

Telltale's exactly-once effects, its cheap lag figures and its fast rebuilds rely on
things Faust does but does not promise. Each is reached only here, and
tests/state/test_faust_adapter.py pins each one against the installed Faust, so that an
upgrade that changes them fails in the suite rather than silently in production:

- :func:`partition_db`: a table partition's RocksDB (``Store._db_for_partition``), read
  directly by the resolver and the score agent.
- :func:`skip_changelog_records_held`: a table's ``apply_changelog_batch``, which Faust's
  recovery calls through the table object, wrapped per table.
- :func:`committed_offsets`: the offsets the consumer last committed
  (``Consumer._committed_offset``), which Faust updates on every commit.
- :func:`run_before_first_start`: ``App.on_first_start``, awaited once when the process
  starts the app, before any partition DB is opened.
- :func:`active_partition_dbs`: the RocksDBs of the partitions this worker serves
  (``Store._dbs_for_actives``), for the table-size gauge.
- :func:`recovery_remaining`: changelog records still to replay (the table manager's
  ``recovery``, which Faust's ``TableManagerT`` protocol does not declare).
- :func:`persisted_offset_entry`: the key and value under which a partition DB keeps the
  changelog offset it holds up to (``Store.offset_key``, ``set_persisted_offset``), so the
  score agent can write it in the same RocksDB batch as the records it covers.
- :func:`restore_before_recovery`: the recovery's ``_build_offsets`` step, wrapped so that
  a table's active partitions are first restored in bulk (:mod:`state.restore`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    import faust
    from faust.types import CollectionT
    from rocksdict import Rdict


class _Message(Protocol):
    tp: Any
    offset: int


class _ChangelogEvent(Protocol):
    message: _Message


def partition_db(table: CollectionT, partition: int) -> Rdict:
    """The RocksDB (rocksdict ``Rdict``) of one table partition on this worker.

    Reads only: every write goes through the table so it reaches the changelog.
    """
    # The store behind a RocksDB table; Faust's StoreT does not declare its partitions.
    db: Rdict = cast(Any, table).data._db_for_partition(partition)
    return db


def skip_changelog_records_held(table: Any) -> None:
    """Keep Faust from applying a changelog record to a partition DB that already has it.

    At a hand-over Faust's changelog reader can deliver records that the partition DB
    already holds (this worker's own writes, records it fetched as a standby) after
    newer ones, which rolls those keys back. Every partition DB knows the changelog
    offset it holds up to (Faust's persisted offset, which the table's writes also
    advance); records at or below it are dropped, everything newer is applied as usual.
    """
    apply_batch = table.apply_changelog_batch

    def apply(batch: Iterable[_ChangelogEvent]) -> None:
        held: dict[Any, int] = {}
        fresh = []
        for event in batch:
            tp = event.message.tp
            if tp not in held:
                try:
                    persisted = table.data.persisted_offset(tp)
                except Exception:  # partition DB not openable here: let Faust decide
                    persisted = None
                held[tp] = -1 if persisted is None else int(persisted)
            if event.message.offset > held[tp]:
                fresh.append(event)
        if fresh:
            apply_batch(fresh)

    table.apply_changelog_batch = apply


def persisted_offset_entry(offset: int) -> tuple[bytes, bytes]:
    """The RocksDB key and value by which a partition DB says it holds its changelog up to
    ``offset``: what Faust's ``set_persisted_offset`` puts, and where its recovery starts.

    Written by the score agent inside the write batch of the records the offset covers, so
    the records and the offset that vouches for them land together or not at all.
    """
    from faust.stores.rocksdb import Store

    return Store.offset_key, str(offset).encode()


def active_partition_dbs(table: CollectionT) -> list[Rdict] | None:
    """The RocksDBs of the table partitions this worker serves; None for a store that is
    not RocksDB (in memory)."""
    dbs_for_actives = getattr(cast(Any, table).data, "_dbs_for_actives", None)
    return None if dbs_for_actives is None else list(dbs_for_actives())


def recovery_remaining(app: faust.App) -> int:
    """Changelog records still to replay into this worker's active table partitions (0
    once recovery completed)."""
    recovery = cast(Any, app.tables).recovery  # TableManagerT does not declare it
    return 0 if recovery.completed.is_set() else int(recovery.active_remaining_total())


def committed_offsets(consumer: Any) -> Mapping[Any, int | None]:
    """The offset (next to read) this worker last committed, per assigned partition.

    Faust keeps them in the mapping it consults before committing; reading it avoids a
    broker round trip per look.
    """
    offsets: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
    return offsets


def run_before_first_start(app: faust.App, hook: Callable[[], Awaitable[None]]) -> None:
    """Await ``hook`` when this process starts ``app``, before any partition DB is opened,
    and never merely because some process built the app (Faust has no signal for it)."""
    first_start = app.on_first_start

    async def hook_then_start() -> None:
        await hook()
        await first_start()

    setattr(app, "on_first_start", hook_then_start)  # noqa: B010


def restore_before_recovery(
    app: faust.App, table: CollectionT,
    restore: Callable[[str, Mapping[int, int | None], float, Callable[[int], Rdict]],
                      Awaitable[Mapping[int, int]]],
) -> None:
    """Let ``restore(changelog topic, persisted, deadline, db_for)`` bring
    ``table``'s active partitions up to date from the changelog before Faust's recovery
    replays them.

    Faust's recovery reads the offsets each changelog partition holds up to (its persisted
    offsets) in ``Recovery._build_offsets`` and then replays everything after them, one
    record at a time; ``restore`` is awaited just before, for the active partitions of this
    table, and returns the offset it brought each partition to, from which Faust carries on.
    Faust cuts that step off after ``broker_request_timeout``, so ``restore`` gets a
    deadline well inside it and leaves whatever it has not reached to Faust.
    """
    recovery = cast(Any, app.tables).recovery  # TableManagerT does not declare it
    build_offsets = recovery._build_offsets
    changelog = table.changelog_topic.get_topic_name()
    budget = 0.5 * float(app.conf.broker_request_timeout)

    async def restore_then_build(consumer: Any, tps: Any, destination: Any,
                                 title: str) -> None:
        mine = {tp.partition: tp for tp in tps if tp.topic == changelog}
        if title == "active" and mine:
            # Not before: the store is made the first time it is asked for, and only the
            # running worker may make it (after its local state has been checked).
            store = cast(Any, table).data
            reached = await restore(changelog,
                                    {p: destination.get(tp) for p, tp in mine.items()},
                                    time.monotonic() + budget, store._db_for_partition)
            for p, offset in reached.items():
                before = destination.get(mine[p])
                destination[mine[p]] = offset if before is None else max(before, offset)
        await build_offsets(consumer, tps, destination, title)

    recovery._build_offsets = restore_then_build

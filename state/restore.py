"""Table partitions restored from their changelog in bulk, before Faust's own recovery.

Faust replays a changelog one record at a time through its consumer, conductor and
recovery loop: about 145 µs per record on this project's machine (bench/state_scale.py),
so a worker that lost its disk took minutes per hundred thousand accounts before it served
anything. The records need none of that machinery: each is a key and a value (or a
tombstone) to put into the partition's RocksDB. :func:`restore` reads them with a plain
consumer, many partitions per fetch, and writes each fetched run as one ``WriteBatch``
holding the records *and* the partition's new persisted offset, so the partition DB is at
every moment a prefix of the changelog: a worker killed mid-restore resumes from where it
stopped, and Faust's recovery, which starts from the persisted offset, replays only what
is left.

Records at or below a partition's persisted offset are never read again (the same rule as
:func:`state.faust_adapter.skip_changelog_records_held`), and every record is applied in
changelog order, the last write of a key winning, as Faust's own recovery does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from state.keyed import write_with_offset
from streams.kafka_security import PLAINTEXT, KafkaSecurity

if TYPE_CHECKING:
    from rocksdict import Rdict

log = logging.getLogger(__name__)

#: Records fetched per round; one WriteBatch per partition per round.
FETCH_RECORDS = 20_000
#: Bytes fetched per partition per request.
PARTITION_FETCH_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Restored:
    """What :func:`restore` did: records applied, per partition the persisted offset it
    reached (absent: not touched), and whether it stopped at its deadline."""

    records: int
    offsets: Mapping[int, int]
    seconds: float
    cut_short: bool


async def restore(
    bootstrap: str,
    topic: str,
    persisted: Mapping[int, int | None],
    db_for: Callable[[int], Rdict],
    *,
    deadline: float,
    min_records: int = 0,
    security: KafkaSecurity = PLAINTEXT,
) -> Restored:
    """Apply ``topic``'s records after each partition's ``persisted`` offset (None: none
    yet) up to the partition's end now, into ``db_for(partition)``; stop by ``deadline``
    (``time.monotonic()``). A partition fewer than ``min_records`` behind is left to Faust.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    started = time.monotonic()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
        max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
        fetch_max_bytes=4 * PARTITION_FETCH_BYTES, **security.aiokafka_options())
    await consumer.start()
    records = 0
    reached: dict[int, int] = {}
    try:
        tps = {p: TopicPartition(topic, p) for p in persisted}
        ends = await consumer.end_offsets(list(tps.values()))
        behind = {p: tp for p, tp in tps.items()
                  if ends[tp] - 1 - _offset(persisted[p]) >= max(min_records, 1)}
        if not behind:
            return Restored(0, {}, time.monotonic() - started, False)
        consumer.assign(list(behind.values()))
        for p, tp in behind.items():
            consumer.seek(tp, _offset(persisted[p]) + 1)
        pending = dict(behind)
        while pending and time.monotonic() < deadline:
            fetched = await consumer.getmany(*pending.values(), timeout_ms=500,
                                             max_records=FETCH_RECORDS)
            for tp, batch in fetched.items():
                count, last = _apply(db_for(tp.partition), batch, ends[tp])
                records += count
                if last is not None:
                    reached[tp.partition] = last
                if batch[-1].offset >= ends[tp] - 1:
                    pending.pop(tp.partition, None)
                    consumer.pause(tp)
            for p, tp in list(pending.items()):
                # A compacted tail can end below the end offset: nothing left to read.
                if await consumer.position(tp) >= ends[tp]:
                    pending.pop(p)
        return Restored(records, reached, time.monotonic() - started, bool(pending))
    finally:
        await consumer.stop()


def _offset(value: int | None) -> int:
    return -1 if value is None else int(value)


def _apply(db: Rdict, batch: list[Any], end: int) -> tuple[int, int | None]:
    """The records below ``end`` in order and the persisted offset, as one WriteBatch;
    returns how many it applied and the offset of the last."""
    kept = [record for record in batch if record.offset < end]
    if not kept:
        return 0, None
    write_with_offset(db, ((r.key, r.value) for r in kept), kept[-1].offset)
    return len(kept), kept[-1].offset


__all__ = ["Restored", "restore"]

"""Bulk restore of table partitions from a changelog on the real broker: the partition DB
ends as Faust's one-record-at-a-time replay would leave it, and is a prefix of the
changelog at every step."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import rocksdict
from aiokafka import AIOKafkaProducer

from state.restore import restore
from tests.conftest import CreateTopics

pytestmark = [pytest.mark.integration]

OFFSET_KEY = b"__faust\0offset__"
PARTITIONS = 3


async def send(bootstrap: str, topic: str,
               records: list[tuple[int, bytes, bytes | None]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for future in [await producer.send(topic, value, key=key, partition=p)
                       for p, key, value in records]:
            await future
    finally:
        await producer.stop()


def history(seed: int, count: int) -> list[tuple[int, bytes, bytes | None]]:
    """Writes, overwrites and deletes of a few hundred keys over the partitions."""
    rng = random.Random(seed)
    out: list[tuple[int, bytes, bytes | None]] = []
    for n in range(count):
        key = b"k%04d" % rng.randrange(300)
        value = None if rng.random() < 0.1 else b"v%d" % n
        out.append((int(key[1:]) % PARTITIONS, key, value))
    return out


def replayed(records: list[tuple[int, bytes, bytes | None]],
             partition: int) -> dict[bytes, bytes]:
    """What replaying the partition's records in order leaves."""
    state: dict[bytes, bytes] = {}
    for p, key, value in records:
        if p != partition:
            continue
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    return state


@pytest.fixture
def dbs(tmp_path: Path) -> Iterator[dict[int, rocksdict.Rdict]]:
    opened = {p: rocksdict.Rdict(str(tmp_path / f"p{p}"),
                                 options=rocksdict.Options(raw_mode=True))
              for p in range(PARTITIONS)}
    yield opened
    for db in opened.values():
        db.close()


def content(db: rocksdict.Rdict) -> dict[bytes, bytes]:
    return {bytes(k): bytes(v) for k, v in db.items() if bytes(k) != OFFSET_KEY}


async def test_a_restore_leaves_what_a_replay_of_every_record_would(
        kafka_bootstrap: str, create_topics: CreateTopics, unique_prefix: str,
        dbs: dict[int, rocksdict.Rdict]) -> None:
    topic = f"{unique_prefix}-changelog"
    await create_topics(topic, partitions=PARTITIONS)
    records = history(1, 5_000)
    await send(kafka_bootstrap, topic, records)
    done = await restore(kafka_bootstrap, topic, dict.fromkeys(range(PARTITIONS)),
                         dbs.__getitem__, deadline=time.monotonic() + 60)
    assert done.records == len(records) and not done.cut_short
    for p in range(PARTITIONS):
        count = sum(1 for r in records if r[0] == p)
        assert content(dbs[p]) == replayed(records, p)
        assert dbs[p][OFFSET_KEY] == str(count - 1).encode()
        assert done.offsets[p] == count - 1


async def test_records_at_or_below_the_persisted_offset_are_never_applied_again(
        kafka_bootstrap: str, create_topics: CreateTopics, unique_prefix: str,
        dbs: dict[int, rocksdict.Rdict]) -> None:
    topic = f"{unique_prefix}-changelog"
    await create_topics(topic, partitions=1)
    await send(kafka_bootstrap, topic, [(0, b"a", b"old"), (0, b"b", b"1"), (0, b"a", b"new")])
    # The DB already holds offsets 0-1 and has since written a newer value of "b" that
    # the changelog's offset 1 would roll back.
    dbs[0][b"a"] = b"old"
    dbs[0][b"b"] = b"2"
    dbs[0][OFFSET_KEY] = b"1"
    done = await restore(kafka_bootstrap, topic, {0: 1}, dbs.__getitem__,
                         deadline=time.monotonic() + 60)
    assert done.records == 1
    assert content(dbs[0]) == {b"a": b"new", b"b": b"2"}
    assert dbs[0][OFFSET_KEY] == b"2"


async def test_a_partition_only_a_little_behind_is_left_to_the_usual_recovery(
        kafka_bootstrap: str, create_topics: CreateTopics, unique_prefix: str,
        dbs: dict[int, rocksdict.Rdict]) -> None:
    topic = f"{unique_prefix}-changelog"
    await create_topics(topic, partitions=2)
    await send(kafka_bootstrap, topic, [(0, b"k%d" % n, b"v") for n in range(50)]
               + [(1, b"k%d" % n, b"v") for n in range(500)])
    done = await restore(kafka_bootstrap, topic, {0: None, 1: None}, dbs.__getitem__,
                         deadline=time.monotonic() + 60, min_records=100)
    assert done.offsets == {1: 499} and done.records == 500
    assert content(dbs[0]) == {} and OFFSET_KEY not in dbs[0]


async def test_a_restore_cut_short_by_its_deadline_leaves_a_prefix_to_resume_from(
        kafka_bootstrap: str, create_topics: CreateTopics, unique_prefix: str,
        dbs: dict[int, rocksdict.Rdict]) -> None:
    topic = f"{unique_prefix}-changelog"
    await create_topics(topic, partitions=1)
    records = [(0, b"k%d" % (n % 700), b"v%d" % n) for n in range(60_000)]
    await send(kafka_bootstrap, topic, records)
    first = await restore(kafka_bootstrap, topic, {0: None}, dbs.__getitem__,
                          deadline=time.monotonic())
    assert first.cut_short and first.records == 0 and OFFSET_KEY not in dbs[0]
    # Stopped somewhere (most likely midway): whatever it wrote is a prefix.
    second = await restore(kafka_bootstrap, topic, {0: None}, dbs.__getitem__,
                           deadline=time.monotonic() + 0.3)
    held = int(dbs[0][OFFSET_KEY]) if OFFSET_KEY in dbs[0] else -1
    assert second.records == held + 1
    assert content(dbs[0]) == replayed(records[:held + 1], 0)
    rest = await restore(kafka_bootstrap, topic, {0: held}, dbs.__getitem__,
                         deadline=time.monotonic() + 60)
    assert rest.records == len(records) - held - 1 and not rest.cut_short
    assert content(dbs[0]) == replayed(records, 0)

"""A score worker that starts on an empty directory rebuilds its state from the changelog:
restored in bulk before Faust's recovery (state/restore.py), it ends with exactly the
RocksDB content the worker had before it lost its disk, and exactly what Faust's own
record-by-record recovery rebuilds."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import rocksdict

from devstack.workers import WorkerProcess
from streams.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import failover

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

OFFSET_KEY = b"__faust\0offset__"
PLAN = failover.Plan(accounts=400, users=4, trials=0, partitions=2)


def local_state(data_dir: Path) -> dict[str, dict[bytes, bytes]]:
    """Every partition DB of the state table under ``data_dir``, key by key."""
    found = {}
    for path in sorted(data_dir.rglob("health-state-*.db")):
        db = rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True))
        try:
            found[path.name] = {bytes(k): bytes(v) for k, v in db.items()}
        finally:
            db.close()
    return found


def without_offsets(state: dict[str, dict[bytes, bytes]]) -> dict[str, dict[bytes, bytes]]:
    return {name: {k: v for k, v in db.items() if k != OFFSET_KEY}
            for name, db in state.items()}


async def test_a_worker_without_its_disk_rebuilds_the_same_state_in_bulk(
        settings: Settings, start_worker: Callable[..., WorkerProcess]) -> None:
    # Replay mode: time comes only from the messages, so no clock tick moves a partition's
    # clock record between the snapshots.
    settings = settings.replace(partitions=PLAN.partitions, restore_bulk_records=1,
                                replay=True)
    worker = start_worker(settings, *failover.WORKER_ARGS)
    async with failover.Producer(settings.kafka_bootstrap) as producer:
        await producer.send_all(settings.topics.by_account, failover.state_messages(PLAN))
    await failover.wait_committed(settings, [worker], timeout=120)
    worker.stop()
    before = local_state(settings.data_dir)
    assert len(before) == PLAN.partitions
    assert sum(len(db) for db in before.values()) > PLAN.accounts * (PLAN.users + 1)

    rebuilt = {}
    for bulk in (1, 0):  # in bulk, then Faust's own recovery alone
        shutil.rmtree(settings.data_dir)
        worker = start_worker(settings.replace(restore_bulk_records=bulk),
                              *failover.WORKER_ARGS)
        log = worker.log()
        worker.stop()
        assert ("in bulk" in log) == bool(bulk), log[-3000:]
        rebuilt[bulk] = local_state(settings.data_dir)
    assert without_offsets(rebuilt[1]) == without_offsets(before)
    assert without_offsets(rebuilt[0]) == without_offsets(before)
    # The bulk restore leaves each partition at the changelog's last record, as Faust's
    # own recovery does.
    assert {n: db[OFFSET_KEY] for n, db in rebuilt[1].items()} == \
        {n: db[OFFSET_KEY] for n, db in rebuilt[0].items()}

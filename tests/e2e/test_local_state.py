"""kill -9 a worker that holds state mid-stream and start it again on the same directory:
it keeps its local RocksDB (same DB identity, no "rebuilding" line), Faust's recovery
replays only the changelog records after the offset each partition DB holds (far fewer
than the changelog's), and the run ends with the state and health-change ids of a run
that was never interrupted. The same with the directory lost is tests/e2e/test_crash.py."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from streams.settings import Settings
from tests.e2e.test_pipeline_support import (
    SCORE_WORKER,
    PrepareRun,
    Scenario,
    assert_same_run,
    changelog_topic,
    finished_run,
    kill_9,
    last_offsets,
    produce_messages,
    read_state,
    score_worker_run,
    wait_processed,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import failover

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]

#: Changelog records the worker writes from the second half before it is killed.
BUSY_RECORDS = 300


def _identities(settings: Settings) -> dict[str, str]:
    """Each state partition DB's RocksDB identity (a new one for every DB created)."""
    return {path.parent.name: path.read_text()
            for path in sorted(settings.data_dir.glob("**/health-state-*.db/IDENTITY"))}


async def test_a_killed_worker_keeps_its_local_state_and_replays_only_the_tail(
    kafka_bootstrap: str, start_worker: Any, against_reference: PrepareRun,
) -> None:
    messages, reference, killed = await against_reference(
        Scenario(accounts=60, users=4, days=20, silent_after=5), "k")
    half = len(messages) // 2
    worker, _ = await score_worker_run(kafka_bootstrap, killed, messages[:half], start_worker)
    # The rest arrives at once, and the kill lands while the worker works through it,
    # with changelog writes in flight.
    changelog = changelog_topic(killed)
    before = sum((await last_offsets(kafka_bootstrap, changelog, killed.partitions)).values())
    await produce_messages(kafka_bootstrap, killed.topics.by_account, messages[half:])
    while sum((await last_offsets(kafka_bootstrap, changelog, killed.partitions)).values()) \
            < before + BUSY_RECORDS:
        assert worker.process.alive, worker.log()[-3000:]
        await asyncio.sleep(0.02)
    await kill_9(worker)
    inputs = await last_offsets(kafka_bootstrap, killed.topics.by_account, killed.partitions)
    clocks = (await read_state(kafka_bootstrap, killed)).clocks
    assert any(clocks[p].offset < inputs[p] for p in inputs), \
        "the kill must land while the stream is being processed"

    identities = _identities(killed)
    held = failover.standby_offsets(worker, killed)  # the offset each partition DB holds
    ends = await last_offsets(kafka_bootstrap, changelog, killed.partitions)
    written = sum(end + 1 for end in ends.values())
    tail = sum(ends[p] - held.get(p, -1) for p in ends)
    print(f"killed with {written} changelog records written; the DBs hold {held}, the "
          f"changelog ends at {ends}: {tail} records newer than the DBs")
    assert len(identities) == killed.partitions and len(held) == killed.partitions

    back = start_worker(killed, *SCORE_WORKER)
    log = back.log()
    assert "rebuilding" not in log, "the local state was discarded"
    assert "keeping local state" in log
    assert _identities(killed) == identities, "a partition DB was created anew"
    replayed = failover.replayed_records(log, 0.0, set(range(killed.partitions)))
    print(f"recovery replayed {replayed} changelog records of {written}")
    # The tail is replayed by Faust's recovery or, past restore_bulk_records, restored in
    # bulk just before it: either way from the offset each DB holds.
    bulk = sum(int(n) for n in re.findall(r"score: restored (\d+) changelog records", log))
    assert (replayed or 0) + bulk == tail, "recovery starts at the offset each DB holds"
    assert replayed * 10 < written

    state = await wait_processed(kafka_bootstrap, killed, timeout=150, alive=[back])
    back.stop()
    assert_same_run(reference, await finished_run(kafka_bootstrap, killed, state))

"""kill -9 the worker at random points of a known stream, restart it with and without its
local RocksDB directory, several times: the final state (as the changelog records it) and
the set of emitted health-change ids equal those of an uninterrupted run. The topic may
hold the same id more than once after a crash; consumers deduplicate by id. A restart with
its directory keeps the local state (never ahead of the changelog) and replays only the
changelog's tail; ``TELLTALE_CRASH_SEED`` picks other kill points."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
from typing import Any

import pytest

from tests.e2e.test_pipeline_support import (
    SCORE_WORKER,
    PrepareRun,
    Scenario,
    assert_same_run,
    finished_run,
    kill_9,
    prepare,
    produce_messages,
    read_state,
    wait_processed,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]

KILLS = 5
FEED_SECONDS = 30.0


async def test_kill_9_at_random_points_changes_nothing(
    kafka_bootstrap: str, start_worker: Any, against_reference: PrepareRun,
) -> None:
    messages, reference, crashed = await against_reference(
        Scenario(accounts=24, users=3, days=30, silent_after=6), "c")
    await prepare(kafka_bootstrap, crashed, [])
    # The stream arrives while the worker runs and dies, so every kill lands mid-stream.
    feed = asyncio.create_task(produce_messages(
        kafka_bootstrap, crashed.topics.by_account, messages, spread_seconds=FEED_SECONDS))
    seed = int(os.environ.get("TELLTALE_CRASH_SEED", "20240101"))
    rng = random.Random(seed)
    mid_stream = 0
    worker = start_worker(crashed, *SCORE_WORKER)
    for kill in range(KILLS):
        await asyncio.sleep(rng.uniform(0.5, 3.0))
        await kill_9(worker)
        state = await read_state(kafka_bootstrap, crashed)
        progress = {p: c.offset for p, c in sorted(state.clocks.items())}
        if not feed.done():
            mid_stream += 1
        wipe = kill % 2 == 1  # every other restart loses its local state directory
        if wipe:
            shutil.rmtree(crashed.data_dir)
        arriving = "still arriving" if not feed.done() else "complete"
        print(f"kill {kill + 1}: processed up to offsets {progress}, local state "
              f"{'deleted' if wipe else 'kept'}, input {arriving}")
        worker = start_worker(crashed, *SCORE_WORKER)
        assert "rebuilding" not in worker.log(), "a directory left by a kill -9 is kept"
    await feed
    state = await wait_processed(kafka_bootstrap, crashed, timeout=150, alive=[worker])
    worker.stop()
    result = await finished_run(kafka_bootstrap, crashed, state)
    print(f"seed {seed}: survived {KILLS} kills ({mid_stream} mid-stream); "
          f"{len(result.ids)} changes emitted, {len(result.id_set)} distinct; "
          f"reference {len(reference.id_set)}")

    assert mid_stream >= 3, "the kills must land while the stream is being processed"
    assert_same_run(reference, result)

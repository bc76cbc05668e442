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
import signal
from pathlib import Path
from typing import Any

import pytest

from streams.settings import Settings
from tests.e2e.test_pipeline_support import (
    RunResult,
    Scenario,
    change_ids,
    describe_difference,
    namespaced,
    prepare,
    produce_messages,
    read_state,
    uninterrupted_run,
    wait_processed,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]

WORKER_ARGS = ("--module", "agents.score")
KILLS = 5
FEED_SECONDS = 30.0


async def _kill(worker: Any) -> None:
    os.kill(worker.process.pid, signal.SIGKILL)
    while worker.process.alive:
        await asyncio.sleep(0.05)


async def test_kill_9_at_random_points_changes_nothing(
    settings: Settings, kafka_bootstrap: str, start_worker: Any, tmp_path: Path,
) -> None:
    settings = settings.replace(replay=True)
    messages = Scenario(accounts=24, users=3, days=30, silent_after=6).build(settings.partitions)
    reference = await uninterrupted_run(kafka_bootstrap, namespaced(settings, "r", tmp_path),
                                        messages, start_worker, WORKER_ARGS)

    crashed = namespaced(settings, "c", tmp_path)
    await prepare(kafka_bootstrap, crashed, [])
    # The stream arrives while the worker runs and dies, so every kill lands mid-stream.
    feed = asyncio.create_task(produce_messages(
        kafka_bootstrap, crashed.topics.by_account, messages, spread_seconds=FEED_SECONDS))
    seed = int(os.environ.get("TELLTALE_CRASH_SEED", "20240101"))
    rng = random.Random(seed)
    mid_stream = 0
    worker = start_worker(crashed, *WORKER_ARGS)
    for kill in range(KILLS):
        await asyncio.sleep(rng.uniform(0.5, 3.0))
        await _kill(worker)
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
        worker = start_worker(crashed, *WORKER_ARGS)
        assert "rebuilding" not in worker.log(), "a directory left by a kill -9 is kept"
    await feed
    state = await wait_processed(kafka_bootstrap, crashed, timeout=150, alive=[worker])
    worker.stop()
    result = RunResult(state, await change_ids(kafka_bootstrap, crashed))
    print(f"seed {seed}: survived {KILLS} kills ({mid_stream} mid-stream); "
          f"{len(result.ids)} changes emitted, {len(result.id_set)} distinct; "
          f"reference {len(reference.id_set)}")

    assert mid_stream >= 3, "the kills must land while the stream is being processed"
    assert result.id_set == reference.id_set
    assert state.comparable() == reference.state.comparable(), \
        describe_difference(reference.state, state)

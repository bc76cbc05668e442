"""Workers share the partitions (with standby replicas) and the group changes mid-stream:
two workers of which one is stopped, and three of which one is killed with ``kill -9``
while a fourth joins. Either way the run ends with the same state and health changes as
one worker alone."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from devstack.process import free_port
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


def _assigned(log: str, topic: str) -> bool:
    """Whether Faust's assignment table in ``log`` gives ``topic`` partitions to the worker."""
    return re.search(rf"\|\s*{re.escape(topic)}\s*\|\s*\{{[0-9]", log) is not None


async def test_second_worker_stops_mid_stream_and_the_first_finishes(
    settings: Settings, kafka_bootstrap: str, start_worker: Any, tmp_path: Path,
) -> None:
    settings = settings.replace(replay=True, standby_replicas=1)
    messages = Scenario(accounts=24, users=3, days=30, silent_after=6).build(settings.partitions)
    reference = await uninterrupted_run(kafka_bootstrap, namespaced(settings, "r", tmp_path),
                                        messages, start_worker, WORKER_ARGS)

    shared = namespaced(settings, "s", tmp_path)
    port = free_port()
    second = shared.replace(data_dir=tmp_path / "data-s2", web_port=port,
                            metrics_port=free_port(),
                            public_url=f"http://127.0.0.1:{port}")
    first_worker = start_worker(shared, *WORKER_ARGS)
    second_worker = start_worker(second, *WORKER_ARGS)
    await prepare(kafka_bootstrap, shared, messages)
    # Both must have worked on the stream before one leaves.
    while True:
        state = await read_state(kafka_bootstrap, shared)
        if len(state.clocks) == shared.partitions and all(
            c.offset > 20 for c in state.clocks.values()
        ):
            break
        await asyncio.sleep(0.2)
    second_worker.stop()
    for worker in (first_worker, second_worker):
        assert _assigned(worker.log(), shared.topics.by_account), "both held partitions"
    state = await wait_processed(kafka_bootstrap, shared, timeout=180, alive=[first_worker])
    first_worker.stop()
    result = RunResult(state, await change_ids(kafka_bootstrap, shared))

    assert result.id_set == reference.id_set
    assert state.comparable() == reference.state.comparable(), \
        describe_difference(reference.state, state)


def _worker_settings(shared: Settings, tmp_path: Path, n: int) -> Settings:
    port = free_port()
    return shared.replace(data_dir=tmp_path / f"data-w{n}", web_port=port,
                          metrics_port=free_port(), public_url=f"http://127.0.0.1:{port}")


async def test_three_workers_one_killed_and_one_added_mid_stream(
    settings: Settings, kafka_bootstrap: str, start_worker: Any, tmp_path: Path,
) -> None:
    settings = settings.replace(replay=True, standby_replicas=1, partitions=6)
    messages = Scenario(accounts=36, users=3, days=30, silent_after=6).build(settings.partitions)
    reference = await uninterrupted_run(kafka_bootstrap, namespaced(settings, "r", tmp_path),
                                        messages, start_worker, WORKER_ARGS)

    shared = namespaced(settings, "t", tmp_path)
    await prepare(kafka_bootstrap, shared, [])
    workers = [start_worker(_worker_settings(shared, tmp_path, n), *WORKER_ARGS)
               for n in range(3)]
    feed = asyncio.create_task(produce_messages(
        kafka_bootstrap, shared.topics.by_account, messages, spread_seconds=25.0))
    # All three must have worked on the stream before one dies.
    while True:
        state = await read_state(kafka_bootstrap, shared)
        if len(state.clocks) == shared.partitions and all(
            c.offset > 5 for c in state.clocks.values()
        ):
            break
        await asyncio.sleep(0.2)
    for worker in workers:
        assert _assigned(worker.log(), shared.topics.by_account), "each held partitions"
    killed = workers.pop(1)
    os.kill(killed.process.pid, signal.SIGKILL)
    while killed.process.alive:
        await asyncio.sleep(0.05)
    assert not feed.done(), "the kill must land while the stream is arriving"
    workers.append(start_worker(_worker_settings(shared, tmp_path, 3), *WORKER_ARGS))
    await feed
    state = await wait_processed(kafka_bootstrap, shared, timeout=240, alive=workers)
    assert _assigned(workers[-1].log(), shared.topics.by_account), "the new worker took some"
    for worker in workers:
        worker.stop()
    result = RunResult(state, await change_ids(kafka_bootstrap, shared))

    assert result.id_set == reference.id_set
    assert state.comparable() == reference.state.comparable(), \
        describe_difference(reference.state, state)

"""Workers share the partitions (with standby replicas) and the group changes mid-stream:
two workers of which one is stopped, and three of which one is killed with ``kill -9``
while a fourth joins. Either way the run ends with the same state and health changes as
one worker alone."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from devstack.process import free_port
from streams.settings import Settings
from tests.e2e.test_pipeline_support import (
    SCORE_WORKER,
    PrepareRun,
    Scenario,
    assert_same_run,
    finished_run,
    kill_9,
    prepare,
    produce_messages,
    wait_all_partitions_past,
    wait_processed,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]


def _assigned(log: str, topic: str) -> bool:
    """Whether Faust's assignment table in ``log`` gives ``topic`` partitions to the worker."""
    return re.search(rf"\|\s*{re.escape(topic)}\s*\|\s*\{{[0-9]", log) is not None


def _worker_settings(shared: Settings, tmp_path: Path, n: int) -> Settings:
    """Worker ``n`` of the group on ``shared``'s topics: its own data dir and ports."""
    port = free_port()
    return shared.replace(data_dir=tmp_path / f"data-w{n}", web_port=port,
                          metrics_port=free_port(), public_url=f"http://127.0.0.1:{port}")


async def test_second_worker_stops_mid_stream_and_the_first_finishes(
    kafka_bootstrap: str, start_worker: Any, tmp_path: Path, against_reference: PrepareRun,
) -> None:
    messages, reference, shared = await against_reference(
        Scenario(accounts=24, users=3, days=30, silent_after=6), "s", standby_replicas=1)
    first_worker = start_worker(shared, *SCORE_WORKER)
    second_worker = start_worker(_worker_settings(shared, tmp_path, 2), *SCORE_WORKER)
    await prepare(kafka_bootstrap, shared, messages)
    # Both must have worked on the stream before one leaves.
    await wait_all_partitions_past(kafka_bootstrap, shared, 20)
    second_worker.stop()
    for worker in (first_worker, second_worker):
        assert _assigned(worker.log(), shared.topics.by_account), "both held partitions"
    state = await wait_processed(kafka_bootstrap, shared, timeout=180, alive=[first_worker])
    first_worker.stop()
    assert_same_run(reference, await finished_run(kafka_bootstrap, shared, state))


async def test_three_workers_one_killed_and_one_added_mid_stream(
    kafka_bootstrap: str, start_worker: Any, tmp_path: Path, against_reference: PrepareRun,
) -> None:
    messages, reference, shared = await against_reference(
        Scenario(accounts=36, users=3, days=30, silent_after=6), "t", standby_replicas=1,
        partitions=6)
    await prepare(kafka_bootstrap, shared, [])
    workers = [start_worker(_worker_settings(shared, tmp_path, n), *SCORE_WORKER)
               for n in range(3)]
    feed = asyncio.create_task(produce_messages(
        kafka_bootstrap, shared.topics.by_account, messages, spread_seconds=25.0))
    # All three must have worked on the stream before one dies.
    await wait_all_partitions_past(kafka_bootstrap, shared, 5)
    for worker in workers:
        assert _assigned(worker.log(), shared.topics.by_account), "each held partitions"
    await kill_9(workers.pop(1))
    assert not feed.done(), "the kill must land while the stream is arriving"
    workers.append(start_worker(_worker_settings(shared, tmp_path, 3), *SCORE_WORKER))
    await feed
    state = await wait_processed(kafka_bootstrap, shared, timeout=240, alive=workers)
    assert _assigned(workers[-1].log(), shared.topics.by_account), "the new worker took some"
    for worker in workers:
        worker.stop()
    assert_same_run(reference, await finished_run(kafka_bootstrap, shared, state))

"""kill -9 one of two score workers (standby replicas on) while envelopes arrive on every
partition: a survivor produces the health changes of every partition the killed worker
served, and the run ends with the same change ids and the same state as one worker that
was never interrupted. This is ``bench/failover.py --quick``; the bench adds the timings.

The graceful variant (a worker stopped, not killed) is tests/e2e/test_rebalance.py; a
single worker killed and restarted is tests/e2e/test_crash.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.e2e.test_pipeline_support import describe_difference, read_state

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import failover

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]


async def test_survivor_takes_over_a_killed_workers_partitions(
    kafka_bootstrap: str, tmp_path: Path,
) -> None:
    quick = await failover.quick_check(kafka_bootstrap, tmp_path)
    run, result = quick.run, quick.comparison

    (trial,) = run.trials
    print(trial.line())
    assert trial.moved, "the killed worker served partitions"
    assert set(trial.to_first_change) == set(trial.moved), \
        "a survivor produced changes for every partition of the killed worker"
    assert result.reference >= failover.QUICK.accounts, "every account was assessed"
    assert not result.missing, result.missing[:5]
    assert not result.extra, result.extra[:5]
    assert not result.conflicting, "one id, two different changes: " \
        f"{result.conflicting[:5]}"

    expected = await read_state(kafka_bootstrap, quick.reference)
    actual = await read_state(kafka_bootstrap, run.settings)
    assert actual.comparable() == expected.comparable(), \
        describe_difference(expected, actual)

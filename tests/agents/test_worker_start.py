"""A worker asks the brokers what they will accept before it joins their group: a
session timeout they would turn away ends the start in one line, not in a worker that
rejoins for ever without becoming ready."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack.workers import settings_env
from streams.kafka_admin import session_timeout_limits
from streams.settings import Settings

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]


async def test_the_brokers_say_which_session_timeouts_they_accept(kafka_bootstrap: str) -> None:
    # The development broker keeps Kafka's defaults: 6 s to 30 minutes.
    assert await session_timeout_limits(kafka_bootstrap) == (6.0, 1800.0)


@pytest.mark.timeout(120)
def test_a_session_timeout_below_the_brokers_floor_stops_the_worker_at_once(
        settings: Settings) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **settings_env(settings),
           "TELLTALE_KAFKA_SESSION_TIMEOUT_SECONDS": "3",
           "TELLTALE_KAFKA_HEARTBEAT_INTERVAL_SECONDS": "1"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "agents.cli", "worker"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=90, check=False)
    took = time.monotonic() - started
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line == ("telltale worker: refusing to start: kafka_session_timeout_seconds is 3 "
                    "but the brokers accept 6 to 1800 (group.min.session.timeout.ms, "
                    "group.max.session.timeout.ms)")
    assert took < 60, f"the refusal took {took:.0f} s"

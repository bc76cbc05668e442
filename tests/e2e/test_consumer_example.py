"""examples/consume_health_changes.py against the real broker and the real score agent.

The score agent emits a known portfolio's changes, each with its CloudEvents headers
and its value unchanged; the example, run as a user would run it, handles each change
once, and run again in the same group finds nothing new.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import orjson
import pytest

from streams.cloudevents import health_change_headers
from streams.health_change import validate
from streams.settings import Settings
from tests.e2e.test_pipeline_support import (
    Scenario,
    read_topic,
    score_worker_run,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]
EXAMPLE = "examples/consume_health_changes.py"


def _run_example(bootstrap: str, topic: str, group: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, EXAMPLE, "--bootstrap", bootstrap, "--topic", topic,
         "--group", group, "--idle-seconds", "4"],
        capture_output=True, text=True, timeout=120, check=True)
    return [orjson.loads(line) for line in done.stdout.splitlines()]


async def test_each_change_is_a_cloudevent_and_the_example_handles_it_once(
        settings: Settings, kafka_bootstrap: str, start_worker: Any) -> None:
    settings = settings.replace(replay=True)
    names = settings.topics
    scenario = Scenario(accounts=4, users=2, days=20, silent_after=8)
    await score_worker_run(kafka_bootstrap, settings, scenario.build(settings.partitions),
                           start_worker)

    records = await read_topic(kafka_bootstrap, names.health_changes, settings.partitions)
    assert records
    for record in records:
        change = orjson.loads(record.value)
        validate(change)  # the payload is the plain record, as before
        assert list(record.headers) == health_change_headers(change)

    handled = _run_example(kafka_bootstrap, names.health_changes, f"{settings.app_id}-ex")
    ids = {orjson.loads(r.value)["id"] for r in records}
    assert sorted(line["id"] for line in handled) == sorted(ids)
    assert {line["source"] for line in handled} == {f"/telltale/{scenario.workspace}"}
    assert _run_example(kafka_bootstrap, names.health_changes,
                        f"{settings.app_id}-ex") == []  # offsets were committed

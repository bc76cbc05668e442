"""What the end-to-end tests that disturb a run share: the run they must equal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streams.settings import Settings
from tests.e2e.test_pipeline_support import (
    Message,
    PrepareRun,
    RunResult,
    Scenario,
    namespaced,
    reference_run,
)


@pytest.fixture
def against_reference(settings: Settings, kafka_bootstrap: str, start_worker: Any,
                      tmp_path: Path) -> PrepareRun:
    """``await against_reference(scenario, tag, **changes)``: the stream of ``scenario``,
    the uninterrupted run of it that a disturbed run must equal (on ``settings`` replaying
    history, with ``changes``), and the settings of the run to disturb, on topics, an app
    id and a data dir of its own (tag ``tag``)."""

    async def prepare_run(scenario: Scenario, tag: str, **changes: Any
                          ) -> tuple[list[Message], RunResult, Settings]:
        on = settings.replace(replay=True, **changes)
        messages = scenario.build(on.partitions)
        reference = await reference_run(kafka_bootstrap, on, messages, start_worker, tmp_path)
        return messages, reference, namespaced(on, tag, tmp_path)

    return prepare_run

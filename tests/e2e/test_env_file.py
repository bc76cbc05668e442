"""A worker configured as docker compose and Kubernetes configure it: every setting from an
env file (``NAME=value`` lines, read as compose reads them) and the TOML files from a
config directory, nothing from the test's own environment; it scores a workspace by the
file in that directory."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from devstack.process import spawn
from devstack.workers import WorkerProcess, settings_env
from streams.settings import Settings
from tests.deploy.test_compose import _env_file
from tests.e2e.test_workspaces_e2e import WORKER_ARGS, activity, versions, workspace_file
from tests.fakes.http import RecordingServer

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]


async def test_a_worker_runs_from_an_env_file_and_a_config_directory_alone(
        settings: Settings, kafka_bootstrap: str, create_topics: Any, consume_until: Any,
        produce: Any, tmp_path: Path) -> None:
    slack, hook = await RecordingServer().start(), await RecordingServer().start()
    config = tmp_path / "config"
    (config / "workspaces").mkdir(parents=True)
    (config / "workspaces" / "acme.toml").write_text(
        workspace_file("acme-from-file", slack, hook, healthy=2, watch=1))
    settings = settings.replace(replay=True, workspaces_dir=config / "workspaces")
    env_file = tmp_path / ".env"
    env_file.write_text("# as compose's env_file reads it\n" + "".join(
        f"{name}={value}\n" for name, value in settings_env(settings).items()))
    names = settings.topics
    await create_topics(names.by_account, names.health_changes,
                        partitions=settings.partitions)
    await create_topics(names.events_dlq, names.deliveries_dlq)

    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1",
                   **_env_file(env_file)}
    assert all(name.startswith("TELLTALE_") for name in _env_file(env_file))
    process = spawn("telltale worker", [sys.executable, "-m", "agents.cli", "worker",
                                        *WORKER_ARGS],
                    log_path=tmp_path / "worker.log", env=environment, cwd=tmp_path)
    worker = WorkerProcess(process, settings)
    try:
        await asyncio.to_thread(worker.wait_ready, 180)
        await produce(names.by_account, [(m.key, m.value) for m in
                                         [activity("acme", "a1", 0, first=True)]])
        changes = versions(await consume_until(
            names.health_changes, lambda rs: ("acme", "a1") in versions(rs), timeout=90))
        assert changes[("acme", "a1")][0] == ("acme-from-file", "healthy")
    finally:
        worker.stop()
        await slack.stop()
        await hook.stop()

"""``telltale worker`` as a child process, for the demo and integration tests.

A worker runs in its own process, as in production (Faust owns the event loop and the
signal handlers of the process it runs in). It dies with the process that started it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from agents.worker import READY_MARKER
from devstack.process import DevstackError, ManagedProcess, spawn, tail
from streams.settings import ENV_PREFIX, Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """``TELLTALE_*`` variables that make ``Settings.from_env()`` return ``settings``."""
    env: dict[str, str] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if value is None:
            text = "none"
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        env[ENV_PREFIX + f.name.upper()] = text
    return env


@dataclasses.dataclass
class WorkerProcess:
    process: ManagedProcess
    settings: Settings

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    @property
    def url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    @property
    def metrics_url(self) -> str:
        """Where the worker serves ``/metrics`` (its own port, not the public one)."""
        return f"http://{self.settings.metrics_host}:{self.settings.metrics_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Block until the worker logs that it is ready (partitions assigned, recovered)."""
        deadline = time.monotonic() + timeout
        while READY_MARKER not in self.log():
            if not self.process.alive:
                raise DevstackError(
                    f"worker exited with code {self.process.returncode} before it was "
                    f"ready; last lines of {self.log_path}:\n{tail(self.log_path)}"
                )
            if time.monotonic() >= deadline:
                raise DevstackError(
                    f"worker not ready within {timeout:.0f} s; last lines of "
                    f"{self.log_path}:\n{tail(self.log_path)}"
                )
            time.sleep(0.2)

    def stop(self, timeout: float = 30.0) -> None:
        self.process.stop(timeout=timeout)


def start_worker(settings: Settings, args: Sequence[str] = (), *, log_path: Path,
                 env: Mapping[str, str] | None = None, detached: bool = False,
                 wait: bool = True, ready_timeout: float = 90.0) -> WorkerProcess:
    """Run ``telltale worker ARGS`` configured by ``settings`` (plus ``env``)."""
    full_env = {**os.environ, **settings_env(settings), **(env or {})}
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    argv = [sys.executable, "-m", "agents.cli", "worker", *args]
    process = spawn("telltale worker", argv, log_path=log_path, env=full_env,
                    cwd=Path(__file__).resolve().parent.parent, detached=detached)
    worker = WorkerProcess(process, settings)
    if wait:
        try:
            worker.wait_ready(ready_timeout)
        except BaseException:
            worker.stop(timeout=5)
            raise
    return worker

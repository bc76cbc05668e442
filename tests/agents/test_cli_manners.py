"""``telltale`` treats a user's mistake as one line and a non-zero exit, never a traceback.

Each case runs the command as a user would, in a child process, and reads what it
printed.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from devstack.workers import settings_env
from streams.settings import Settings


def telltale(*args: str, cwd: Path, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agents.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def assert_one_line_error(done: subprocess.CompletedProcess[str], *, says: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("telltale") and says in lines[0], lines[0]


def test_version(tmp_path: Path) -> None:
    done = telltale("--version", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.strip() == f"telltale {version('telltale')}"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("history")
    done = telltale("simulate", "--accounts", "4", "--days", "60", "--out", "events.jsonl",
                    "--outcomes", "outcomes.csv", cwd=folder)
    assert done.returncode == 0, done.stderr
    rows = (folder / "outcomes.csv").read_text().splitlines()
    # Every account renewed: nothing to learn churn from.
    one_class = [rows[0]] + [",".join([*row.split(",")[:2], "renewed", *row.split(",")[3:]])
                             for row in rows[1:]]
    (folder / "renewed.csv").write_text("\n".join(one_class) + "\n")
    return folder


@pytest.mark.parametrize(("args", "says"), [
    (("simulate", "--accounts", "0"), "--accounts: must be at least 1, got 0"),
    (("simulate", "--days", "many"), "--days: expected a whole number, got 'many'"),
    (("backtest", "events.jsonl", "--outcomes", "outcomes.csv", "--horizons", "90,soon"),
     "horizons '90,soon': give non-negative day counts"),
    (("backtest", "events.jsonl", "--outcomes", "outcomes.csv", "--horizons", "-30"),
     "give non-negative day counts"),
    (("backtest", "events.jsonl", "--outcomes", "outcomes.csv", "--columns", "user"),
     "column mapping 'user'"),
    (("calibrate", "events.jsonl", "--outcomes", "renewed.csv", "--jobs", "1",
      "--out", "c.toml", "--json", "c.json", "--report", "report"),
     "calibration needs both churned and retained accounts"),
    (("backtest", "events.jsonl", "--outcomes", "missing.csv", "--jobs", "1"),
     "missing.csv"),
    (("metrics", "events.jsonl", "--outcomes", "outcomes.csv", "--language", "de"),
     "argument --language: must be one of ['en', 'fr'], got 'de'"),
    (("--no-such-option",), "unrecognized arguments"),
])
def test_a_mistake_is_one_line(history: Path, args: tuple[str, ...], says: str) -> None:
    assert_one_line_error(telltale(*args, cwd=history), says=says)


def test_an_invalid_notifications_file_stops_the_worker_in_one_line(
        settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "notifications.toml"
    bad.write_text('[[webhooks]]\nname = "ops"\nurl = "ftp://x"\nsecret = "s"\n'
                   '[[rules]]\nname = "r"\n')
    env = {**settings_env(settings), "TELLTALE_NOTIFICATIONS_CONFIG": str(bad)}
    done = telltale("worker", cwd=tmp_path, env=env)
    assert_one_line_error(done, says="webhooks[0].url must be an http(s) URL")


def _quiet_by_default(stderr: int) -> bool:
    done = subprocess.run(
        [sys.executable, "-c", "from agents.cli import build_parser; print(build_parser("
         "'backtest').parse_args(['backtest', 'e', '--outcomes', 'o']).quiet)"],
        stderr=stderr, stdout=subprocess.PIPE, text=True, timeout=60, check=True)
    return {"True": True, "False": False}[done.stdout.strip()]


def test_progress_bars_only_on_a_terminal() -> None:
    assert _quiet_by_default(subprocess.DEVNULL) is True
    primary, secondary = pty.openpty()
    try:
        assert _quiet_by_default(secondary) is False
    finally:
        os.close(primary)
        os.close(secondary)

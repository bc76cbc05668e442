"""No working default credential outside loopback, and no secret printed in clear."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.settings import DEMO_API_TOKEN, DEMO_WRITE_KEY, Settings, SettingsError

REPO = Path(__file__).resolve().parents[2]
REAL = {"TELLTALE_WRITE_KEYS": "wk_8f3a9c1e7d2b4a60=acme",
        "TELLTALE_API_TOKENS": "at_5e1b7c9d3f2a8e44=acme"}


def _telltale(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TELLTALE_")}
    return subprocess.run([sys.executable, "-m", "agents.cli", *args], cwd=REPO,
                          env={**clean, "PYTHONPATH": str(REPO), **env},
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_demo_credentials_work_on_loopback(host: str) -> None:
    settings = Settings.from_env({"TELLTALE_WEB_HOST": host})
    assert DEMO_WRITE_KEY in settings.write_keys


@pytest.mark.parametrize("environment,problem", [
    ({}, f"write_keys holds the demo credential {DEMO_WRITE_KEY!r}"),
    ({}, f"api_tokens holds the demo credential {DEMO_API_TOKEN!r}"),
    ({"TELLTALE_WRITE_KEYS": ""}, "write_keys is empty"),
    ({"TELLTALE_API_TOKENS": " , "}, "api_tokens is empty"),
    ({"TELLTALE_WRITE_KEYS": f"{REAL['TELLTALE_WRITE_KEYS']},{DEMO_WRITE_KEY}=demo"},
     "write_keys holds the demo credential"),
])
def test_public_bind_refuses_demo_or_missing_credentials(
        environment: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"TELLTALE_WEB_HOST": "0.0.0.0", **environment})
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems


def test_public_bind_with_real_credentials_starts() -> None:
    settings = Settings.from_env({"TELLTALE_WEB_HOST": "0.0.0.0", **REAL})
    assert settings.web_host == "0.0.0.0"


def test_worker_refuses_to_start_in_one_line() -> None:
    result = _telltale("worker", env={"TELLTALE_WEB_HOST": "0.0.0.0",
                                      "TELLTALE_WRITE_KEYS": ""})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("telltale worker: refusing to start: write_keys is empty")
    assert "api_tokens holds the demo credential" in lines[0]


def test_settings_check_masks_every_secret() -> None:
    secrets = {
        "TELLTALE_WRITE_KEYS": "wk_live_secret_1=acme,wk_live_secret_2=globex",
        "TELLTALE_API_TOKENS": "at_live_secret_3=acme",
        "TELLTALE_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/sl_secret_4",
        "TELLTALE_REDIS_URL": "redis://telltale:rd_secret_5@redis.internal:6380/2",
    }
    result = _telltale("settings", "--check", env=secrets)
    assert result.returncode == 0, result.stderr
    for needle in ("secret_1", "secret_2", "secret_3", "sl_secret_4", "rd_secret_5"):
        assert needle not in result.stdout
    shown = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert shown["TELLTALE_WRITE_KEYS"] == "***=acme,***=globex"
    assert shown["TELLTALE_API_TOKENS"] == "***=acme"
    assert shown["TELLTALE_SLACK_WEBHOOK_URL"] == "https://hooks.slack.com/***"
    assert shown["TELLTALE_REDIS_URL"] == "redis://telltale:***@redis.internal:6380/2"
    assert shown["TELLTALE_PARTITIONS"] == "8", "what is not secret prints as it is"


def test_secrets_are_marked_once_on_the_settings() -> None:
    assert Settings.secret_fields() >= {"write_keys", "api_tokens", "slack_webhook_url",
                                        "redis_url"}
    plain = Settings(redis_url="redis://redis:6379/0")
    assert plain.shown("redis_url") == "redis://redis:6379/0", "no password, nothing hidden"
    assert plain.shown("slack_webhook_url") == "None"

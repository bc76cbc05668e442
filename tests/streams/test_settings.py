"""The one settings object: environment parsing, validation that lists every problem,
and a description of every field."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from streams.settings import Settings, SettingsError

REPO = Path(__file__).resolve().parents[2]


def test_defaults_need_no_environment() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.topics.events == "telltale.events"


def test_environment_values_are_typed() -> None:
    settings = Settings.from_env({
        "TELLTALE_BROKER": "kafka://k1:9092,kafka://k2:9093",
        "TELLTALE_PARTITIONS": "12",
        "TELLTALE_TICK_INTERVAL": "2.5",
        "TELLTALE_REPLAY": "yes",
        "TELLTALE_DATA_DIR": "/srv/telltale",
        "TELLTALE_SLACK_WEBHOOK_URL": "none",
        "TELLTALE_TOPIC_PREFIX": "acme",
        "UNRELATED": "ignored",
    })
    assert settings.kafka_bootstrap == "k1:9092,k2:9093"
    assert settings.partitions == 12
    assert settings.tick_interval == 2.5
    assert settings.replay is True
    assert settings.data_dir == Path("/srv/telltale")
    assert settings.slack_webhook_url is None
    assert settings.topics.health_changes == "acme.health-changes"


@pytest.mark.parametrize(("env", "expected"), [
    pytest.param({
        "TELLTALE_PARTITIONS": "many",
        "TELLTALE_REPLAY": "perhaps",
        "TELLTALE_TICK_INTERVAL": "soon",
    }, ("TELLTALE_PARTITIONS: expected an integer, got 'many'",
        "TELLTALE_REPLAY: expected a boolean, got 'perhaps'",
        "TELLTALE_TICK_INTERVAL: expected a number, got 'soon'"), id="unreadable"),
    pytest.param({
        "TELLTALE_PARTITIONS": "0",
        "TELLTALE_WEB_PORT": "70000",
        "TELLTALE_LOG_LEVEL": "loud",
        "TELLTALE_WRITE_KEYS": "no-equals-sign",
        "TELLTALE_SCORING_CONFIG": "/nonexistent/scoring.yaml",
    }, ("partitions must be at least 1", "web_port must be between", "log_level 'loud'",
        "write_keys: expected key=value",
        "scoring_config /nonexistent/scoring.yaml does not exist"), id="out_of_range"),
])
def test_every_problem_is_listed_at_once(env: dict[str, str], expected: tuple[str, ...]) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    message = str(raised.value)
    for problem in expected:
        assert problem in message


def test_overrides_win_over_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env({"TELLTALE_WEB_PORT": "7000"}, web_port=7001,
                                 data_dir=tmp_path)
    assert settings.web_port == 7001
    assert settings.data_dir == tmp_path


def test_pairs_parse_and_blank_entries_are_ignored() -> None:
    assert Settings.parse_pairs(" k1 = ws1 ,, k2=ws2 ") == {"k1": "ws1", "k2": "ws2"}
    with pytest.raises(SettingsError):
        Settings.parse_pairs("k1=")


def test_describe_covers_every_field_with_a_description() -> None:
    rows = Settings.describe()
    assert [env for env, *_ in rows] == [
        "TELLTALE_" + f.name.upper() for f in dataclasses.fields(Settings)
    ]
    for env, type_name, _default, description in rows:
        assert type_name, env
        assert len(description) > 10, env
    described = {env: (type_name, default) for env, type_name, default, _ in rows}
    assert described["TELLTALE_PARTITIONS"] == ("int", 8)


def test_settings_command_prints_every_variable() -> None:
    result = subprocess.run([sys.executable, "-m", "agents.cli", "settings"], cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=True)
    for env, *_ in Settings.describe():
        assert env in result.stdout


def test_settings_check_reports_bad_environment_with_exit_code_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agents.cli", "settings", "--check"], cwd=REPO,
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin", "TELLTALE_PARTITIONS": "x"},
    )
    assert result.returncode == 2
    assert "TELLTALE_PARTITIONS: expected an integer" in result.stderr


@pytest.mark.parametrize("workspace", ["a:b", "acme corp", "-acme", "x" * 65, "w\x1fs"])
def test_workspace_names_are_strict_tokens(workspace: str) -> None:
    with pytest.raises(SettingsError, match="workspace"):
        Settings(write_keys=f"key-1={workspace}", api_tokens="token-1=acme").validate()
    with pytest.raises(SettingsError, match="workspace"):
        Settings(write_keys="key-1=acme", api_tokens=f"token-1={workspace}").validate()


@pytest.mark.parametrize(("session", "heartbeat", "rebalance"), [
    (6.0, 2.5, 20.0), (6.0, 0.0, 20.0), (6.0, 1.0, 0.0), (0.0, 1.0, 20.0)])
def test_failover_timeouts_that_cannot_work_are_refused(session: float, heartbeat: float,
                                                        rebalance: float) -> None:
    with pytest.raises(SettingsError, match="kafka_"):
        Settings(kafka_session_timeout_seconds=session,
                 kafka_heartbeat_interval_seconds=heartbeat,
                 kafka_rebalance_timeout_seconds=rebalance).validate()


def test_the_failover_defaults_are_the_measured_ones() -> None:
    settings = Settings()
    settings.validate()
    assert (settings.kafka_session_timeout_seconds,
            settings.kafka_heartbeat_interval_seconds) == (6.0, 1.0)

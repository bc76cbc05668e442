"""A directory of workspace files: each workspace's own model, Slack and time zone, and
every problem of every file reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.workspaces import WorkspacesConfigError, load_workspaces

ACME = '''
time_zone = "Europe/Paris"
digest_channel = "cs-fr"

[scoring]
version = "acme-3"

[notifications.slack.channels.cs-fr]
webhook_url = "https://hooks.slack.com/services/T0/B0/acme"
'''

GLOBEX = '''
[scoring]
version = "globex-1"

[notifications.slack.channels.default]
webhook_url = "https://hooks.slack.com/services/T0/B1/globex"
'''


def test_each_workspace_has_its_own_model_destinations_and_time_zone(tmp_path: Path) -> None:
    (tmp_path / "acme.toml").write_text(ACME)
    (tmp_path / "globex.toml").write_text(GLOBEX)
    (tmp_path / "README.md").write_text("not a workspace")
    workspaces = load_workspaces(tmp_path)
    assert sorted(workspaces) == ["acme", "globex"]
    acme, globex = workspaces["acme"], workspaces["globex"]
    assert (acme.scoring.version, globex.scoring.version) == ("acme-3", "globex-1")
    assert acme.notifications.slack_channels == {
        "cs-fr": "https://hooks.slack.com/services/T0/B0/acme"}
    assert set(globex.notifications.slack_channels) == {"default"}
    assert (acme.time_zone, acme.digest_channel) == ("Europe/Paris", "cs-fr")
    assert (globex.time_zone, globex.digest_channel) == ("UTC", None)


def test_a_changed_file_changes_only_its_own_revision(tmp_path: Path) -> None:
    (tmp_path / "acme.toml").write_text(ACME)
    (tmp_path / "globex.toml").write_text(GLOBEX)
    before = load_workspaces(tmp_path)
    (tmp_path / "acme.toml").write_text(ACME.replace("acme-3", "acme-4"))
    after = load_workspaces(tmp_path)
    assert after["acme"].revision != before["acme"].revision
    assert after["globex"].revision == before["globex"].revision


def test_every_problem_of_every_file_is_listed(tmp_path: Path) -> None:
    (tmp_path / "acme.toml").write_text(ACME.replace("Europe/Paris", "Mars/Olympus")
                                        .replace('digest_channel = "cs-fr"',
                                                 'digest_channel = "nowhere"'))
    (tmp_path / "globex.toml").write_text("colour = 'blue'\n" + GLOBEX.replace(
        'version = "globex-1"', 'version = ""\nunknown_event_weight = 99'))
    (tmp_path / "initech.toml").write_text("[notifications.slack.channels.x]\n"
                                           "webhook_url = 'ftp://nope'\n")
    (tmp_path / "broken.toml").write_text("time_zone = \n")
    (tmp_path / "bad\tname.toml").write_text("")
    with pytest.raises(WorkspacesConfigError) as raised:
        load_workspaces(tmp_path)
    problems = raised.value.problems
    expected = [
        "acme.toml: time_zone 'Mars/Olympus' is not an IANA time zone",
        "acme.toml: digest_channel 'nowhere' is not a Slack channel",
        "globex.toml: unknown key 'colour'",
        "globex.toml: scoring: version: must be a non-empty string",
        "globex.toml: scoring: unknown_event_weight",
        "initech.toml: notifications: slack.channels.x.webhook_url must be an http(s) URL",
        "broken.toml: cannot read",
        "bad\tname.toml: the workspace name is refused",
    ]
    for start in expected:
        assert any(p.startswith(start) for p in problems), (start, problems)
    assert len(problems) == len(expected), problems


def test_a_missing_directory_is_one_problem(tmp_path: Path) -> None:
    with pytest.raises(WorkspacesConfigError, match="not a directory"):
        load_workspaces(tmp_path / "nope")

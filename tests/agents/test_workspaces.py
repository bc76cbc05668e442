"""A directory of workspace files: each workspace's own model, Slack and time zone, and
every problem of every file reported at once."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from agents import metrics
from agents.sinks.dispatch import OwnerRoutes
from agents.sinks.routing import NotificationConfig
from agents.workspaces import SharedConfig, Workspaces, WorkspacesConfigError, load_workspaces
from devstack.workers import settings_env
from scoring.config import config_from_dict
from streams.settings import Settings

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


# --------------------------------------------------------------------- shared tables


def _shared(channel_url: str = "https://hooks.slack.com/services/T0/B9/shared") -> SharedConfig:
    notifications = NotificationConfig.from_dict(
        {"slack": {"channels": {"shared": {"webhook_url": channel_url}}}})
    return SharedConfig(config_from_dict({"version": "shared-7"}), notifications,
                        OwnerRoutes())


def test_a_table_left_out_is_the_shared_one_and_a_table_given_replaces_it(
        tmp_path: Path) -> None:
    (tmp_path / "acme.toml").write_text(ACME)  # its own scoring and notifications
    (tmp_path / "initech.toml").write_text('time_zone = "Asia/Tokyo"\n')  # neither
    (tmp_path / "globex.toml").write_text('[scoring]\nversion = "globex-1"\n')
    shared = _shared()
    workspaces = load_workspaces(tmp_path, shared)
    acme, initech, globex = (workspaces[w] for w in ("acme", "initech", "globex"))
    # The shared model, read in the workspace's own time zone.
    assert initech.scoring == replace(shared.scoring, locale=replace(
        shared.scoring.locale, time_zone="Asia/Tokyo"))
    assert initech.notifications is shared.notifications
    assert (initech.own_scoring, initech.own_notifications) == (False, False)
    assert globex.scoring.version == "globex-1" and globex.notifications is shared.notifications
    assert "shared" not in acme.notifications.slack_channels, "its own table replaces it"
    assert acme.scoring.version == "acme-3"


def test_notification_tables_a_workspace_cannot_set_are_listed(tmp_path: Path) -> None:
    (tmp_path / "acme.toml").write_text(ACME + '''
[notifications.slak]
token = "x"
[notifications.delivery]
cooldown_hours = 2
queue_size = 5
[notifications.owners."riley@acme.example"]
channel = "nowhere"
''')
    with pytest.raises(WorkspacesConfigError) as raised:
        load_workspaces(tmp_path)
    problems = raised.value.problems
    assert any(p.startswith("acme.toml: notifications: unknown table 'slak'") for p in problems)
    assert any("delivery.queue_size is the worker's" in p for p in problems)
    assert not any("delivery.cooldown_hours is" in p for p in problems), problems
    assert any(p.startswith("acme.toml: notifications: owners.'riley@acme.example'.channel "
                            "'nowhere' is not a configured channel") for p in problems)
    assert len(problems) == 3, problems


def test_start_up_lists_the_shared_files_and_every_workspace_file_together(
        tmp_path: Path) -> None:
    directory = tmp_path / "workspaces"
    directory.mkdir()
    (directory / "acme.toml").write_text(ACME.replace("Europe/Paris", "Nowhere/City"))
    (directory / "globex.toml").write_text("[scoring]\nunknown_event_weight = 99\n")
    scoring = tmp_path / "scoring.toml"
    scoring.write_text("[bands]\nhealthy = 10\nwatch = 20\n")
    settings = Settings(scoring_config=scoring, workspaces_dir=directory)
    with pytest.raises(WorkspacesConfigError) as raised:
        Workspaces.from_settings(settings)
    problems = raised.value.problems
    assert any(p.startswith(f"scoring_config {scoring}: bands") for p in problems), problems
    assert any(p.startswith(f"workspaces_dir {directory}: acme.toml: time_zone")
               for p in problems), problems
    assert any(p.startswith(f"workspaces_dir {directory}: globex.toml: scoring: "
                            "unknown_event_weight") for p in problems), problems
    assert len(problems) == 3, problems


def test_a_workspace_name_must_be_one_a_write_key_can_name(tmp_path: Path) -> None:
    (tmp_path / "-acme.toml").write_text("")
    (tmp_path / ("a" * 65 + ".toml")).write_text("")
    with pytest.raises(WorkspacesConfigError) as raised:
        load_workspaces(tmp_path)
    assert len(raised.value.problems) == 2
    assert all("the workspace name is refused" in p for p in raised.value.problems)


# --------------------------------------------------------------------- changes while running


def _sample(name: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels)


def _registry(tmp_path: Path) -> Workspaces:
    (tmp_path / "acme.toml").write_text(ACME)
    (tmp_path / "globex.toml").write_text(GLOBEX)
    settings = Settings(workspaces_dir=tmp_path)
    return Workspaces.from_settings(settings)


def _rewrite(path: Path, text: str) -> None:
    """Write ``text`` the way a ConfigMap update does: a new file moved into place."""
    staged = path.with_suffix(".new")
    staged.write_text(text)
    os.replace(staged, path)


def test_a_changed_file_applies_to_its_workspace_alone(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    globex = registry.get("globex")
    assert registry.poll() == [], "the first look finds what was loaded"
    before = _sample("telltale_workspace_config_changes_total", workspace="acme",
                     outcome="applied") or 0.0
    _rewrite(tmp_path / "acme.toml", ACME.replace("acme-3", "acme-4"))
    (change,) = registry.poll()
    assert (change.workspace, change.outcome) == ("acme", "applied")
    assert (change.previous_version, change.scoring_version) == ("acme-3", "acme-4")
    assert registry.scoring_for("acme").version == "acme-4"
    assert registry.get("globex") is globex, "another workspace is not touched"
    assert _sample("telltale_workspace_config_changes_total", workspace="acme",
                   outcome="applied") == before + 1
    revision = change.revision
    assert revision is not None
    assert _sample("telltale_workspace_config_info", workspace="acme",
                   scoring_version="acme-4", revision=revision[:12]) == 1.0
    assert _sample("telltale_workspace_config_info", workspace="acme",
                   scoring_version="acme-3", revision=change.previous_revision[:12]  # type: ignore[index]
                   ) is None, "the old version's series is gone"
    (tmp_path / "acme.toml").touch()
    assert registry.poll() == [], "same content, nothing to apply"


def test_an_invalid_new_file_keeps_the_old_config_and_says_why_once(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    registry.poll()
    _rewrite(tmp_path / "acme.toml", ACME.replace("Europe/Paris", "Mars/Olympus"))
    (change,) = registry.poll()
    assert change.outcome == "refused"
    assert change.problems == ("acme.toml: time_zone 'Mars/Olympus' is not an IANA time zone",)
    assert registry.get("acme") is not None and registry.get("acme").time_zone == (  # type: ignore[union-attr]
        "Europe/Paris")
    assert _sample("telltale_workspace_config_refused", workspace="acme") == 1.0
    os.utime(tmp_path / "acme.toml", ns=(1, 1))
    assert registry.poll() == [], "the same bad content is reported once"
    _rewrite(tmp_path / "acme.toml", ACME.replace("acme-3", "acme-5"))
    (fixed,) = registry.poll()
    assert (fixed.outcome, registry.scoring_for("acme").version) == ("applied", "acme-5")
    assert _sample("telltale_workspace_config_refused", workspace="acme") is None


def test_added_and_removed_files_and_a_directory_gone_away(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    registry.poll()
    (tmp_path / "initech.toml").write_text('[scoring]\nversion = "initech-1"\n')
    (tmp_path / "globex.toml").unlink()
    changes = {c.workspace: c.outcome for c in registry.poll()}
    assert changes == {"initech": "added", "globex": "removed"}
    assert registry.scoring_for("initech").version == "initech-1"
    assert registry.scoring_for("globex") is registry.shared.scoring
    assert registry.notifications_for("globex") is registry.shared.notifications
    (tmp_path / "initech.toml").rename(tmp_path / "initech.toml.off")
    (tmp_path / "acme.toml").rename(tmp_path / "acme.off")
    moved = tmp_path.rename(tmp_path.with_name(tmp_path.name + "-gone"))
    try:
        assert registry.poll() == [], "a missing directory is not every file removed"
        assert registry.scoring_for("acme").version == "acme-3"
    finally:
        moved.rename(tmp_path)


def test_the_worker_refuses_to_start_naming_every_problem_on_one_line(tmp_path: Path) -> None:
    directory = tmp_path / "workspaces"
    directory.mkdir()
    (directory / "acme.toml").write_text(ACME.replace("Europe/Paris", "Europe/Pari"))
    (directory / "globex.toml").write_text('[scoring]\nversion = ""\n')
    env = {**os.environ, **settings_env(Settings(data_dir=tmp_path / "data",
                                                 workspaces_dir=directory))}
    # An unreachable broker: the worker must refuse before it ever tries to connect.
    env["TELLTALE_BROKER"] = "kafka://127.0.0.1:9"
    done = subprocess.run([sys.executable, "-m", "agents.cli", "worker"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("telltale worker: refusing to start: ")
    assert "acme.toml: time_zone 'Europe/Pari' is not an IANA time zone" in line
    assert "globex.toml: scoring: version: must be a non-empty string" in line
    assert not (tmp_path / "data").exists(), "nothing was started"


def test_settings_check_shows_each_workspace_in_force_or_every_problem(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from agents.cli import main

    (tmp_path / "acme.toml").write_text(ACME)
    monkeypatch.setenv("TELLTALE_WORKSPACES_DIR", str(tmp_path))
    assert main(["settings", "--check"]) == 0
    out = capsys.readouterr().out
    assert f"TELLTALE_WORKSPACES_DIR={tmp_path}" in out
    assert "workspace acme: scoring version acme-3, time zone Europe/Paris, revision " in out
    (tmp_path / "globex.toml").write_text("colour = 'blue'\n")
    assert main(["settings", "--check"]) == 2
    err = capsys.readouterr().err
    assert f"workspaces_dir {tmp_path}: globex.toml: unknown key 'colour'" in err


def test_a_workspace_has_one_time_zone_for_its_digests_and_its_dates(tmp_path: Path) -> None:
    (tmp_path / "acme.toml").write_text(ACME)
    (tmp_path / "lyon.toml").write_text(
        '[scoring]\nversion = "lyon-1"\n[scoring.locale]\nlanguage = "fr"\ncurrency = "EUR"\n'
        'time_zone = "Europe/Paris"\n')
    (tmp_path / "kyoto.toml").write_text('time_zone = "Asia/Tokyo"\n')
    workspaces = load_workspaces(tmp_path)
    acme, lyon, kyoto = workspaces["acme"], workspaces["lyon"], workspaces["kyoto"]
    assert acme.scoring.locale.time_zone == acme.time_zone == "Europe/Paris"
    assert lyon.time_zone == "Europe/Paris", "the scoring [locale] names it too"
    assert (lyon.scoring.locale.language, lyon.scoring.locale.currency) == ("fr", "EUR")
    assert kyoto.scoring.locale.time_zone == "Asia/Tokyo"
    assert not kyoto.own_scoring
    assert kyoto.scoring.version == SharedConfig.defaults().scoring.version
    (tmp_path / "kyoto.toml").write_text(
        'time_zone = "Asia/Tokyo"\n[scoring.locale]\ntime_zone = "Europe/Paris"\n')
    with pytest.raises(WorkspacesConfigError, match="disagree"):
        load_workspaces(tmp_path)

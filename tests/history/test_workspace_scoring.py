"""Replays and backtests score a workspace's history under its own file's scoring config,
as the worker does; other workspaces keep the shared one."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.workspaces import WorkspacesConfigError
from history.backtest import scoring_config_for
from scoring.config import config_from_dict, load_config
from scoring.replay import Replay
from state.aggregates import DAY
from streams.events import Event, EventType, Source

D0 = 20_000


def _event(workspace: str, n: int) -> Event:
    ts = (D0 + 0.5) * DAY + n
    return Event(workspace, f"{workspace}-{n}", EventType.TRACK, ts, ts, Source.SEGMENT,
                 name="Report Published", user_id="ana", account_id="a")


def test_a_replay_scores_each_workspace_under_its_own_config() -> None:
    own = config_from_dict({"version": "acme-9", "bands": {"healthy": 2, "watch": 1}})
    replay = Replay(load_config(), workspace_configs={"acme": own})
    changes = replay.run([_event("acme", 1), _event("globex", 1)])
    versions = {c.workspace: c.config_version for c in changes}
    assert versions == {"acme": "acme-9", "globex": load_config().version}
    acme = replay.assessment("acme", "a")
    assert acme is not None and acme.band == "healthy", "judged by acme's cut-offs"


def test_the_backtest_takes_the_workspace_file_unless_told_otherwise(tmp_path: Path) -> None:
    (tmp_path / "acme.toml").write_text('[scoring]\nversion = "acme-9"\n')
    (tmp_path / "initech.toml").write_text('time_zone = "Asia/Tokyo"\n')
    explicit = tmp_path / "explicit.toml"
    explicit.write_text('version = "explicit-1"\n')
    default = load_config().version
    assert scoring_config_for(None, tmp_path, "acme").version == "acme-9"
    assert scoring_config_for(None, tmp_path, "initech").version == default
    assert scoring_config_for(None, tmp_path, "globex").version == default
    assert scoring_config_for(explicit, tmp_path, "acme").version == "explicit-1"
    assert scoring_config_for(None, None, "acme").version == default
    (tmp_path / "acme.toml").write_text('[scoring]\nversion = ""\n')
    with pytest.raises(WorkspacesConfigError, match=r"acme\.toml: scoring: version"):
        scoring_config_for(None, tmp_path, "acme")

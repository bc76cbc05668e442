"""The scoring configuration: shipped default, validation listing every problem,
programmatic changes and a TOML round trip."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from scoring.config import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    Curve,
    EventRule,
    ScoringConfig,
    config_from_dict,
    dump_config,
    load_config,
)


def test_shipped_default_matches_the_built_in_defaults() -> None:
    loaded = load_config()
    assert loaded == ScoringConfig()
    assert load_config(DEFAULT_CONFIG_PATH) == loaded
    assert sum(m.weight for m in loaded.metrics.values()) == 100
    assert loaded.events["Report Published"] == EventRule(8, core=True)
    assert loaded.events["Logged In"].weight == 1
    assert [(m.name, m.event, m.due_days) for m in loaded.milestones] == [
        ("workspace_setup", "Dashboard Viewed", 7),
        ("first_report", "Report Published", 14),
        ("team_invited", "Teammate Invited", 21),
        ("first_workflow", "Workflow Completed", 30),
    ]
    assert dict(loaded.renewal.windows) == {"smb": 90, "mid_market": 120, "enterprise": 180}
    assert loaded.version


def test_curve_is_piecewise_linear_and_clamped() -> None:
    c = Curve(((0, 0), (25, 30), (50, 65), (80, 100)))
    assert c(-5) == 0
    assert c(0) == 0
    assert c(12.5) == 15
    assert c(25) == 30
    assert c(65) == pytest.approx(82.5)
    assert c(80) == 100
    assert c(500) == 100


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    text = DEFAULT_CONFIG_PATH.read_text()
    text = text.replace('[events."Logged In"]\nweight = 1', '[events."Logged In"]\nweight = 11')
    text = text.replace("[metrics.support]\nweight = 10", "[metrics.support]\nweight = 15")
    text = text.replace("healthy = 70\nwatch = 40", "healthy = 40\nwatch = 70")
    text = text.replace("ticket_open_days = 5", "ticket_open_days = -5")
    text = text.replace("curve = [[0, 100], [100, 0]]", "curve = [[0, 100], [0, 0]]")
    text = text.replace("account_lost_days = 45", "account_lost_days = 45\nmystery = 1")
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = info.value.problems
    joined = "\n".join(problems)
    assert "events.'Logged In'.weight: must be an integer 1-10, got 11" in joined
    assert "metrics: weights must sum to 100, got 105" in joined
    assert "bands: need 0 < watch < healthy <= 100 (ordered)" in joined
    assert "signals.ticket_open_days: thresholds must be positive, got -5" in joined
    assert "metrics.financial.curve: curve values must be strictly increasing" in joined
    assert "signals.mystery: unknown setting" in joined
    assert len(problems) == 6
    assert str(path) in str(info.value)


def test_missing_metric_and_bad_types_are_reported() -> None:
    raw = tomllib.loads(DEFAULT_CONFIG_PATH.read_text())
    del raw["metrics"]["relationship"]
    raw["bands"]["hysteresis"] = "three"
    raw["renewal"]["windows"]["galactic"] = 10
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw)
    joined = "\n".join(info.value.problems)
    assert "metrics: missing ['relationship']" in joined
    assert "bands.hysteresis: must be a number" in joined
    assert "renewal.windows: unknown segment 'galactic'" in joined
    assert "weights must sum to 100, got 90" in joined


def test_not_toml_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text("version = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_programmatic_change_and_dump_round_trip(tmp_path: Path) -> None:
    base = load_config()
    metrics = dict(base.metrics)
    moved = metrics["relationship"].weight
    metrics["active_seats"] = replace(metrics["active_seats"],
                                      weight=metrics["active_seats"].weight + moved)
    metrics["relationship"] = replace(metrics["relationship"], weight=0)
    changed = replace(
        base,
        version="calibrated-2",
        metrics=metrics,
        bands=replace(base.bands, hysteresis=5),
        events={**base.events, "Board Exported": EventRule(4, core=True)},
    ).validate()
    path = tmp_path / "calibrated.toml"
    path.write_text(dump_config(changed))
    assert load_config(path) == changed
    assert load_config(path).version == "calibrated-2"


def test_validate_rejects_bad_programmatic_config() -> None:
    base = load_config()
    with pytest.raises(ConfigError, match="weights must sum to 100"):
        replace(base, metrics={**base.metrics,
                               "support": replace(base.metrics["support"], weight=1)}).validate()


def test_a_config_error_keeps_its_problems_across_processes() -> None:
    """Backtest jobs raise it in a worker process; it must arrive whole in the parent."""
    import pickle

    error = ConfigError(["metrics: missing ['recency']", "bands: bad"], "workspace.toml")
    again = pickle.loads(pickle.dumps(error))
    assert again.problems == error.problems
    assert str(again) == str(error)
    assert "workspace.toml is invalid (2 problem(s))" in str(again)


def _segment_weights(**moved: int) -> dict[str, int]:
    """The shipped weights with ``moved`` points taken from relationship."""
    weights = {n: m.weight for n, m in load_config().metrics.items()}
    for name, points in moved.items():
        weights[name] += points
        weights["relationship"] -= points
    return weights


def test_a_segment_can_weigh_its_accounts_with_its_own_weights(tmp_path: Path) -> None:
    base = load_config()
    own = _segment_weights(recency=8)
    changed = replace(base, segment_weights={"smb": own}).validate()
    assert changed.weight("recency", "smb") == base.metrics["recency"].weight + 8
    assert changed.weight("recency", "enterprise") == base.metrics["recency"].weight
    assert changed.weight("recency") == base.metrics["recency"].weight
    path = tmp_path / "segments.toml"
    path.write_text(dump_config(changed))
    assert "[segment_weights.smb]" in path.read_text()
    assert load_config(path) == changed


@pytest.mark.parametrize(("weights", "problem"), [
    ({"nobody": _segment_weights()}, "segment_weights.nobody: unknown segment"),
    ({"smb": {"recency": 100}}, "segment_weights.smb: needs a weight for each of"),
    ({"smb": {**_segment_weights(), "recency": 40}}, "segment_weights.smb: weights must "
                                                     "sum to 100"),
    ({"smb": {**_segment_weights(), "recency": -1}}, "must be non-negative integers"),
])
def test_segment_weights_are_checked(weights: dict[str, dict[str, int]], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        config_from_dict({"segment_weights": weights})

"""Backtest: deterministic, evaluated as of each horizon, written as JSON and HTML."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.cli import main as telltale
from history.backtest import (
    MODELS,
    HistorySource,
    ProfitParams,
    Progress,
    replay_history,
    replay_snapshots,
    result_dict,
    run_backtest,
)
from history.importers import OutcomeRecord, read_jsonl, read_outcomes, segment_events
from history.learned import available as learned_available
from history.simulate import simulate, write_simulation
from scoring.config import load_config
from streams.events import Event

ACCOUNTS, DAYS, SEED = 40, 200, 21


@pytest.fixture(scope="module")
def history() -> tuple[list[Event], list[OutcomeRecord]]:
    sim = simulate(accounts=ACCOUNTS, days=DAYS, seed=SEED)
    events = list(segment_events(sim.events(), "demo"))
    outcomes = [OutcomeRecord(o.account_id, o.date, o.outcome, o.arr, o.new_arr, o.segment)
                for o in sim.outcomes]
    return events, outcomes


def _without_timing(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "replay"}


def test_backtest_is_deterministic(history: tuple[list[Event], list[OutcomeRecord]]) -> None:
    events, outcomes = history
    first = run_backtest(events, outcomes, horizons=(60, 30))
    second = run_backtest(list(events), outcomes, horizons=(60, 30))
    assert orjson.dumps(_without_timing(first)) == orjson.dumps(_without_timing(second))
    assert first["replay"]["events"] == len(events)
    h60 = first["horizons"][0]
    assert h60["horizon_days"] == 60 and h60["accounts"] > 20
    assert set(h60["models"]) | set(h60["not_computable"]) == set(MODELS)
    assert h60["best_baseline"] in h60["models"]
    assert sum(b["accounts"] for b in h60["bands"]) == h60["accounts"]


def test_accounts_split_over_processes_give_the_same_result(tmp_path: Path) -> None:
    events, outcomes_path = tmp_path / "history.jsonl", tmp_path / "outcomes.csv"
    write_simulation(simulate(accounts=30, days=150, seed=4), events, outcomes_path)
    outcomes = read_outcomes(outcomes_path)
    config = load_config(None)
    source = HistorySource(events, "demo")

    def backtest(jobs: int) -> tuple[dict[str, Any], str]:
        run, report = replay_history(source, outcomes, config, (60, 30), jobs=jobs)
        assert run.replay_seconds <= run.seconds
        result = result_dict(run, outcomes, config, (60, 30), ProfitParams())
        return _without_timing(result) | {"changes": run.changes}, report.summary()

    alone, three = backtest(1), backtest(3)
    assert orjson.dumps(alone) == orjson.dumps(three)
    assert len(alone[0]["snapshots"]) > 30 and "events kept" in alone[1]
    assert alone[0]["events"] == sum(1 for line in events.read_bytes().splitlines() if line)


def test_each_assessment_only_sees_the_past(
    history: tuple[list[Event], list[OutcomeRecord]]
) -> None:
    """Appending the future (anything after the first horizon) must not change a
    snapshot: assessments are taken as of their moment, in event time."""
    events, outcomes = history
    config = load_config(None)
    full = replay_snapshots(events, outcomes, config, (60,))
    some = [o for o in outcomes if o.date <= date(2025, 6, 15)]
    assert some
    cut = min(o.epoch for o in some) - 60 * 86_400
    early = [o for o in some if o.epoch - 60 * 86_400 == cut]
    truncated = replay_snapshots([e for e in events if e.timestamp < cut], early, config, (60,))
    by_key = {s.account_id: s for s in full.snapshots}
    assert truncated.snapshots
    for s in truncated.snapshots:
        assert s.score == by_key[s.account_id].score
        assert s.components == by_key[s.account_id].components


def test_a_weekly_grid_gives_the_daily_scores(
    history: tuple[list[Event], list[OutcomeRecord]]
) -> None:
    """Snapshots are exact assessments at their moment, so the replay's evaluation grid
    (what the larger backtests coarsen for speed) barely matters to the scores."""
    events, outcomes = history
    config = load_config(None)
    daily = replay_snapshots(events, outcomes, config, (90, 60, 30), interval_days=1)
    weekly = replay_snapshots(events, outcomes, config, (90, 60, 30), interval_days=7)
    a = {(s.account_id, s.horizon_days): s.score for s in daily.snapshots}
    b = {(s.account_id, s.horizon_days): s.score for s in weekly.snapshots}
    assert a.keys() == b.keys()
    same = sum(1 for k in a if a[k] == b[k])
    print(f"\nweekly vs daily grid: {same} of {len(a)} snapshot scores identical, "
          f"largest difference {max(abs(a[k] - b[k]) for k in a)} points")
    assert same >= 0.9 * len(a)
    assert max(abs(a[k] - b[k]) for k in a) <= 5


def test_progress_bar_goes_to_its_stream(
    history: tuple[list[Event], list[OutcomeRecord]]
) -> None:
    events, outcomes = history
    stream = io.StringIO()
    run_backtest(events[:20_000], outcomes, horizons=(30,), progress=Progress(stream))
    text = stream.getvalue()
    assert "replay [" in text and "100%" in text and text.endswith("\n")


def test_cli_writes_json_and_a_report_whose_charts_exist(tmp_path: Path) -> None:
    sim = simulate(accounts=ACCOUNTS, days=DAYS, seed=SEED)
    events_path = tmp_path / "events.jsonl"
    outcomes_path = tmp_path / "outcomes.csv"
    write_simulation(sim, events_path, outcomes_path)
    out_json = tmp_path / "bt.json"
    folder = tmp_path / "report"
    code = telltale(["backtest", str(events_path), "--outcomes", str(outcomes_path),
                     "--workspace", "demo", "--horizons", "60,30", "--json", str(out_json),
                     "--report", str(folder), "--quiet", "--intervention-cost", "750"])
    assert code == 0
    result = orjson.loads(out_json.read_bytes())
    assert result["params"]["intervention_cost"] == 750
    assert [h["horizon_days"] for h in result["horizons"]] == [60, 30]
    # the file path gives the same figures as the Python API on the same events
    events = list(segment_events(sim.events(), "demo"))
    outcomes = [OutcomeRecord(o.account_id, o.date, o.outcome, o.arr, o.new_arr, o.segment)
                for o in sim.outcomes]
    from history.evaluation import ProfitParams

    api = run_backtest(events, outcomes, horizons=(60, 30),
                       params=ProfitParams(intervention_cost=750))
    assert result["horizons"] == orjson.loads(orjson.dumps(api["horizons"]))

    page = folder / "index.html"
    html = page.read_text(encoding="utf-8")
    referenced = re.findall(r"<img src='([^']+)'", html)
    assert len(referenced) >= 6  # lift, scores, bands and quintiles at each horizon
    for name in referenced:
        svg = folder / name
        assert svg.exists(), name
        root = ET.fromstring(svg.read_text(encoding="utf-8"))
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert root.find(".//{http://www.w3.org/2000/svg}polyline") is not None or \
            root.find(".//{http://www.w3.org/2000/svg}rect") is not None
    assert "lift_60d.svg" in referenced and "bands_60d.svg" in referenced
    assert "Lift in the riskiest 10%" in html


def test_calibrate_cli_writes_a_loadable_config_and_an_out_of_time_report(
    tmp_path: Path,
) -> None:
    sim = simulate(accounts=90, days=300, seed=8)
    events_path = tmp_path / "events.jsonl.gz"
    outcomes_path = tmp_path / "outcomes.csv"
    write_simulation(sim, events_path, outcomes_path)
    config_path = tmp_path / "calibrated.toml"
    out_json = tmp_path / "cal.json"
    folder = tmp_path / "cal-report"
    code = telltale(["calibrate", str(events_path), "--outcomes", str(outcomes_path),
                     "--workspace", "demo", "--horizons", "60", "--interval-days", "30",
                     "--out", str(config_path), "--json", str(out_json),
                     "--report", str(folder), "--quiet"])
    assert code == 0
    config = load_config(config_path)
    assert "+cal." in config.version
    assert sum(m.weight for m in config.metrics.values()) == 100
    result = orjson.loads(out_json.read_bytes())
    assert result["calibrated_config_version"] == config.version
    assert result["import"].startswith(f"{sum(1 for _ in read_jsonl(events_path)):,} events kept")
    split = date.fromisoformat(result["calibration"]["split_date"])
    assert all(date.fromisoformat(s["outcome_date"]) > split for s in result["snapshots"])
    (h,) = result["horizons"]
    assert "calibrated" in h["models"] and h["bands_calibrated"]
    html = (folder / "index.html").read_text(encoding="utf-8")
    assert "Calibrated band at the time" in html and "Learnt from" in html
    # the learnt churn probability, checked on the later renewals only
    check = result["probability_check"]
    assert check["accounts"] == h["accounts"]
    assert 0.0 <= check["brier"] <= 1.0 and 0.0 <= check["brier_training_rate"] <= 1.0
    curve = check["reliability"]
    assert sum(r["accounts"] for r in curve) == h["accounts"]
    assert [r["predicted"] for r in curve] == sorted(r["predicted"] for r in curve)
    assert "Churn probability, tested out of time" in html
    assert "comparisons" in h and h["comparisons"]["calibrated"]["baseline"] == h["best_baseline"]
    # the learned ceiling sits beside them whenever the ml extra is installed
    assert ("learned_boosting" in h["models"]) == learned_available()
    assert ("of the learnable signal" in html) == learned_available()


def test_an_account_renewing_twice_is_assessed_for_each_renewal_with_its_own_outcome(
    history: tuple[list[Event], list[OutcomeRecord]],
) -> None:
    """Accounts renew every year: an account with two outcomes gets a snapshot per
    outcome and horizon, each labelled with its own outcome (not the last one's)."""
    events, outcomes = history
    first = outcomes[0]
    earlier = OutcomeRecord(first.account_id, date.fromordinal(first.date.toordinal() - 60),
                            "churned" if first.outcome != "churned" else "renewed", first.arr)
    run = replay_snapshots(events, [earlier, *outcomes], load_config(None), (30,), 1.0)
    mine = sorted((s for s in run.snapshots if s.account_id == first.account_id),
                  key=lambda s: s.at)
    assert [(s.outcome_date, s.outcome) for s in mine] == [
        (earlier.date.isoformat(), earlier.outcome), (first.date.isoformat(), first.outcome)]
    assert len({s.key for s in run.snapshots}) == len(run.snapshots)
    # the other accounts are assessed exactly as without the extra outcome
    alone = replay_snapshots(events, outcomes, load_config(None), (30,), 1.0)
    assert [(s.key, s.score) for s in alone.snapshots] == [
        (s.key, s.score) for s in run.snapshots if s.key != mine[0].key]

"""Does the score predict churn? On a simulated portfolio with known, noisily announced
churners: the shipped score against an honest activity baseline at 60 days, then the
score calibrated on the earlier renewals against the shipped one on the later renewals.

The portfolio: 400 accounts over a year, 15% of renewals churn and 8% contract. About a
quarter of churners show nothing beforehand, the others some mix of decaying usage, a
champion who stops logging in, ticket spikes, failing payments, NPS detractors and missed
meetings, starting anywhere from two weeks to half a year before renewal; a share of
renewing accounts go through the same troubles. The figures are printed (``-s``).
Replays use a weekly evaluation grid: snapshot scores are exact assessments at their
moment whatever the grid (see test_backtest).

Seed 1 is the first seed tried, and these tests pin what it shows so that a change to
the core or the simulator that moves the figures is seen. The advantage is real but
modest, and top-decile lift over some thirty-five accounts is noisy; with the same sizes,
at 60 days on all renewals (score / active-users baseline / logins baseline):

- seed 1: AUC 0.749 / 0.652 / 0.747, lift 3.40x / 2.96x / 2.88x;
- seed 2: AUC 0.692 / 0.670 / 0.675, lift 3.14x / 3.48x / 3.11x (the baseline wins lift);
- seed 3: AUC 0.663 / 0.642 / 0.670, lift 2.78x / 2.76x / 2.83x (a tie).

Out of time, calibration raised lift on seeds 1 and 3 (3.07x → 3.33x, 2.21x → 2.67x) and
left it level on seed 2 (2.69x → 2.64x); AUC rose on seeds 1 and 2 and fell on seed 3.
"""

from __future__ import annotations

from typing import Any

import pytest

from history.calibrate import run_calibration
from history.evaluation import ProfitParams
from history.importers import OutcomeRecord, segment_events
from history.report import terminal_summary
from history.simulate import simulate
from scoring.config import config_from_dict, dump_config, load_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ACCOUNTS, DAYS, SEED = 400, 365, 1


def _line(name: str, m: dict[str, Any]) -> str:
    return (f"  {name:<24} AUC {m['auc']:.3f}  top-decile lift {m['top_decile_lift']:.2f}x  "
            f"precision {m['top_decile_precision']:.1%}  profit@10% ${m['profit_top_decile']:,.0f}")


def _sixty_days_before(horizons: list[dict[str, Any]], heading: str) -> dict[str, Any]:
    """The models' figures on the renewals of ``horizons`` 60 days before, printed under
    ``heading``."""
    (h,) = [h for h in horizons if h["horizon_days"] == 60]
    print(f"\n{heading} {h['accounts']} renewals, 60 days before ({h['churned']} churned, "
          f"{h['base_rate']:.1%}):")
    for name, m in h["models"].items():
        print(_line(name, m))
    return h["models"]


@pytest.fixture(scope="module")
def calibrated() -> tuple[Any, dict[str, Any]]:
    sim = simulate(accounts=ACCOUNTS, days=DAYS, seed=SEED)
    events = list(segment_events(sim.events(), "demo"))
    outcomes = [OutcomeRecord(o.account_id, o.date, o.outcome, o.arr, o.new_arr, o.segment)
                for o in sim.outcomes]
    return run_calibration(events, outcomes, load_config(None), (90, 60, 30), ProfitParams(),
                           interval_days=7)


def test_default_score_beats_the_activity_baseline_at_60_days(
    calibrated: tuple[Any, dict[str, Any]]
) -> None:
    _, result = calibrated
    models = _sixty_days_before(result["all_renewals"], "All")
    score = models["score"]
    active = models["baseline_active_users"]
    logins = models["baseline_logins"]
    assert score["top_decile_lift"] > active["top_decile_lift"]
    assert score["auc"] > active["auc"]
    # The score is not just logins in disguise either.
    assert score["top_decile_lift"] > logins["top_decile_lift"]
    assert score["profit_top_decile"] > max(active["profit_top_decile"],
                                            logins["profit_top_decile"])


def test_calibration_improves_the_score_out_of_time(
    calibrated: tuple[Any, dict[str, Any]]
) -> None:
    calibration, result = calibrated
    models = _sixty_days_before(result["horizons"], f"Out of time, after {calibration.split_date}:")
    default = models["score"]
    tuned = models["calibrated"]
    print("\n" + calibration.explanation)
    print("\n" + terminal_summary(result))
    assert tuned["top_decile_lift"] > default["top_decile_lift"]
    assert tuned["auc"] > default["auc"]
    # The new config is a real, loadable scoring config with its own version.
    config = calibration.config
    assert config.version != load_config(None).version
    assert sum(m.weight for m in config.metrics.values()) == 100
    import tomllib

    assert config_from_dict(tomllib.loads(dump_config(config))) == config
    assert calibration.explanation.startswith("Learnt from")

"""Calibration fits a segment's own weights when its accounts churn for other reasons
than the portfolio's, keeps them only when they pass an out-of-time check inside the
training outcomes, and says so either way."""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

from history.backtest import Snapshot
from history.calibrate import SEGMENT_MIN_ROWS, calibrate, explain
from scoring.config import dump_config, load_config

CONFIG = load_config(None)
SPLIT = date(2025, 6, 30)
RECENCY = CONFIG.metrics["recency"].curve


def _snapshot(i: int, segment: str, drivers: dict[str, float], rng: random.Random,
              ) -> Snapshot:
    """One renewal: every component's share drawn at random; the churn odds fall with
    the ``drivers``' shares (component → strength)."""
    shares = {name: rng.uniform(0.1, 0.9) for name in CONFIG.metrics}
    days = round(rng.uniform(0, 150))
    shares["recency"] = RECENCY(days) / 100.0
    z = 1.5 + sum(k * (shares[n] - 0.5) * 8 for n, k in drivers.items())
    churned = rng.random() < 1 / (1 + math.exp(z))  # more of a driver, less churn
    components = {}
    for name, m in CONFIG.metrics.items():
        components[name] = {"points": round(shares[name] * m.weight), "weight": m.weight,
                            "value": float(days) if name == "recency" else shares[name]}
    outcome = date(2025, 1, 1) + timedelta(days=i % 270)  # training to the end of June
    return Snapshot(
        account_id=f"{segment}-{i:04d}", horizon_days=30, at=0.0, score=50, band="watch",
        components=components, signals=[], active_users_30d=1, logins_30d=1, seats=1,
        arr=1000.0, outcome="churned" if churned else "renewed",
        outcome_date=outcome.isoformat(), segment=segment, scored_segment=segment)


def _portfolio(segments: dict[str, dict[str, float]], per_segment: int = 1500,
               seed: int = 3) -> list[Snapshot]:
    rng = random.Random(seed)
    return [_snapshot(i, seg, drivers, rng) for seg, drivers in segments.items()
            for i in range(per_segment)]


def test_segments_that_churn_for_their_own_reasons_get_their_own_weights() -> None:
    rows = _portfolio({"smb": {"recency": 1.0}, "enterprise": {"support": 1.0}})
    calibration = calibrate(rows, CONFIG, SPLIT)
    story = calibration.story
    assert story is not None
    fits = {f.segment: f for f in story.segments}
    portfolio = dict(zip(story.names, story.after, strict=True))
    smb, enterprise = fits["smb"], fits["enterprise"]
    assert smb.weights is not None and enterprise.weights is not None
    smb_w = dict(zip(story.names, smb.weights, strict=True))
    ent_w = dict(zip(story.names, enterprise.weights, strict=True))
    assert smb_w["recency"] > portfolio["recency"] > ent_w["recency"]
    assert ent_w["support"] > portfolio["support"] > smb_w["support"]
    for f in (smb, enterprise):
        assert f.auc_own is not None and f.auc_portfolio is not None
        assert f.auc_own > f.auc_portfolio and f.gain_interval is not None
        assert f.gain_interval[0] > 0
    # the config scores each segment with them, and writes them out
    assert calibration.config.weight("recency", "smb") == smb_w["recency"]
    assert calibration.config.weight("support", "enterprise") == ent_w["support"]
    assert calibration.config.weight("support", "mid_market") == portfolio["support"]
    assert "[segment_weights.enterprise]" in dump_config(calibration.config)
    said = explain(story)
    assert "Small-business accounts weigh with weights of their own (" in said
    assert "Enterprise accounts weigh with weights of their own (" in said
    written = {s["segment"]: s for s in calibration.to_dict()["segments"]}
    assert written["smb"]["weights"] == smb_w
    assert written["smb"]["check"]["auc_own"] > written["smb"]["check"]["auc_portfolio"]


def test_segments_that_churn_alike_keep_the_portfolio_weights() -> None:
    rows = _portfolio({"smb": {"recency": 1.0}, "enterprise": {"recency": 1.0}})
    calibration = calibrate(rows, CONFIG, SPLIT)
    assert calibration.story is not None
    fits = calibration.story.segments
    assert [f.segment for f in fits] == ["smb", "enterprise"]
    assert all(f.weights is None and f.auc_own is not None for f in fits)
    assert calibration.config.segment_weights == {}
    said = explain(calibration.story)
    assert ("Enterprise accounts keep the portfolio's weights: weights of their own, fitted "
            "on their earlier outcomes, did not rank the churners of the later ones clearly "
            "better (AUC ") in said


def test_a_segment_with_too_few_churners_is_not_fitted_alone() -> None:
    rows = _portfolio({"smb": {"recency": 1.0}})
    rows += _portfolio({"enterprise": {"support": 1.0}}, per_segment=60, seed=4)
    calibration = calibrate(rows, CONFIG, SPLIT)
    assert calibration.story is not None
    enterprise = {f.segment: f for f in calibration.story.segments}["enterprise"]
    assert enterprise.weights is None and enterprise.auc_own is None
    assert enterprise.churned_rows < SEGMENT_MIN_ROWS
    assert "enterprise" not in calibration.config.segment_weights
    assert (f"are too few to fit them alone ({SEGMENT_MIN_ROWS} of each are needed)"
            in explain(calibration.story))


def test_a_segment_whose_training_outcomes_are_of_one_date_cannot_be_checked() -> None:
    """As in a history judged at one cut-off: no later outcomes to check weights on."""
    rows = _portfolio({"smb": {"recency": 1.0}})
    for s in rows:
        s.outcome_date = "2025-03-01"
    calibration = calibrate(rows, CONFIG, SPLIT)
    assert calibration.story is not None
    (smb,) = calibration.story.segments
    assert smb.outcome == "one_period" and smb.weights is None
    assert ("Small-business accounts keep the portfolio's weights: their training outcomes "
            "leave no later ones to check weights of their own on.") in explain(
                calibration.story)

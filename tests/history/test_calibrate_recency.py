"""Calibration learns how long an account may stay quiet before its recency points are
gone: it stretches the recency curve when the history says so, and only then."""

from __future__ import annotations

import random
from datetime import date

from history.backtest import Snapshot
from history.calibrate import calibrate, explain
from scoring.config import load_config

CONFIG = load_config(None)
SPLIT = date(2025, 6, 30)


def _snapshots(churned_after_days: int, seed: int = 3) -> list[Snapshot]:
    """One-person accounts quiet for 0-365 days; those quiet longer than
    ``churned_after_days`` churn (nine in ten), the others renew (nine in ten). Every
    other component is the same for everyone."""
    rng = random.Random(seed)
    out = []
    for i in range(600):
        days = rng.randint(0, 365)
        churned = (days > churned_after_days) == (rng.random() < 0.9)
        components = {
            name: {"points": m.weight // 2, "weight": m.weight, "value": 1.0}
            for name, m in CONFIG.metrics.items()
        }
        recency = CONFIG.metrics["recency"]
        components["recency"] = {"points": round(recency.weight * recency.curve(days) / 100),
                                 "weight": recency.weight, "value": float(days)}
        out.append(Snapshot(
            account_id=f"a{i:03d}", horizon_days=30, at=0.0, score=50, band="watch",
            components=components, signals=[], active_users_30d=0, logins_30d=0, seats=1,
            arr=1000.0, outcome="churned" if churned else "renewed",
            outcome_date=date(2025, 3 if i % 3 else 9, 1).isoformat(), segment=None))
    return out


def test_a_history_whose_churners_stayed_quiet_past_the_curve_stretches_it() -> None:
    calibration = calibrate(_snapshots(churned_after_days=270), CONFIG, SPLIT)
    shipped = CONFIG.metrics["recency"].curve.points
    learnt = calibration.config.metrics["recency"].curve.points
    assert learnt[-1][0] > shipped[-1][0]
    assert [p for _, p in learnt] == [p for _, p in shipped]  # the same shape, longer
    said = explain(calibration.story)
    assert (f"Recency's points now run out after {learnt[-1][0]:g} days without use "
            f"instead of {shipped[-1][0]:g}") in said
    assert calibration.config.metrics["recency"].weight > CONFIG.metrics["recency"].weight
    assert calibration.to_dict()["recency_curve_last_day"] == {
        "before": shipped[-1][0], "after": learnt[-1][0]}


def test_a_history_whose_churners_left_within_the_curve_keeps_it() -> None:
    calibration = calibrate(_snapshots(churned_after_days=45), CONFIG, SPLIT)
    assert calibration.config.metrics["recency"].curve == CONFIG.metrics["recency"].curve
    assert "Recency's points now run out" not in explain(calibration.story)

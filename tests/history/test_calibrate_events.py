"""Calibration weighs the events again: one that went with staying counts more, one
that went with churning less, one used alike about the same, rare ones keep theirs."""

from __future__ import annotations

import random
from datetime import date

from history.backtest import Snapshot, Usage
from history.calibrate import calibrate, event_weights, explain
from scoring.config import load_config

CONFIG = load_config(None)
SPLIT = date(2025, 6, 30)
KEEPS, NOISE, WARNS = "Report Published", "Dashboard Viewed", "Export Created"


def _snapshots(seed: int = 5) -> list[Snapshot]:
    """Accounts of four seats; those that stayed published reports, everyone viewed
    dashboards alike, and exports were what the leaving accounts did (moving out)."""
    rng = random.Random(seed)
    out = []
    for i in range(800):
        churned = rng.random() < 0.3
        used = {
            KEEPS: rng.randint(0, 4) if churned else rng.randint(3, 12),
            NOISE: rng.randint(5, 20),
            WARNS: rng.randint(2, 8) if churned else rng.randint(0, 2),
            "API Key Created": 1 if i == 7 else 0,  # once in the whole history
        }
        components = {name: {"points": m.weight // 2, "weight": m.weight, "value": 1.0}
                      for name, m in CONFIG.metrics.items()}
        out.append(Snapshot(
            account_id=f"a{i:03d}", horizon_days=30, at=0.0, score=50, band="watch",
            components=components, signals=[], active_users_30d=4, logins_30d=0, seats=4,
            arr=1000.0, outcome="churned" if churned else "renewed",
            outcome_date=date(2025, 3 if i % 3 else 9, 1).isoformat(), segment=None,
            usage=Usage(0, 0, sum(used.values()), 0, 0,
                        tuple(sorted((n, k) for n, k in used.items() if k)))))
    return out


def test_the_event_that_went_with_staying_counts_more_and_the_others_less() -> None:
    rows = _snapshots()
    train = [s for s in rows if date.fromisoformat(s.outcome_date) <= SPLIT]
    weights, moves = event_weights(train, CONFIG, alpha=1.0)
    before = {n: r.weight for n, r in CONFIG.events.items()}
    assert weights[KEEPS] > before[KEEPS]
    assert weights[WARNS] < before[WARNS]
    assert abs(weights[NOISE] - before[NOISE]) <= 1
    assert weights["API Key Created"] == before["API Key Created"]  # too rare to judge
    assert all(1 <= w <= 10 and abs(w - before[n]) <= 3 for n, w in weights.items())
    moved = {m.name: m for m in moves}
    assert moved[KEEPS].retained > moved[KEEPS].churned
    assert moved[WARNS].churned > moved[WARNS].retained


def test_the_calibrated_config_carries_the_weights_and_says_why() -> None:
    calibration = calibrate(_snapshots(), CONFIG, SPLIT)
    events = calibration.config.events
    warns = events[WARNS]
    assert warns.weight < CONFIG.events[WARNS].weight and warns.advanced  # only the weight
    said = explain(calibration.story)
    assert "Event weights, from how often each event was used in the 30 days before: " in said
    assert f"{WARNS} {CONFIG.events[WARNS].weight} → {warns.weight} (" in said
    written = {e["event"]: e for e in calibration.to_dict()["event_weights"]}
    assert written[WARNS]["after"] == warns.weight
    assert written[WARNS]["per_seat_30d"]["churned"] > written[WARNS]["per_seat_30d"]["retained"]


def test_without_evidence_the_weights_stay() -> None:
    rows = _snapshots()
    for s in rows:
        s.usage = Usage(0, 0, 0, 0, 0, ())
    weights, moves = event_weights(rows, CONFIG, alpha=1.0)
    assert moves == []
    assert weights == {n: r.weight for n, r in CONFIG.events.items() if r.family == "adoption"}

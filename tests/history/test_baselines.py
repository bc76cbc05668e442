"""Honest baselines: on constructed histories whose truth is known, the report names the
ranking that really knows, and never hides a baseline that beats the score."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from history.backtest import run_backtest
from history.evaluation import ProfitParams, paired_bootstrap, roc_auc
from history.importers import OutcomeRecord, segment_events
from history.report import terminal_summary, write_html

START = date(2025, 1, 1)
OUTCOME = date(2025, 6, 1)
HORIZON = 30
ASSESSED = OUTCOME - timedelta(days=HORIZON)  # the moment the accounts are assessed at


class _History:
    """Segment messages for one-user accounts, in time order once sorted."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self.outcomes: list[OutcomeRecord] = []

    def _at(self, day: date, hour: int) -> tuple[float, str]:
        t = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
        return t.timestamp(), t.isoformat().replace("+00:00", "Z")

    def account(self, account: str, churned: bool) -> None:
        epoch, stamp = self._at(START, 8)
        self.messages.append((epoch, {
            "type": "group", "messageId": f"{account}-group", "userId": f"{account}-u",
            "groupId": account, "timestamp": stamp,
            "traits": {"name": account, "seats": 1, "arr": 12_000,
                       "created_at": START.isoformat(),
                       "renewal_date": OUTCOME.isoformat()},
        }))
        self.outcomes.append(OutcomeRecord(account, OUTCOME, "churned" if churned else
                                           "renewed", 12_000.0))

    def accounts(self, count: int) -> Iterator[tuple[str, bool]]:
        """``count`` accounts ``acct-00``, ``acct-01``…, every fourth one churning, each
        announced by its group call before it is yielded."""
        for i in range(count):
            account, churned = f"acct-{i:02d}", i % 4 == 0
            self.account(account, churned)
            yield account, churned

    def track(self, account: str, day: date, event: str, n: int = 1,
              properties: dict[str, Any] | None = None) -> None:
        for i in range(n):
            epoch, stamp = self._at(day, 9 + i % 8)
            self.messages.append((epoch + i, {
                "type": "track", "messageId": f"{account}-{day}-{event}-{i}",
                "userId": f"{account}-u", "event": event, "timestamp": stamp,
                "properties": properties or {}, "context": {"groupId": account},
            }))

    def backtest(self) -> dict[str, Any]:
        ordered = [m for _, m in sorted(self.messages, key=lambda x: (x[0], x[1]["messageId"]))]
        events = list(segment_events(ordered, "demo"))
        return run_backtest(events, self.outcomes, horizons=(HORIZON,),
                            params=ProfitParams(top_k=5))


def _recency_is_the_truth() -> _History:
    """Churners used the product heavily every day until 5-7 days before the assessment
    and then stopped; renewers look in once every ten days, the last time 1-4 days
    before. Recency separates them perfectly; volume, in any window, points the wrong
    way."""
    rng = random.Random(7)
    h = _History()
    for account, churned in h.accounts(60):
        if churned:
            for back in range(rng.randint(5, 7), 75):
                h.track(account, ASSESSED - timedelta(days=back), "Report Published", 3)
        else:
            for back in range(rng.randint(1, 4), 75, 10):
                h.track(account, ASSESSED - timedelta(days=back), "Dashboard Viewed")
    return h


def _signals_are_the_truth() -> _History:
    """Everyone's usage is the same noise; churners alone see their payments fail, open
    tickets and answer NPS as detractors in the month before the assessment."""
    rng = random.Random(11)
    h = _History()
    for account, churned in h.accounts(80):
        for back in range(1, 90):
            if rng.random() < 0.4:
                h.track(account, ASSESSED - timedelta(days=back), "Report Published",
                        rng.randint(1, 4))
        if churned:
            for back in (25, 18, 11, 4):
                h.track(account, ASSESSED - timedelta(days=back), "Payment Failed",
                        properties={"amount": 1000})
            for back in (20, 9):
                h.track(account, ASSESSED - timedelta(days=back), "Ticket Opened",
                        properties={"ticket_id": f"{account}-{back}", "priority": "high"})
            h.track(account, ASSESSED - timedelta(days=6), "NPS Submitted",
                    properties={"score": 2})
        else:
            h.track(account, ASSESSED - timedelta(days=6), "NPS Submitted",
                    properties={"score": 9})
    return h


def test_when_recency_is_the_truth_the_report_says_the_recency_baseline_wins(
    tmp_path: Path,
) -> None:
    result = _recency_is_the_truth().backtest()
    (h,) = result["horizons"]
    assert h["accounts"] == 60 and h["churned"] == 15
    models = h["models"]
    assert models["baseline_recency"]["auc"] == 1.0
    assert h["best_baseline"] == "baseline_recency"
    assert models["score"]["auc"] < models["baseline_recency"]["auc"]
    assert "baseline_recency" in h["baselines_beating"]["score"]
    comparison = h["comparisons"]["score"]
    assert comparison["baseline"] == "baseline_recency"
    assert comparison["auc_difference"] < 0 and comparison["auc_interval"][1] < 0
    # No Logged In events and one seat each: said so, never shown as an AUC of 0.500.
    assert set(h["not_computable"]) >= {"baseline_logins", "baseline_active_users"}
    assert "Logged In" in h["not_computable"]["baseline_logins"]
    assert not set(h["not_computable"]) & set(models)
    summary = terminal_summary(result)
    assert "Warning: Baseline: days since last use beats the Telltale health score" in summary
    assert "not computable here: no Logged In event" in summary
    page = write_html(result, tmp_path / "report").read_text(encoding="utf-8")
    assert "Warning: Baseline: days since last use" in page
    assert "not computable on this history" in page
    assert "What preceded churn" in page


def test_when_the_signals_are_the_truth_the_score_beats_every_baseline() -> None:
    result = _signals_are_the_truth().backtest()
    (h,) = result["horizons"]
    assert h["accounts"] == 80 and h["churned"] == 20
    score = h["models"]["score"]
    best = h["best_baseline"]
    assert best is not None and best in h["models"]
    assert score["auc"] > 0.9 > h["models"][best]["auc"]
    assert h["baselines_beating"]["score"] == []
    comparison = h["comparisons"]["score"]
    assert comparison["auc_interval"][0] > 0
    assert "Warning" not in terminal_summary(result)
    # What preceded churn: the planted signals, always and only before a churn, with
    # their lead from the first failed payment (25 days before the moment, 30 before it).
    rows = {r["signal"]: r for r in h["preceded_churn"]}
    paid = rows["payment_failed"]
    assert paid["churn_rate_active"] == 1.0 and paid["churn_rate_inactive"] == 0.0
    assert paid["share_active"] == 0.25 and paid["churners_flagged"] == 1.0
    assert paid["median_lead_days"] == pytest.approx(55, abs=1)
    assert rows["nps_detractor"]["median_lead_days"] == pytest.approx(36, abs=1)
    assert h["preceded_churn"][0]["churn_rate_active"] == 1.0


def test_bootstrap_intervals_cover_the_difference_and_follow_the_evidence() -> None:
    rng = random.Random(3)
    churned = [rng.random() < 0.25 for _ in range(300)]
    strong = [c + rng.gauss(0, 0.5) for c in churned]
    weak = [c + rng.gauss(0, 2.0) for c in churned]
    better = paired_bootstrap(strong, weak, churned, resamples=300, seed=1)
    lo, hi = better["auc_interval"]
    diff = roc_auc(strong, churned) - roc_auc(weak, churned)  # type: ignore[operator]
    assert abs(better["auc_difference"] - diff) < 1e-12
    assert 0 < lo <= diff <= hi
    assert better["auc_wins"] > 0.95 and better["lift_interval"][0] > 0
    same = paired_bootstrap(strong, strong, churned, resamples=50, seed=1)
    assert same["auc_interval"] == [0.0, 0.0] and same["lift_interval"] == [0.0, 0.0]
    assert paired_bootstrap(strong, weak, churned, resamples=300, seed=1) == better

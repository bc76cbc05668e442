"""Churn by type and reason, on a history whose every churn is known."""

from __future__ import annotations

from datetime import timedelta

import pytest

from history.business import compute, format_summary
from history.churn import normalise_reason
from history.importers import OutcomeRecord, OutcomesError, read_outcomes, segment_events
from tests.history.test_baselines import ASSESSED, OUTCOME, _History


def _known() -> tuple[_History, list[OutcomeRecord]]:
    h = _History()
    arr = {"renews": 1000, "pricey": 2000, "card": 1000, "smaller": 4000, "rival": 1000,
           "gaps": 1000, "grows": 1000}
    for account in arr:
        h.account(account, churned=False)
        for back in range(1, 60, 2):
            h.track(account, ASSESSED - timedelta(days=back), "Report Published")
    h.track("pricey", OUTCOME - timedelta(days=20), "Subscription Cancelled",
            properties={"reason": "Too expensive for our budget"})
    h.track("card", OUTCOME - timedelta(days=40), "Payment Failed", properties={"amount": 83})
    h.track("card", OUTCOME - timedelta(days=10), "Payment Failed", properties={"amount": 83})
    h.track("rival", OUTCOME - timedelta(days=15), "Subscription Cancelled",
            properties={"cancel_reason": "switched to a competitor"})
    h.track("gaps", OUTCOME - timedelta(days=50), "Payment Failed", properties={"amount": 83})
    h.track("gaps", OUTCOME - timedelta(days=49), "Payment Succeeded",
            properties={"amount": 83})
    h.track("gaps", OUTCOME - timedelta(days=12), "Subscription Cancelled",
            properties={"reason": "missing-integration <script>"})
    after = {"renews": 1000.0, "smaller": 3000.0, "grows": 1500.0}
    outcomes = [
        OutcomeRecord(a, OUTCOME, "renewed" if a in ("renews", "grows") else
                      "contracted" if a == "smaller" else "churned", float(v), after.get(a, 0.0))
        for a, v in arr.items()
    ]
    h.outcomes = outcomes
    return h, outcomes


def _events(h: _History) -> list:  # type: ignore[type-arg]
    ordered = [m for _, m in sorted(h.messages, key=lambda x: (x[0], x[1]["messageId"]))]
    return list(segment_events(ordered, "demo"))


def test_business_metrics_by_churn_type_and_reason() -> None:
    h, outcomes = _known()
    metrics = compute(_events(h), outcomes)
    by_type = {r["group"]: r for r in metrics["churn_by_type"]}
    assert {k: v["accounts"] for k, v in by_type.items()} == {
        "voluntary": 3, "involuntary": 1, "downgrade": 1}
    at_stake = 11_000.0
    vol = by_type["voluntary"]
    assert vol["churn_rate"] == pytest.approx(3 / 7)
    assert vol["arr_lost"] == 4000 and vol["share_of_arr_lost"] == pytest.approx(4000 / at_stake)
    # GRR is 5,000 / 11,000 and NRR 5,500 / 11,000; each kind's loss put back:
    assert vol["grr_without"] == pytest.approx(9000 / at_stake)
    assert vol["nrr_without"] == pytest.approx(9500 / at_stake)
    assert by_type["involuntary"]["grr_without"] == pytest.approx(6000 / at_stake)
    assert by_type["downgrade"]["arr_lost"] == 1000
    by_reason = {r["group"]: r["accounts"] for r in metrics["churn_by_reason"]}
    assert by_reason == {"price": 1, "competitor": 1, "missing_feature": 1, "payment": 1,
                         "unknown": 1}
    text = format_summary(metrics)
    assert "Churn by type, voluntary: 3 accounts (42.9% of renewals)" in text
    assert "<script>" not in text


def test_the_backtest_splits_its_figures_by_churn_type() -> None:
    h, _ = _known()
    result = h.backtest()
    (horizon,) = result["horizons"]
    kinds = horizon["by_churn_type"]
    assert {k: v["accounts"] for k, v in kinds.items()} == {
        "voluntary": 3, "involuntary": 1, "downgrade": 1}
    assert kinds["involuntary"]["reasons"] == {"payment": 1}
    assert set(kinds["voluntary"]["auc"]) >= {"score"}
    types = {s["account_id"]: (s["churn_type"], s["churn_reason"]) for s in result["snapshots"]}
    assert types["gaps"] == ("voluntary", "missing_feature")
    assert types["renews"] == (None, None)


def test_reasons_are_normalised_and_the_outcomes_file_can_say_the_type() -> None:
    assert normalise_reason("Pricing") == "price"
    assert normalise_reason("we went with another vendor") == "competitor"
    assert normalise_reason("🙂" * 10_000) == "other"
    assert normalise_reason(42) == "unknown"
    rows = [{"account_id": "a", "date": "2025-06-01", "outcome": "churned", "arr": "10",
             "churn_type": "Involuntary", "churn_reason": "card expired"}]
    (o,) = read_outcomes(rows)
    assert (o.churn_type, o.churn_reason) == ("involuntary", "payment")
    with pytest.raises(OutcomesError, match="churn_type"):
        read_outcomes([{**rows[0], "churn_type": "rage-quit"}])

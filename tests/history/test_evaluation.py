"""Ranking figures: AUC, tie-fair lift, ARR recall, profit, and the SVG charts."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

import pytest

from history import plots
from history.evaluation import (
    ProfitParams,
    capture_curve,
    evaluate_ranking,
    profit_at,
    rate_by_group,
    rate_by_quantile,
    roc_auc,
    top_weights,
)


def _pairwise_auc(risk: list[float], churned: list[bool]) -> float:
    pos = [r for r, c in zip(risk, churned, strict=True) if c]
    neg = [r for r, c in zip(risk, churned, strict=True) if not c]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_auc_matches_the_pairwise_definition_with_ties() -> None:
    rng = random.Random(3)
    for _ in range(20):
        risk = [float(rng.randint(0, 6)) for _ in range(40)]
        churned = [rng.random() < 0.3 for _ in range(40)]
        if not any(churned) or all(churned):
            continue
        assert roc_auc(risk, churned) == pytest.approx(_pairwise_auc(risk, churned))
    assert roc_auc([1, 2, 3], [True, True, True]) is None
    assert roc_auc([3, 2, 1, 0], [True, True, False, False]) == 1.0
    assert roc_auc([0, 1, 2, 3], [True, True, False, False]) == 0.0


def test_ties_at_the_cut_off_are_shared_not_ordered() -> None:
    # ten accounts with the same risk: the riskiest 3 are three tenths of each of them
    weights = top_weights([1.0] * 10, 3)
    assert weights == pytest.approx([0.3] * 10)
    # so a constant ranking has lift 1 whatever the order of the input
    churned = [True, True, False, False, False, False, False, False, False, False]
    report = evaluate_ranking([5.0] * 10, churned, [1000.0] * 10, ProfitParams(top_k=3))
    assert report.top_decile_lift == pytest.approx(1.0)
    assert report.top_k_lift == pytest.approx(1.0)
    report_rev = evaluate_ranking([5.0] * 10, churned[::-1], [1000.0] * 10, ProfitParams())
    assert report_rev.top_decile_lift == pytest.approx(1.0)


def test_perfect_ranking_figures() -> None:
    n = 100
    churned = [i < 10 for i in range(n)]
    risk = [float(n - i) for i in range(n)]
    arr = [10_000.0] * n
    params = ProfitParams(intervention_cost=1_000, save_rate=0.5, margin=1.0, top_k=5)
    report = evaluate_ranking(risk, churned, arr, params)
    assert report.auc == 1.0
    assert report.top_decile_precision == 1.0
    assert report.top_decile_lift == pytest.approx(10.0)
    assert report.top_k_lift == pytest.approx(10.0)
    assert report.churned_arr_recall_top_decile == 1.0
    # ten churners of $10k, half saved, minus ten contacts of $1k
    assert report.profit_top_decile == pytest.approx(10 * 10_000 * 0.5 - 10 * 1_000)
    assert profit_at(risk, churned, arr, 20, params) == pytest.approx(50_000 - 20_000)
    assert report.best_profit == pytest.approx(40_000)
    curve = capture_curve(risk, churned, arr, points=10)
    assert curve[0] == (0.0, 0.0, 0.0)
    assert curve[1][1] == pytest.approx(1.0)  # the top 10% holds every churner
    assert curve[-1][1] == pytest.approx(1.0)


def test_rates_by_band_and_quantile() -> None:
    rows = rate_by_group(["healthy", "at_risk", "at_risk", "watch"], [False, True, False, False],
                         ("healthy", "watch", "at_risk"))
    assert [r["churn_rate"] for r in rows] == [0.0, 0.0, 0.5]
    q = rate_by_quantile([4.0, 3.0, 2.0, 1.0, 0.0], [True, False, False, False, False], 5)
    assert q[0]["churn_rate"] == 1.0 and q[-1]["churn_rate"] == 0.0
    assert sum(r["accounts"] for r in q) == pytest.approx(5)


def test_charts_are_valid_svg() -> None:
    docs = [
        plots.gains_chart("Lift", [("score", [(0, 0), (0.5, 0.8), (1, 1)]),
                                   ("baseline", [(0, 0), (1, 1)])]),
        plots.distribution_chart("Scores", [("churned", [10, 20, 35]),
                                            ("stayed", [70, 80, 90, 95])]),
        plots.rate_chart("Bands", [("score", [("Healthy", 0.05, 100), ("Watch", 0.2, 30),
                                              ("At risk", None, 0)])], base_rate=0.1),
    ]
    for doc in docs:
        root = ET.fromstring(doc)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert root.find("{http://www.w3.org/2000/svg}text") is not None

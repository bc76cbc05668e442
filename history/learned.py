"""A learned reference: how much of the learnable signal the interpretable score captures.

With the optional ``ml`` extra (``pip install telltale[ml]``, scikit-learn), two models
are fitted on the renewals before the calibration's split date and rank the later ones:
an L2 logistic regression and gradient-boosted trees. Their features are what the
score is made of, per snapshot: each component's share of its weight and raw value,
whether each signal was active, the usage counts the baselines use, and the horizon.
They are a ceiling to measure the score against, never a score to ship: nobody can say
in a sentence why a thousand trees flagged an account.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from history.backtest import Snapshot

RiskFn = Callable[[Snapshot], float]
RECENCY_CAP_DAYS = 365.0  # "never used" becomes this, so the features stay finite


def available() -> bool:
    """Whether scikit-learn is installed."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return False
    return True


def _features(s: Snapshot, components: Sequence[str], signals: Sequence[str]) -> list[float]:
    u = s.usage
    recency = RECENCY_CAP_DAYS if u.days_since_active is None else min(
        RECENCY_CAP_DAYS, float(u.days_since_active))
    row = [float(s.horizon_days), recency, float(u.events_7d), float(u.events_30d),
           float(u.active_days_14d), float(u.active_days_30d), s.active_share,
           s.logins_per_seat]
    for name in components:
        value = (s.components.get(name) or {}).get("value")
        row.append(s.fraction(name))
        row.append(float(value) if isinstance(value, int | float) and math.isfinite(value)
                   else 0.0)
    present = set(s.signals)
    row.extend(1.0 if t in present else 0.0 for t in signals)
    return row


def learned_models(train: Sequence[Snapshot], test: Sequence[Snapshot],
                   seed: int = 0) -> dict[str, RiskFn]:
    """The two reference rankings of ``test``, fitted on ``train`` (both classes needed);
    empty when scikit-learn is missing or the training set has one class."""
    if not available() or len({s.churned for s in train}) < 2 or not test:
        return {}
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    components = sorted({n for s in train for n in s.components})
    signals = sorted({t for s in train for t in s.signals})
    x = [_features(s, components, signals) for s in train]
    y = [int(s.churned) for s in train]
    fitted: dict[str, Any] = {
        "learned_logistic": make_pipeline(StandardScaler(), LogisticRegression(
            C=1.0, max_iter=2000)).fit(x, y),
        "learned_boosting": HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.05, max_leaf_nodes=15, l2_regularization=1.0,
            # scikit-learn's 20 per leaf would leave a few hundred renewals one split
            min_samples_leaf=max(3, min(20, len(x) // 20)),
            random_state=seed).fit(x, y),
    }
    keys = [s.key for s in test]
    rows = [_features(s, components, signals) for s in test]
    out: dict[str, RiskFn] = {}
    for name, model in fitted.items():
        risk = dict(zip(keys, (float(p[1]) for p in model.predict_proba(rows)), strict=True))
        out[name] = _lookup(risk)
    return out


def _lookup(risk: dict[tuple[str, str, int], float]) -> RiskFn:
    return lambda s: risk[s.key]

"""Calibration: learn the score's component weights, band thresholds, event weights and
recency curve from your own renewals and churns, and check the result out of time.

The model stays the one people can read: the score is still the sum of its
components, each earning a share of its weight. Calibration fits an L2-regularised
logistic regression of churn on those shares (one row per account and horizon, from a
backtest with the current config), on the renewals up to a split date only. A component
whose share is lower among accounts that went on to churn earns weight in proportion to
how strongly it separated them; a component that told churners and renewers apart no
better than chance keeps a floor of ``MIN_WEIGHT`` points so that it still shows up in
explanations. With few churners the fit is pulled toward the current weights
(``prior_churners`` acts as that many churners' worth of evidence for the defaults).
Band thresholds are then placed where the training churn rate is clearly above (at
risk) or below (healthy) the average.

The new config is replayed through the same core and compared with the current one and
the baseline on the renewals after the split date only: the test is out of time.
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

from history.backtest import (
    BASELINES,
    MODELS,
    HistorySource,
    Progress,
    ReplayRun,
    RiskFn,
    Snapshot,
    evaluate_snapshots,
    replay_history,
    replay_snapshots,
    result_dict,
)
from history.evaluation import (
    ProfitParams,
    brier_score,
    paired_bootstrap,
    reliability_curve,
    roc_auc,
)
from history.importers import OutcomeRecord, OutcomesError
from history.learned import learned_models
from history.report import ENGLISH, day
from scoring.config import SEGMENTS, Bands, Curve, ScoringConfig, dump_config
from scoring.i18n import N_, Translator
from scoring.scores import split_points

MIN_WEIGHT = 2
DEFAULT_PRIOR_CHURNERS = 20.0
DEFAULT_L2 = 1.0
#: Stretches of the recency curve's days that are tried: how long an account may stay
#: quiet before its recency points are gone is learnt from the history, not assumed.
RECENCY_SCALES = (1.0, 1.5, 2.0)
#: Log-likelihood a stretch must gain on the training rows over the shipped curve to be
#: taken: one more parameter, as Akaike's criterion counts it.
SCALE_GAIN = 1.0
#: An event is weighed again only when at least this share of the training assessments
#: saw it in their 30 days, churned and renewed alike: too rare an event says nothing.
EVENT_MIN_SHARE = 0.05
EVENT_MIN_ROWS = 10
#: Points an event's weight moves at most in one calibration.
EVENT_MAX_MOVE = 3
#: A segment is fitted on its own only with at least this many training assessments of
#: accounts that churned, and as many of accounts that stayed.
SEGMENT_MIN_ROWS = 30
#: It keeps weights of its own only when, fitted on the earlier part of its training
#: outcomes (``SEGMENT_EARLIER``), they rank the churners of the later part better than
#: the portfolio's weights do, by at least this much AUC and with the lower end of the
#: difference's 90% bootstrap interval above zero.
SEGMENT_MIN_GAIN = 0.01
SEGMENT_EARLIER = 0.7


# --------------------------------------------------------------------------- the model


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    ez = math.exp(z)
    return ez / (1.0 + ez)


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (small, well-conditioned systems)."""
    n = len(b)
    m = [[*row[:], b[i]] for i, row in enumerate(a)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        p = m[col][col]
        if abs(p) < 1e-12:
            continue
        for r in range(n):
            if r != col:
                f = m[r][col] / p
                if f:
                    for c in range(col, n + 1):
                        m[r][c] -= f * m[col][c]
    return [m[i][n] / m[i][i] if abs(m[i][i]) > 1e-12 else 0.0 for i in range(n)]


def fit_logistic(
    rows: Sequence[Sequence[float]], labels: Sequence[bool], l2: float = DEFAULT_L2,
    iterations: int = 50,
) -> tuple[float, list[float]]:
    """L2-regularised logistic regression by Newton's method (IRLS); the intercept is not
    penalised. Returns (intercept, coefficients)."""
    n_features = len(rows[0]) if rows else 0
    beta = [0.0] * (n_features + 1)  # beta[0] = intercept
    xs = [[1.0, *r] for r in rows]
    ys = [1.0 if y else 0.0 for y in labels]
    for _ in range(iterations):
        grad = [0.0] * (n_features + 1)
        hess = [[0.0] * (n_features + 1) for _ in range(n_features + 1)]
        for x, y in zip(xs, ys, strict=True):
            p = _sigmoid(sum(b * v for b, v in zip(beta, x, strict=True)))
            w = max(p * (1 - p), 1e-9)
            for i in range(n_features + 1):
                grad[i] += (y - p) * x[i]
                wi = w * x[i]
                row = hess[i]
                for j in range(i, n_features + 1):
                    row[j] += wi * x[j]
        for i in range(n_features + 1):
            for j in range(i):
                hess[i][j] = hess[j][i]
        for i in range(1, n_features + 1):
            grad[i] -= l2 * beta[i]
            hess[i][i] += l2
        step = _solve(hess, grad)
        beta = [b + s for b, s in zip(beta, step, strict=True)]
        if max(abs(s) for s in step) < 1e-8:
            break
    return beta[0], beta[1:]


def largest_remainder(raw: Sequence[float], total: int = 100, floor: int = 0) -> list[int]:
    """Integers >= ``floor`` summing to ``total``, proportional to ``raw``."""
    n = len(raw)
    spare = total - floor * n
    s = sum(max(0.0, r) for r in raw)
    shares = [spare / n] * n if s <= 0 else [spare * max(0.0, r) / s for r in raw]
    return [floor + p for p in split_points(shares)]


# --------------------------------------------------------------------------- calibration


@dataclass(frozen=True, slots=True)
class Calibration:
    config: ScoringConfig
    split_date: date
    train_renewals: int
    train_churned: int
    test_renewals: int
    weights: dict[str, dict[str, int]]
    coefficients: dict[str, float]
    churn_share_means: dict[str, dict[str, float]]
    bands_before: tuple[int, int]
    bands_after: tuple[int, int]
    probability: list[dict[str, float]]
    explanation: str  # in English, as the JSON keeps it; explain(t) for another language
    probability_model: tuple[float, float] = (0.0, 0.0)  # logit = a + b × score / 100
    story: Story | None = None  # what the explanation is said from

    def explain(self, t: Translator = ENGLISH) -> str:
        """What the calibration learnt, in ``t``'s language."""
        return self.explanation if self.story is None else explain(self.story, t)

    def churn_probability(self, score: float) -> float:
        """Churn probability of an account at this (calibrated) score, as learnt."""
        a, b = self.probability_model
        return _sigmoid(a + b * score / 100.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.config.version,
            "split_date": self.split_date.isoformat(),
            "train_renewals": self.train_renewals,
            "train_churned": self.train_churned,
            "test_renewals": self.test_renewals,
            "weights": self.weights,
            "coefficients": self.coefficients,
            "component_share_means": self.churn_share_means,
            "bands": {"before": {"watch": self.bands_before[0], "healthy": self.bands_before[1]},
                      "after": {"watch": self.bands_after[0], "healthy": self.bands_after[1]}},
            "churn_probability_by_score": self.probability,
            "event_weights": [] if self.story is None else [
                {"event": m.name, "before": m.before, "after": m.after,
                 "per_seat_30d": {"churned": round(m.churned, 3),
                                  "retained": round(m.retained, 3)}}
                for m in self.story.event_moves],
            "recency_curve_last_day": None
            if self.story is None or self.story.recency_days is None
            else {"before": self.story.recency_days[0], "after": self.story.recency_days[1]},
            "segments": [] if self.story is None else [
                _segment_dict(f, self.story.names) for f in self.story.segments],
            "explanation": self.explanation,
        }


def _segment_dict(f: SegmentFit, names: Sequence[str]) -> dict[str, Any]:
    return {
        "segment": f.segment, "assessments": f.rows, "churned_assessments": f.churned_rows,
        "outcome": f.outcome,
        "weights": None if f.weights is None else dict(zip(names, f.weights, strict=True)),
        "check": None if f.auc_own is None else {
            "assessments": f.check_rows, "auc_own": round(f.auc_own, 4),
            "auc_portfolio": None if f.auc_portfolio is None else round(f.auc_portfolio, 4),
            "gain_interval_90": None if f.gain_interval is None
            else [round(x, 4) for x in f.gain_interval]},
    }


def split_date(outcomes: Sequence[OutcomeRecord], train_share: float = 0.6) -> date:
    """The date at which ``train_share`` of the outcomes have happened (train: <= it)."""
    days = sorted(o.date for o in outcomes)
    if not days:
        raise ValueError("calibration needs outcomes")
    index = min(len(days) - 1, max(0, int(len(days) * train_share) - 1))
    return days[index]


def _is_train(s: Snapshot, split: date) -> bool:
    return date.fromisoformat(s.outcome_date) <= split


def _shares(s: Snapshot, names: Sequence[str], recency: Curve | None) -> list[float]:
    """Each component's share (0-1) of its weight; recency's from its value (days)
    through ``recency``, so that another curve can be tried without a replay."""
    row = []
    for n in names:
        value = (s.components.get(n) or {}).get("value")
        if n == "recency" and recency is not None:
            row.append(0.0 if not isinstance(value, int | float)
                       else max(0.0, min(1.0, recency(value) / 100.0)))
        else:
            row.append(s.fraction(n))
    return row


def _stretched(curve: Curve, scale: float) -> Curve:
    return Curve(tuple((round(x * scale, 6), p) for x, p in curve.points))


@dataclass(frozen=True, slots=True)
class EventMove:
    """One event's weight before and after, and how often (per seat, in 30 days) the
    training accounts that churned and those that stayed used it."""

    name: str
    before: int
    after: int
    churned: float
    retained: float


def event_weights(train: Sequence[Snapshot], config: ScoringConfig, alpha: float
                  ) -> tuple[dict[str, int], list[EventMove]]:
    """Weights 1-10 of the vocabulary's usage events, learnt from the training rows.

    Engagement is the weighted sum of an account's events per seat. Each event judged on
    its own (events go together, so a joint fit would hand one event's credit to
    another at random): its weight is multiplied by how much more the accounts that
    stayed used it per seat in their 30 days than those that churned (between half and
    double), the weights are rescaled so the events' weighted total over the training
    rows is what it was (engagement's curve keeps its meaning), pulled toward the
    current weights by ``alpha`` as the component weights are, and moved by at most
    :data:`EVENT_MAX_MOVE` points. Events too rare to judge keep theirs."""
    current = {n: r.weight for n, r in config.events.items() if r.family == "adoption"}
    counts = [dict(s.usage.by_event_30d) for s in train]
    ys = [s.churned for s in train]
    seats = [max(1, s.seats) for s in train]
    names = []
    for n in sorted(current):
        used = [y for c, y in zip(counts, ys, strict=True) if c.get(n)]
        if (len(used) >= max(EVENT_MIN_ROWS, EVENT_MIN_SHARE * len(train))
                and EVENT_MIN_ROWS <= sum(used) <= len(used) - EVENT_MIN_ROWS):
            names.append(n)
    if len(names) < 2 or alpha <= 0:
        return dict(current), []
    churned_rows = sum(ys)
    retained_rows = len(ys) - churned_rows
    rates: dict[str, tuple[float, float]] = {}
    totals: dict[str, float] = {}
    for n in names:
        per_seat = [c.get(n, 0) / k for c, k in zip(counts, seats, strict=True)]
        ch = sum(v for v, y in zip(per_seat, ys, strict=True) if y) / churned_rows
        st = sum(v for v, y in zip(per_seat, ys, strict=True) if not y) / retained_rows
        rates[n] = (ch, st)
        totals[n] = sum(per_seat)
    fitted = {n: current[n] * max(0.5, min(2.0, _ratio(st, ch))) for n, (ch, st) in rates.items()}
    before_total = sum(current[n] * totals[n] for n in names)
    after_total = sum(fitted[n] * totals[n] for n in names) or 1.0
    out = dict(current)
    moves = []
    for n in names:
        target = fitted[n] * before_total / after_total
        blended = alpha * target + (1 - alpha) * current[n]
        w = math.floor(blended + 0.5)
        w = max(1, current[n] - EVENT_MAX_MOVE, min(10, current[n] + EVENT_MAX_MOVE, w))
        out[n] = w
        if w != current[n]:
            ch, st = rates[n]
            moves.append(EventMove(n, current[n], w, ch, st))
    moves.sort(key=lambda m: (-abs(m.after - m.before), m.name))
    return out, moves


def _ratio(retained: float, churned: float) -> float:
    """How many times more the accounts that stayed used an event; a twentieth of its
    mean rate is added to both sides, so that an event nobody who churned used is not
    infinitely telling."""
    floor = 0.05 * (retained + churned) / 2 + 1e-12
    return (retained + floor) / (churned + floor)


@dataclass(frozen=True, slots=True)
class _Fit:
    scale: float
    curve: Curve | None
    xs: list[list[float]]
    coef: list[float]
    sds: list[float]
    log_likelihood: float


def _fit(train: Sequence[Snapshot], names: Sequence[str], curve: Curve | None,
         scale: float, l2: float) -> _Fit:
    ys = [s.churned for s in train]
    xs = [_shares(s, names, curve) for s in train]
    means = [sum(col) / len(col) for col in zip(*xs, strict=True)]
    sds = [
        max(1e-6, math.sqrt(sum((v - m) ** 2 for v in col) / len(col)))
        for col, m in zip(zip(*xs, strict=True), means, strict=True)
    ]
    standard = [[(v - m) / sd for v, m, sd in zip(r, means, sds, strict=True)] for r in xs]
    intercept, coef = fit_logistic(standard, ys, l2)
    ll = 0.0
    for r, y in zip(standard, ys, strict=True):
        p = min(max(_sigmoid(intercept + sum(c * v for c, v in zip(coef, r, strict=True))),
                    1e-12), 1 - 1e-12)
        ll += math.log(p if y else 1.0 - p)
    return _Fit(scale, curve, xs, coef, sds, ll)


def _best_fit(train: Sequence[Snapshot], names: Sequence[str], config: ScoringConfig,
              l2: float) -> _Fit:
    """The weights' fit with the shipped recency curve, or with a stretched one when it
    explains the training outcomes clearly better."""
    shipped = config.metrics["recency"].curve if "recency" in names else None
    best = _fit(train, names, shipped, 1.0, l2)
    if shipped is None:
        return best
    for scale in RECENCY_SCALES:
        if scale == 1.0:
            continue
        other = _fit(train, names, _stretched(shipped, scale), scale, l2)
        if other.log_likelihood > best.log_likelihood + SCALE_GAIN * (best.scale == 1.0):
            best = other
    return best


def _weights(fit: _Fit, prior: Sequence[int], churned_rows: int, prior_churners: float
             ) -> tuple[list[int], float, list[float]]:
    """Weights from a fit, pulled toward ``prior`` (points) by the evidence: the fitted
    ones count for ``alpha`` = churned / (churned + prior_churners). Returns the weights,
    alpha and the coefficients per unit of share (negative: protective)."""
    raw_coef = [c / sd for c, sd in zip(fit.coef, fit.sds, strict=True)]
    # Protective components have negative coefficients (more of it, less churn).
    fitted = [max(0.0, -c) for c in raw_coef]
    alpha = churned_rows / (churned_rows + prior_churners) if sum(fitted) > 0 else 0.0
    fitted_total = sum(fitted) or 1.0
    blended = [alpha * 100.0 * f / fitted_total + (1 - alpha) * d
               for f, d in zip(fitted, prior, strict=True)]
    return largest_remainder(blended, 100, MIN_WEIGHT), alpha, raw_coef


@dataclass(frozen=True, slots=True)
class SegmentFit:
    """One segment's own weights, or why it keeps the portfolio's: its training
    assessments (``rows``, ``churned_rows`` of accounts that churned) and, when it could
    be checked, the AUC of its own weights (fitted on its earlier outcomes) and of the
    portfolio's on its later ones (``check_rows``)."""

    segment: str
    rows: int
    churned_rows: int
    #: ``few`` (too few of a class), ``one_period`` (no later outcomes to check on) or
    #: ``checked``
    outcome: str = "checked"
    weights: tuple[int, ...] | None = None  # kept: fitted on all its training rows
    check_rows: int = 0
    auc_own: float | None = None
    auc_portfolio: float | None = None
    gain_interval: tuple[float, float] | None = None  # 90%, own minus portfolio


def _risk(rows: Sequence[Snapshot], names: Sequence[str], curve: Curve | None,
          weights: Sequence[int]) -> list[float]:
    """Each row's risk (minus its score) under ``weights``."""
    return [-sum(w * v for w, v in zip(weights, _shares(s, names, curve), strict=True))
            for s in rows]


def segment_fits(train: Sequence[Snapshot], names: Sequence[str], curve: Curve | None,
                 portfolio: Sequence[int], l2: float = DEFAULT_L2,
                 prior_churners: float = DEFAULT_PRIOR_CHURNERS) -> list[SegmentFit]:
    """Each segment's own weights where its accounts churn for other reasons than the
    portfolio's: fitted like the portfolio's but pulled toward them (not toward the
    defaults), and kept only when they pass an out-of-time check inside the training
    outcomes (see ``SEGMENT_MIN_GAIN``). Segments are the ones the score weighed the
    accounts as; ``curve`` is the recency curve the portfolio's fit chose."""
    by_segment: dict[str, list[Snapshot]] = defaultdict(list)
    for s in train:
        if s.scored_segment is not None:
            by_segment[s.scored_segment].append(s)
    out: list[SegmentFit] = []
    for seg in (x for x in SEGMENTS if x in by_segment):
        rows = by_segment[seg]
        churned = sum(s.churned for s in rows)
        if min(churned, len(rows) - churned) < SEGMENT_MIN_ROWS:
            out.append(SegmentFit(seg, len(rows), churned, "few"))
            continue
        dates = sorted(s.outcome_date for s in rows)
        cut = dates[max(0, int(len(dates) * SEGMENT_EARLIER) - 1)]
        earlier = [s for s in rows if s.outcome_date <= cut]
        later = [s for s in rows if s.outcome_date > cut]
        early_churned = sum(s.churned for s in earlier)
        if not later or not 0 < early_churned < len(earlier):
            out.append(SegmentFit(seg, len(rows), churned, "one_period"))
            continue
        trial, _, _ = _weights(_fit(earlier, names, curve, 1.0, l2), portfolio,
                               early_churned, prior_churners)
        # each later renewal once: its assessment at the shortest horizon
        shortest = min(s.horizon_days for s in later)
        check = [s for s in later if s.horizon_days == shortest]
        labels = [s.churned for s in check]
        risk_own, risk_theirs = (_risk(check, names, curve, trial),
                                 _risk(check, names, curve, portfolio))
        own, theirs = roc_auc(risk_own, labels), roc_auc(risk_theirs, labels)
        if own is None or theirs is None:  # the later renewals all went one way
            out.append(SegmentFit(seg, len(rows), churned, "one_period"))
            continue
        interval = paired_bootstrap(risk_own, risk_theirs, labels, level=0.9)["auc_interval"]
        kept: tuple[int, ...] | None = None
        if interval is not None and own - theirs >= SEGMENT_MIN_GAIN and interval[0] > 0:
            final, _, _ = _weights(_fit(rows, names, curve, 1.0, l2), portfolio, churned,
                                   prior_churners)
            kept = tuple(final)
        out.append(SegmentFit(seg, len(rows), churned, "checked", kept, len(check), own,
                              theirs,
                              None if interval is None else (interval[0], interval[1])))
    return out


@dataclass(frozen=True, slots=True)
class BandEvidence:
    """Why the bands moved or stayed: ``outcome`` is ``few`` (too few outcomes), ``unclear``
    (no score level separated churners clearly enough) or ``separated``, with the training
    churn rates (0-1) under the new watch level, overall, and from the new healthy one."""

    outcome: str
    below_rate: float = 0.0
    below_assessments: int = 0
    base_rate: float = 0.0
    above_rate: float = 0.0


def _thresholds(
    scores: Sequence[float], churned: Sequence[bool], current: Bands
) -> tuple[int, int, BandEvidence]:
    n = len(scores)
    base = sum(churned) / n if n else 0.0
    if n < 20 or base <= 0:
        return current.watch, current.healthy, BandEvidence("few")
    pairs = sorted(zip(scores, churned, strict=True))
    # At risk: the largest group of lowest scores, at most a quarter of the accounts (a
    # list a team can work through), whose churn rate is at least twice the average.
    watch: int | None = None
    for t in range(95, 4, -1):
        below = [c for s, c in pairs if s < t]
        if len(below) > 0.25 * n:
            continue
        if len(below) >= max(5, 0.05 * n) and sum(below) / len(below) >= 2 * base:
            watch = t
            break
    # Healthy: the lowest level from which the churn rate is at most three quarters of
    # the average, keeping at least 40% of the accounts healthy.
    healthy: int | None = None
    if watch is not None:
        for t in range(watch + 5, 101):
            above = [c for s, c in pairs if s >= t]
            if len(above) < 0.4 * n:
                break
            if sum(above) / len(above) <= 0.75 * base:
                healthy = t
                break
    if watch is None or healthy is None:
        return current.watch, current.healthy, BandEvidence("unclear")
    below = [c for s, c in pairs if s < watch]
    above = [c for s, c in pairs if s >= healthy]
    return watch, healthy, BandEvidence("separated", sum(below) / len(below), len(below),
                                        base, sum(above) / len(above))


def calibrate(
    snapshots: Sequence[Snapshot],
    config: ScoringConfig,
    split: date,
    l2: float = DEFAULT_L2,
    prior_churners: float = DEFAULT_PRIOR_CHURNERS,
) -> Calibration:
    """Fit weights and bands on the snapshots whose outcome is on or before ``split``."""
    names = [n for n in config.metrics]
    train = [s for s in snapshots if _is_train(s, split)]
    test_accounts = {s.account_id for s in snapshots if not _is_train(s, split)}
    if not train or not any(s.churned for s in train) or all(s.churned for s in train):
        raise OutcomesError("calibration needs both churned and retained accounts before the "
                            "split date")
    ys = [s.churned for s in train]
    fit = _best_fit(train, names, config, l2)
    xs = fit.xs
    default_w = [config.metrics[n].weight for n in names]
    train_churned = sum(ys)
    weights, alpha, raw_coef = _weights(fit, default_w, train_churned, prior_churners)
    segments = segment_fits(train, names, fit.curve, weights, l2, prior_churners)
    own = {f.segment: f.weights for f in segments if f.weights is not None}

    new_scores = [
        sum(w * v for w, v in zip(own.get(s.scored_segment or "", weights), r, strict=True))
        for s, r in zip(train, xs, strict=True)
    ]
    watch, healthy, band_why = _thresholds(new_scores, ys, config.bands)
    a, c = fit_logistic([[s / 100.0] for s in new_scores], ys, l2=0.01)
    probability = [
        {"score": float(sc), "churn_probability": _sigmoid(a + c[0] * sc / 100.0)}
        for sc in (20, 40, 60, 70, 80, 90)
    ]

    metrics = dict(config.metrics)
    for n, w in zip(names, weights, strict=True):
        metrics[n] = replace(metrics[n], weight=w)
    learnt_events, event_moves = event_weights(train, config, alpha)
    events = {n: replace(r, weight=learnt_events.get(n, r.weight))
              for n, r in config.events.items()}
    recency_days: tuple[float, float] | None = None
    if fit.curve is not None and fit.scale != 1.0:
        shipped = config.metrics["recency"].curve
        metrics["recency"] = replace(metrics["recency"], curve=fit.curve)
        recency_days = (shipped.points[-1][0], fit.curve.points[-1][0])
    segment_weights = {seg: dict(zip(names, w, strict=True)) for seg, w in own.items()}
    digest = hashlib.sha1(
        ",".join(f"{n}={w}" for n, w in zip(names, weights, strict=True)).encode()
        + f"|{watch}|{healthy}|{fit.scale:g}|".encode()
        + ",".join(f"{n}={r.weight}" for n, r in sorted(events.items())).encode()
        + "".join(f"|{seg}:{w}" for seg, w in sorted(own.items())).encode(),
        usedforsecurity=False,
    ).hexdigest()[:6]
    version = f"{config.version}+cal.{split:%Y%m%d}.{digest}"
    new_config = replace(
        config, version=version, metrics=metrics, events=events,
        segment_weights=segment_weights,
        bands=replace(config.bands, watch=watch, healthy=healthy),
    ).validate()

    share_means = {}
    for j, n in enumerate(names):
        ch = [r[j] for r, y in zip(xs, ys, strict=True) if y]
        st = [r[j] for r, y in zip(xs, ys, strict=True) if not y]
        share_means[n] = {"churned": sum(ch) / len(ch), "retained": sum(st) / len(st)}
    weight_table = {
        n: {"before": d, "after": w} for n, d, w in zip(names, default_w, weights, strict=True)
    }
    story = Story(
        names=tuple(names), before=tuple(default_w), after=tuple(weights),
        share_means=share_means, train_accounts=len({s.account_id for s in train}),
        train_churned_rows=train_churned, train_rows=len(train), split=split, alpha=alpha,
        bands_before=(config.bands.watch, config.bands.healthy), bands_after=(watch, healthy),
        bands_why=band_why, probability=tuple(probability),
        test_accounts=len(test_accounts), recency_days=recency_days,
        event_moves=tuple(event_moves), segments=tuple(segments),
    )
    return Calibration(
        config=new_config,
        split_date=split,
        train_renewals=len({s.account_id for s in train}),
        train_churned=len({s.account_id for s in train if s.churned}),
        test_renewals=len(test_accounts),
        weights=weight_table,
        coefficients={n: round(c, 4) for n, c in zip(names, raw_coef, strict=True)},
        churn_share_means=share_means,
        bands_before=(config.bands.watch, config.bands.healthy),
        bands_after=(watch, healthy),
        probability=probability,
        explanation=explain(story),
        probability_model=(a, c[0]),
        story=story,
    )


_PLAIN = {
    "active_seats": N_("component in words", "share of seats in use"),
    "power_users": N_("component in words", "power users staying active"),
    "engagement": N_("component in words", "weighted engagement and its trend"),
    "core_features": N_("component in words", "core-feature use trend"),
    "recency": N_("component in words", "days since the product was last used"),
    "habit": N_("component in words", "days a month with use over the year"),
    "support": N_("component in words", "support friction"),
    "financial": N_("component in words", "billing trouble"),
    "relationship": N_("component in words", "NPS and meetings"),
}


@dataclass(frozen=True, slots=True)
class Story:
    """What a calibration learnt, as figures: the explanation is said from these in any
    language. Weights in points, shares and ``alpha`` 0-1, ``split`` the last training
    outcome's date."""

    names: tuple[str, ...]
    before: tuple[int, ...]
    after: tuple[int, ...]
    share_means: dict[str, dict[str, float]]
    train_accounts: int
    train_churned_rows: int
    train_rows: int
    split: date
    alpha: float
    bands_before: tuple[int, int]
    bands_after: tuple[int, int]
    bands_why: BandEvidence
    probability: tuple[dict[str, float], ...]
    test_accounts: int
    #: the recency curve's last day before and after, when the calibration stretched it
    recency_days: tuple[float, float] | None = None
    event_moves: tuple[EventMove, ...] = ()
    segments: tuple[SegmentFit, ...] = ()


def explain(story: Story, t: Translator = ENGLISH) -> str:
    """The calibration in a paragraph a CS lead can read: what it learnt from, how much
    the fit counts, each weight that moved and why, the bands, the churn probability."""
    pct = t.percent
    parts = [t.ngettext(
        "Learnt from %(count)s renewal or churn up to %(split)s (%(rows)s); checked on the "
        "%(test)s that came after, which the fit never saw.",
        "Learnt from %(count)s renewals and churns up to %(split)s (%(rows)s); checked on the "
        "%(test)s that came after, which the fit never saw.", story.train_accounts,
        split=day(story.split, t), test=story.test_accounts,
        rows=t.ngettext("%(count)s assessment, %(churned)s of them of accounts that churned",
                        "%(count)s assessments, %(churned)s of them of accounts that churned",
                        story.train_rows, churned=story.train_churned_rows))]
    if story.alpha <= 0:
        parts.append(t.gettext("No component separated churners from renewers, so the weights "
                               "stay as they were."))
    else:
        parts.append(t.gettext(
            "The fitted weights count for %(share)s and the current ones for the rest (the "
            "fewer churners there are to learn from, the more the current weights hold).",
            share=pct(100 * story.alpha)))
    moves = sorted(zip(story.names, story.before, story.after, strict=True),
                   key=lambda m: -abs(m[2] - m[1]))
    for n, b, a in moves:
        if a != b:
            parts.append(_weight_moved(n, b, a, story.share_means[n], t))
    if story.event_moves:
        said = [t.gettext("%(event)s %(before)s → %(after)s (%(retained)s a seat among "
                          "those that stayed, %(churned)s among those that churned)",
                          event=m.name, before=m.before, after=m.after,
                          retained=t.fixed(m.retained, 1), churned=t.fixed(m.churned, 1))
                for m in story.event_moves[:4]]
        more = len(story.event_moves) - len(said)
        parts.append(t.gettext(
            "Event weights, from how often each event was used in the 30 days before: "
            "%(events)s%(more)s.", events="; ".join(said),
            more=t.ngettext("; %(count)s more moved", "; %(count)s more moved", more)
            if more > 0 else ""))
    if story.recency_days is not None:
        before, after = story.recency_days
        parts.append(t.gettext(
            "Recency's points now run out after %(days)s days without use instead of "
            "%(before)s: the longer curve told churners and renewers apart better on this "
            "history.", days=round(after), before=round(before)))
    parts.extend(_segment_said(f, story, t) for f in story.segments)
    parts.append(_bands_said(story, t))
    probs = ", ".join(f"{p['score']:.0f} → {pct(100 * p['churn_probability'])}"
                      for p in story.probability)
    parts.append(t.gettext("On this history, the calibrated score maps to a churn probability "
                           "as follows: %(probabilities)s.", probabilities=probs))
    return " ".join(parts)


def _weight_moved(name: str, before: int, after: int, means: dict[str, float],
                  t: Translator) -> str:
    churned, retained = t.percent(100 * means["churned"]), t.percent(100 * means["retained"])
    if after > before:
        why = t.gettext("accounts that churned earned %(churned)s of these points against "
                        "%(retained)s for those that stayed", churned=churned,
                        retained=retained)
    elif means["retained"] - means["churned"] <= 0.01:
        why = t.gettext("it told churners and renewers apart no better than chance "
                        "(%(churned)s vs %(retained)s of its points)", churned=churned,
                        retained=retained)
    else:
        why = t.gettext("other components already carry what it says (%(churned)s vs "
                        "%(retained)s of its points)", churned=churned, retained=retained)
    plain = _PLAIN.get(name)
    said = name if plain is None else t.pgettext("component in words", plain)
    said = said[:1].upper() + said[1:]
    if after > before:
        return t.ngettext("%(component)s (%(name)s) up from %(before)s to %(count)s point: "
                          "%(why)s.",
                          "%(component)s (%(name)s) up from %(before)s to %(count)s points: "
                          "%(why)s.", after, component=said, name=name, before=before,
                          why=why)
    return t.ngettext("%(component)s (%(name)s) down from %(before)s to %(count)s point: "
                      "%(why)s.",
                      "%(component)s (%(name)s) down from %(before)s to %(count)s points: "
                      "%(why)s.", after, component=said, name=name, before=before, why=why)


_SEGMENT_WORDS = {
    "smb": N_("segment in words", "Small-business"),
    "mid_market": N_("segment in words", "Mid-market"),
    "enterprise": N_("segment in words", "Enterprise"),
}


def _segment_said(f: SegmentFit, story: Story, t: Translator) -> str:
    """Whether a segment weighs with its own weights, and the evidence either way."""
    plain = _SEGMENT_WORDS.get(f.segment)
    who = f.segment if plain is None else t.pgettext("segment in words", plain)
    if f.outcome == "one_period":
        return t.gettext(
            "%(segment)s accounts keep the portfolio's weights: their training outcomes "
            "leave no later ones to check weights of their own on.", segment=who)
    if f.auc_own is None or f.auc_portfolio is None:
        return t.ngettext(
            "%(segment)s accounts keep the portfolio's weights: %(count)s assessment of "
            "accounts that churned, or of accounts that stayed, is too few to fit them "
            "alone (%(needed)s of each are needed).",
            "%(segment)s accounts keep the portfolio's weights: %(count)s assessments of "
            "accounts that churned, or of accounts that stayed, are too few to fit them "
            "alone (%(needed)s of each are needed).",
            min(f.churned_rows, f.rows - f.churned_rows), segment=who,
            needed=SEGMENT_MIN_ROWS)
    own, theirs = t.fixed(f.auc_own, 3), t.fixed(f.auc_portfolio, 3)
    if f.weights is None:
        return t.gettext(
            "%(segment)s accounts keep the portfolio's weights: weights of their own, fitted "
            "on their earlier outcomes, did not rank the churners of the later ones clearly "
            "better (AUC %(own)s against %(portfolio)s).", segment=who, own=own,
            portfolio=theirs)
    moved = [f"{n} {a} → {b}" for n, a, b in zip(story.names, story.after, f.weights,
                                                  strict=True) if a != b]
    return t.gettext(
        "%(segment)s accounts weigh with weights of their own (%(moves)s): fitted on their "
        "earlier outcomes, these ranked the churners of the later ones better than the "
        "portfolio's (AUC %(own)s against %(portfolio)s, on %(count)s later renewals).",
        segment=who, moves=", ".join(moved) or t.gettext("the same points"), own=own,
        portfolio=theirs, count=f.check_rows)


def _bands_said(story: Story, t: Translator) -> str:
    why = story.bands_why
    if why.outcome == "few":
        reason = t.gettext("too few outcomes to move the bands")
    elif why.outcome == "unclear":
        reason = t.gettext("no score level separated churners clearly enough to move the "
                           "bands")
    else:
        reason = t.ngettext(
            "in training, accounts scoring under %(watch)s churned at %(below)s (%(count)s "
            "assessment) against %(base)s overall, and accounts at %(healthy)s or more at "
            "%(above)s",
            "in training, accounts scoring under %(watch)s churned at %(below)s (%(count)s "
            "assessments) against %(base)s overall, and accounts at %(healthy)s or more at "
            "%(above)s", why.below_assessments, watch=story.bands_after[0],
            healthy=story.bands_after[1], below=t.percent(100 * why.below_rate),
            base=t.percent(100 * why.base_rate), above=t.percent(100 * why.above_rate))
    if story.bands_after == story.bands_before:
        return t.gettext("Bands unchanged (%(why)s).", why=reason)
    return t.gettext("Bands: at risk below %(watch)s (was %(watch_before)s), healthy from "
                     "%(healthy)s (was %(healthy_before)s), because %(why)s.",
                     watch=story.bands_after[0], watch_before=story.bands_before[0],
                     healthy=story.bands_after[1], healthy_before=story.bands_before[1],
                     why=reason)


# --------------------------------------------------------------------------- evaluation


def compare(
    default_snapshots: Sequence[Snapshot],
    calibrated_snapshots: Sequence[Snapshot],
    split: date,
) -> tuple[list[Snapshot], dict[str, RiskFn]]:
    """Test-set snapshots (outcome after ``split``) present in both runs, and the models
    to rank them by: default score, calibrated score and the baselines."""
    cal = {s.key: s.score for s in calibrated_snapshots}
    rows = [
        s for s in default_snapshots
        if not _is_train(s, split) and s.key in cal
    ]
    models: dict[str, RiskFn] = {
        "score": MODELS["score"],
        "calibrated": lambda s: 100.0 - cal[s.key],
        **BASELINES,
    }
    return rows, models


def probability_check(calibration: Calibration, test_rows: Sequence[Snapshot],
                      calibrated: Sequence[Snapshot]) -> dict[str, Any]:
    """Out of time: the learnt churn probability of each test account's calibrated score
    against what happened: Brier score (and that of always predicting the training churn
    rate, for reference) and the reliability curve."""
    cal = {s.key: s.score for s in calibrated}
    predicted = [calibration.churn_probability(cal[s.key])
                 for s in test_rows]
    churned = [s.churned for s in test_rows]
    base = calibration.train_churned / calibration.train_renewals \
        if calibration.train_renewals else 0.0
    return {
        "accounts": len(test_rows),
        "brier": brier_score(predicted, churned),
        "brier_training_rate": brier_score([base] * len(churned), churned),
        "reliability": reliability_curve(predicted, churned, 5),
    }


def run_calibration(
    history: Sequence[Any] | HistorySource,
    outcomes: Sequence[OutcomeRecord],
    config: ScoringConfig,
    horizons: Sequence[int],
    params: ProfitParams,
    train_share: float = 0.6,
    interval_days: float = 1.0,
    progress: bool = False,
    l2: float = DEFAULT_L2,
    prior_churners: float = DEFAULT_PRIOR_CHURNERS,
    jobs: int = 1,
) -> tuple[Calibration, dict[str, Any]]:
    """Backtest the current config, calibrate on the earlier outcomes, replay the new
    config, and compare both (and the baseline) on the later outcomes.

    ``history``: events in time order, or a file, which each of the two replays reads
    again over ``jobs`` processes (so the history is never held in memory)."""

    imported: list[str] = []

    def replay(cfg: ScoringConfig) -> ReplayRun:
        if isinstance(history, HistorySource):
            run, report = replay_history(history, outcomes, cfg, horizons, interval_days,
                                         jobs, progress)
            imported[:] = [report.summary()]
            return run
        return replay_snapshots(history, outcomes, cfg, horizons, interval_days,
                                Progress() if progress else None)

    split = split_date(outcomes, train_share)
    first = replay(config)
    calibration = calibrate(first.snapshots, config, split, l2, prior_churners)
    second = replay(calibration.config)
    rows, models = compare(first.snapshots, second.snapshots, split)
    # the ceiling: models fitted on the same training renewals, when scikit-learn is there
    models.update(learned_models([s for s in first.snapshots if _is_train(s, split)], rows))
    test_outcomes = [o for o in outcomes if o.date > split]
    result = result_dict(first, test_outcomes, config, horizons, params, models, rows)
    # The current config and the baselines on every renewal (in and out of training):
    # the plain backtest, for reference beside the out-of-time comparison.
    result["all_renewals"] = evaluate_snapshots(first.snapshots, horizons, params)
    result["calibration"] = calibration.to_dict()
    if imported:
        result["import"] = imported[0]
    result["calibrated_config_version"] = calibration.config.version
    result["probability_check"] = probability_check(calibration, rows, second.snapshots)
    result["notes"] = [
        f"Out-of-time test: every figure below is computed on the {len(test_outcomes)} "
        f"renewals and churns after {split.isoformat()} only; the calibrated weights were "
        "learnt from the ones before."
    ]
    # the same note as figures, which the report says in its own language
    result["out_of_time"] = {"outcomes": len(test_outcomes), "split_date": split.isoformat()}
    # the calibrated score's own bands on the test set
    cal_bands = {s.key: s.band for s in second.snapshots}
    for h in result["horizons"]:
        hrows = [s for s in rows if s.horizon_days == h["horizon_days"]]
        from history.evaluation import rate_by_group

        h["bands_calibrated"] = rate_by_group(
            [cal_bands[s.key] for s in hrows],
            [s.churned for s in hrows], ("healthy", "watch", "at_risk"),
        )
    return calibration, result


# --------------------------------------------------------------------------- CLI


def add_parser(subparsers: Any) -> Any:
    from history.backtest import add_common_arguments

    parser = subparsers.add_parser(
        "calibrate", help="learn weights and bands from your outcomes; test out of time",
        description="Fit the score's component weights and band thresholds to the outcomes "
        "before a split date, write the new scoring config, and compare it with the "
        "current one on the outcomes after the split.",
    )
    add_common_arguments(parser)
    parser.add_argument("--config", type=Path, default=None,
                        help="current scoring config TOML (default: the workspace's own "
                        "in --workspaces-dir, else the shipped one)")
    parser.add_argument("--train-share", type=float, default=0.6,
                        help="share of outcomes (earliest first) to learn from")
    parser.add_argument("--l2", type=float, default=DEFAULT_L2, help="L2 penalty")
    parser.add_argument("--prior-churners", type=float, default=DEFAULT_PRIOR_CHURNERS,
                        help="how many churners' worth of trust the current weights keep")
    parser.add_argument("--out", type=Path, default=Path("scoring-calibrated.toml"),
                        help="where to write the calibrated scoring config")
    parser.add_argument("--json", type=Path, default=Path("calibration.json"))
    parser.add_argument("--report", type=Path, default=Path("calibration-report"))
    parser.set_defaults(func=run)
    return parser


def run(args: Any) -> int:
    import orjson

    from history.backtest import horizons_from, params_from, scoring_config_for
    from history.importers import read_outcomes
    from history.report import reader, terminal_summary, where_written, write_html

    config = scoring_config_for(args.config, args.workspaces_dir, args.workspace)
    t = reader(args.language, config.locale)
    outcomes = read_outcomes(args.outcomes)
    source = HistorySource(args.events, args.workspace, args.columns)
    calibration, result = run_calibration(
        source, outcomes, config, horizons_from(args.horizons), params_from(args),
        args.train_share, args.interval_days, not args.quiet, args.l2,
        args.prior_churners, args.jobs,
    )
    args.out.write_text(dump_config(calibration.config), encoding="utf-8")
    args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    said = calibration.explain(t)
    page = write_html(result, args.report, t.gettext("Calibrated score, tested out of time"),
                      t, calibration_text=said)
    if "import" in result:
        print(result["import"], file=sys.stderr)
    print(said)
    print()
    print(terminal_summary(result, t))
    print()
    print(t.gettext("New config (%(version)s): %(path)s", version=calibration.config.version,
                    path=str(args.out)))
    print(where_written(args.json, page, t))
    return 0


"""How well a ranking of accounts predicted churn: ROC AUC, lift and precision in the top
decile and top k, recall of churned ARR, churn rate by band, and expected profit of
acting on the riskiest accounts.

Every function takes ``risk`` (higher = more likely to churn), ``churned`` labels and,
where money matters, ``arr``. Ties are handled without favouring anyone: AUC uses mid
ranks, and a cut-off that falls inside a group of equal risks takes an equal fraction
of each member of the group (the expected result of breaking ties at random), so a
baseline with many identical values is neither helped nor hurt by the order of the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ProfitParams:
    """Economics of a save motion. ``save_rate``: share of contacted would-be churners
    who then stay; ``intervention_cost``: per account contacted, in the scoring config's
    currency (the report's); ``margin``: gross margin on ARR (profit counts margin on one
    year of saved ARR)."""

    intervention_cost: float = 500.0
    save_rate: float = 0.3
    margin: float = 0.8
    target_share: float = 0.1
    top_k: int = 20


def roc_auc(risk: Sequence[float], churned: Sequence[bool]) -> float | None:
    """Probability that a random churner is ranked riskier than a random renewer (ties ½);
    ``None`` when one class is missing."""
    n_pos = sum(1 for c in churned if c)
    n_neg = len(churned) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = sorted(range(len(risk)), key=lambda i: risk[i])
    ranks = [0.0] * len(risk)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and risk[order[j + 1]] == risk[order[i]]:
            j += 1
        mid = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[order[k]] = mid
        i = j + 1
    rank_sum = sum(r for r, c in zip(ranks, churned, strict=True) if c)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _tied_groups(risk: Sequence[float]) -> list[list[int]]:
    order = sorted(range(len(risk)), key=lambda i: -risk[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and risk[groups[-1][0]] == risk[i]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def top_weights(risk: Sequence[float], k: float,
                groups: Sequence[Sequence[int]] | None = None) -> list[float]:
    """How much of each account falls in the riskiest ``k`` (fractional at a tie).
    ``groups``: ``_tied_groups(risk)`` when the caller already has it (a ranking cut at
    many points sorts once, not once per cut)."""
    weights = [0.0] * len(risk)
    left = float(k)
    for group in groups if groups is not None else _tied_groups(risk):
        if left <= 0:
            break
        take = min(1.0, left / len(group))
        for i in group:
            weights[i] = take
        left -= take * len(group)
    return weights


def capture_curve(
    risk: Sequence[float], churned: Sequence[bool], arr: Sequence[float] | None = None,
    points: int = 50,
) -> list[tuple[float, float, float]]:
    """Cumulative gains: (share of accounts targeted, share of churners caught, share of
    churned ARR caught), from the riskiest down, at ``points`` evenly spaced cut-offs."""
    n = len(risk)
    total = sum(1 for c in churned if c)
    arr_values = arr if arr is not None else [1.0] * n
    total_arr = sum(a for a, c in zip(arr_values, churned, strict=True) if c)
    curve = [(0.0, 0.0, 0.0)]
    groups = _tied_groups(risk)
    for step in range(1, points + 1):
        share = step / points
        w = top_weights(risk, share * n, groups)
        caught = sum(wi for wi, c in zip(w, churned, strict=True) if c)
        caught_arr = sum(
            wi * a for wi, a, c in zip(w, arr_values, churned, strict=True) if c
        )
        curve.append((
            share,
            caught / total if total else 0.0,
            caught_arr / total_arr if total_arr else 0.0,
        ))
    return curve


def profit_at(
    risk: Sequence[float], churned: Sequence[bool], arr: Sequence[float], k: float,
    params: ProfitParams, groups: Sequence[Sequence[int]] | None = None,
) -> float:
    """Expected profit of contacting the riskiest ``k`` accounts: saved margin on the ARR
    of the churners among them times the save rate, minus the cost of every contact
    (``groups``: see :func:`top_weights`)."""
    w = top_weights(risk, k, groups)
    saved = sum(
        wi * a for wi, a, c in zip(w, arr, churned, strict=True) if c
    ) * params.save_rate * params.margin
    return saved - params.intervention_cost * sum(w)


@dataclass(frozen=True, slots=True)
class RankingReport:
    """The figures of one model (score or baseline) at one horizon."""

    accounts: int
    churned: int
    base_rate: float
    auc: float | None
    top_decile_n: float
    top_decile_precision: float
    top_decile_lift: float
    top_k: int
    top_k_precision: float
    top_k_lift: float
    churned_arr_recall_top_decile: float
    profit_top_decile: float
    best_profit: float
    best_profit_share: float
    profit_all: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_ranking(
    risk: Sequence[float], churned: Sequence[bool], arr: Sequence[float],
    params: ProfitParams,
) -> RankingReport:
    n = len(risk)
    n_churned = sum(1 for c in churned if c)
    base = n_churned / n if n else 0.0
    decile = n * params.target_share
    groups = _tied_groups(risk)
    w = top_weights(risk, decile, groups)
    caught = sum(wi for wi, c in zip(w, churned, strict=True) if c)
    precision = caught / decile if decile else 0.0
    k = min(params.top_k, n)
    wk = top_weights(risk, k, groups)
    caught_k = sum(wi for wi, c in zip(wk, churned, strict=True) if c)
    precision_k = caught_k / k if k else 0.0
    churned_arr = sum(a for a, c in zip(arr, churned, strict=True) if c)
    caught_arr = sum(wi * a for wi, a, c in zip(w, arr, churned, strict=True) if c)
    best, best_share = 0.0, 0.0
    for step in range(1, 21):
        share = step / 20
        value = profit_at(risk, churned, arr, share * n, params, groups)
        if value > best:
            best, best_share = value, share
    return RankingReport(
        accounts=n,
        churned=n_churned,
        base_rate=base,
        auc=roc_auc(risk, churned),
        top_decile_n=decile,
        top_decile_precision=precision,
        top_decile_lift=precision / base if base else 0.0,
        top_k=k,
        top_k_precision=precision_k,
        top_k_lift=precision_k / base if base else 0.0,
        churned_arr_recall_top_decile=caught_arr / churned_arr if churned_arr else 0.0,
        profit_top_decile=profit_at(risk, churned, arr, decile, params, groups),
        best_profit=best,
        best_profit_share=best_share,
        profit_all=profit_at(risk, churned, arr, n, params, groups),
    )


def rate_by_group(
    groups: Sequence[str], churned: Sequence[bool], order: Sequence[str]
) -> list[dict[str, Any]]:
    """Churn rate per group (e.g. per band), in the given order, with counts."""
    rows = []
    for name in order:
        members = [c for g, c in zip(groups, churned, strict=True) if g == name]
        rows.append({
            "group": name,
            "accounts": len(members),
            "churned": sum(1 for c in members if c),
            "churn_rate": (sum(1 for c in members if c) / len(members)) if members else None,
        })
    return rows


def rate_by_quantile(
    risk: Sequence[float], churned: Sequence[bool], buckets: int = 5
) -> list[dict[str, Any]]:
    """Churn rate per risk quantile, riskiest first (fractional membership at ties)."""
    n = len(risk)
    rows = []
    previous = [0.0] * n
    groups = _tied_groups(risk)
    for b in range(1, buckets + 1):
        upto = top_weights(risk, n * b / buckets, groups)
        share = [u - p for u, p in zip(upto, previous, strict=True)]
        size = sum(share)
        caught = sum(s for s, c in zip(share, churned, strict=True) if c)
        rows.append({
            "group": f"Q{b}",
            "accounts": size,
            "churned": caught,
            "churn_rate": caught / size if size else None,
        })
        previous = upto
    return rows


def _risk_groups(risk: Sequence[float]) -> list[list[int]]:
    """Indices grouped by equal risk, least risky group first."""
    return list(reversed(_tied_groups(risk)))


def _weighted_auc_and_lift(
    groups: Sequence[Sequence[int]], churned: Sequence[bool], weights: Sequence[int],
    share: float,
) -> tuple[float | None, float]:
    """AUC (mid ranks at ties) and top-``share`` lift of one ranking on a resample in
    which account ``i`` appears ``weights[i]`` times; ``groups`` from :func:`_risk_groups`."""
    pos_groups: list[tuple[int, int]] = []
    for g in groups:
        wp = wn = 0
        for i in g:
            w = weights[i]
            if w:
                if churned[i]:
                    wp += w
                else:
                    wn += w
        pos_groups.append((wp, wn))
    total_pos = sum(p for p, _ in pos_groups)
    total = total_pos + sum(n for _, n in pos_groups)
    if total == 0 or total_pos == 0:
        return None, 0.0
    wins = 0.0
    below = 0
    for wp, wn in pos_groups:
        wins += wp * (below + 0.5 * wn)
        below += wn
    auc = wins / (total_pos * below) if below else None
    left = share * total
    caught = 0.0
    for wp, wn in reversed(pos_groups):
        size = wp + wn
        if left <= 0:
            break
        if size == 0:
            continue
        take = min(1.0, left / size)
        caught += take * wp
        left -= take * size
    target = share * total
    lift = (caught / target) / (total_pos / total) if target else 0.0
    return auc, lift


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def bootstrap_resamples(n: int) -> int:
    """Resamples for a portfolio of ``n`` accounts: 1,000 up to 5,000 accounts, then
    fewer (200 at least), so that pure-Python resampling stays within seconds; with so
    many accounts the interval is narrow anyway."""
    return max(200, min(1000, 5_000_000 // max(1, n)))


def paired_bootstrap(
    risk_a: Sequence[float], risk_b: Sequence[float], churned: Sequence[bool],
    share: float = 0.1, resamples: int | None = None, seed: int = 0, level: float = 0.95,
) -> dict[str, Any]:
    """Ranking ``a`` minus ranking ``b`` on the same accounts: the AUC and top-``share``
    lift differences with a percentile bootstrap interval (accounts resampled with
    replacement, both rankings on each resample) and how often ``a`` won the resamples.

    Deterministic for a given ``seed``. Resamples with a single class are skipped."""
    import random

    n = len(churned)
    reps = resamples if resamples is not None else bootstrap_resamples(n)
    groups_a, groups_b = _risk_groups(risk_a), _risk_groups(risk_b)
    full = [1] * n
    auc_a, lift_a = _weighted_auc_and_lift(groups_a, churned, full, share)
    auc_b, lift_b = _weighted_auc_and_lift(groups_b, churned, full, share)
    rng = random.Random(seed)
    auc_diffs: list[float] = []
    lift_diffs: list[float] = []
    population = range(n)
    for _ in range(reps if n else 0):
        weights = [0] * n
        for i in rng.choices(population, k=n):
            weights[i] += 1
        a_auc, a_lift = _weighted_auc_and_lift(groups_a, churned, weights, share)
        b_auc, b_lift = _weighted_auc_and_lift(groups_b, churned, weights, share)
        if a_auc is None or b_auc is None:
            continue
        auc_diffs.append(a_auc - b_auc)
        lift_diffs.append(a_lift - b_lift)
    tail = (1.0 - level) / 2

    def interval(values: list[float]) -> list[float] | None:
        if not values:
            return None
        return [_percentile(values, tail), _percentile(values, 1.0 - tail)]

    return {
        "auc_difference": (auc_a - auc_b) if auc_a is not None and auc_b is not None
        else None,
        "auc_interval": interval(auc_diffs),
        "lift_difference": lift_a - lift_b,
        "lift_interval": interval(lift_diffs),
        "auc_wins": (sum(1 for d in auc_diffs if d > 0) / len(auc_diffs)) if auc_diffs
        else None,
        "resamples": len(auc_diffs),
        "level": level,
    }


def brier_score(probability: Sequence[float], churned: Sequence[bool]) -> float | None:
    """Mean squared error of churn probabilities against what happened (0 is perfect)."""
    if not probability:
        return None
    return sum((p - (1.0 if c else 0.0)) ** 2
               for p, c in zip(probability, churned, strict=True)) / len(probability)


def reliability_curve(
    probability: Sequence[float], churned: Sequence[bool], buckets: int = 5
) -> list[dict[str, Any]]:
    """Accounts in ``buckets`` equal groups by predicted churn probability (lowest first):
    the mean prediction and the share that churned in each. Close together: trustworthy."""
    order = sorted(range(len(probability)), key=lambda i: probability[i])
    rows = []
    for b in range(buckets):
        members = order[b * len(order) // buckets:(b + 1) * len(order) // buckets]
        if not members:
            continue
        rows.append({
            "accounts": len(members),
            "predicted": sum(probability[i] for i in members) / len(members),
            "observed": sum(1 for i in members if churned[i]) / len(members),
        })
    return rows

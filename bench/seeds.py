"""Does the default score beat the best simple baseline on the simulator, whatever the
seed? For each seed: the score's and the best baseline's AUC and top-decile lift at one
horizon, and their differences; then the mean, standard deviation, the seeds won, and a
95% interval on the mean difference (Student's t over the seeds).

    .venv/bin/python bench/seeds.py [--seeds 1-10] [--accounts 400] [--days 365]
        [--horizon 60] [--interval-days 7] [--jobs 2]

The best baseline is chosen per seed, after the fact, among all of them (recency,
product events and active days over several windows, active seats, logins), which
favours the baselines: the maximum of several noisy figures is above each one's
mean. So it also prints the score against each baseline kept the same on every seed,
the best of them by mean AUC, and (with scikit-learn, the ``ml`` extra) the learned
reference fitted out of seed on the score's own features, which says how much of the
learnable signal the score captures. Replays use a weekly grid by default, as the predictive-power
test does (snapshot scores are exact assessments whatever the grid). Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from history import learned
from history.backtest import Snapshot, evaluate_snapshots, replay_snapshots
from history.evaluation import ProfitParams, evaluate_ranking
from history.importers import OutcomeRecord, segment_events
from history.simulate import simulate
from scoring.config import load_config

# two-sided 95% Student's t quantiles by degrees of freedom (beyond 30: the normal's)
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131,
        16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 25: 2.060, 30: 2.042}


def t95(df: int) -> float:
    if df in _T95:
        return _T95[df]
    below = [d for d in _T95 if d <= df]
    return _T95[max(below)] if df <= 30 else 1.96


def one_seed(seed: int, accounts: int, days: int, horizon: int,
             interval_days: float) -> dict[str, Any]:
    """The score against the best baseline on one simulated portfolio."""
    sim = simulate(accounts=accounts, days=days, seed=seed)
    events = list(segment_events(sim.events(), "demo"))
    outcomes = [OutcomeRecord(o.account_id, o.date, o.outcome, o.arr, o.new_arr, o.segment)
                for o in sim.outcomes]
    run = replay_snapshots(events, outcomes, load_config(None), (horizon,), interval_days)
    (h,) = evaluate_snapshots(run.snapshots, (horizon,), ProfitParams())
    best = h["best_baseline"]
    score, base = h["models"]["score"], h["models"][best]
    return {
        "seed": seed, "accounts": h["accounts"], "churned": h["churned"], "best": best,
        "score_auc": score["auc"], "baseline_auc": base["auc"],
        "score_lift": score["top_decile_lift"], "baseline_lift": base["top_decile_lift"],
        "comparison": h["comparisons"]["score"],
        "models": {name: (m["auc"], m["top_decile_lift"]) for name, m in h["models"].items()},
        "snapshots": run.snapshots if learned.available() else [],
    }


def fixed_baselines(rows: list[dict[str, Any]]) -> None:
    """The score against each baseline kept the same over every seed, the way a team
    would pick one simple rule and live with it; the best of them by mean AUC last."""
    names = sorted({n for r in rows for n in r["models"] if n.startswith("baseline_")
                    and all(n in x["models"] and x["models"][n][0] is not None
                            for x in rows)})
    if not names:
        return
    print("against each baseline, the same one on every seed (mean over the seeds; "
          "95% interval on the score's mean difference; seeds won):")
    means: dict[str, float] = {}
    for name in names:
        parts = []
        for k, label in ((0, "AUC"), (1, "lift")):
            theirs = [r["models"][name][k] for r in rows]
            diffs = [r["models"]["score"][k] - t for r, t in zip(rows, theirs, strict=True)]
            mean, _, lo, hi = summary(diffs)
            wins = sum(1 for d in diffs if d > 0)
            parts.append(f"{label} {statistics.fmean(theirs):.3f}, score {mean:+.3f} "
                         f"({lo:+.3f} to {hi:+.3f}), {wins}/{len(rows)}")
            if k == 0:
                means[name] = statistics.fmean(theirs)
        print(f"  {name:<26} " + "; ".join(parts))
    best = max(names, key=lambda n: (means[n], n))
    print(f"best baseline over all seeds: {best} (mean AUC {means[best]:.3f})")


def learned_ceiling(rows: list[dict[str, Any]]) -> None:
    """How much of what a model can learn from the score's own features the score
    captures: for each seed, logistic regression and gradient boosting fitted on the
    other seeds' snapshots (out of seed, never its own) and ranked on this one."""
    if not learned.available() or len(rows) < 2:
        print("learned reference: not run (pip install -e '.[ml]' for scikit-learn)")
        return
    found: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        train: list[Snapshot] = [s for o in rows if o is not r for s in o["snapshots"]]
        test: list[Snapshot] = r["snapshots"]
        churned = [s.churned for s in test]
        arr = [s.arr for s in test]
        for name, fn in learned.learned_models(train, test, seed=r["seed"]).items():
            m = evaluate_ranking([fn(s) for s in test], churned, arr, ProfitParams())
            found.setdefault(name, []).append((m.auc or 0.5, m.top_decile_lift))
    score = [r["models"]["score"] for r in rows]
    for name, values in sorted(found.items()):
        auc = [a for a, _ in values]
        lift = [li for _, li in values]
        d_mean, _, lo, hi = summary([s[0] - a for s, a in zip(score, auc, strict=True)])
        print(f"{name} (fitted on the other seeds): AUC {statistics.fmean(auc):.3f} ± "
              f"{statistics.stdev(auc):.3f}, lift {statistics.fmean(lift):.2f}×; the score's "
              f"AUC minus it {d_mean:+.3f} ({lo:+.3f} to {hi:+.3f})")


def summary(values: list[float]) -> tuple[float, float, float, float]:
    """(mean, standard deviation, low, high) with a 95% t interval on the mean."""
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    half = t95(len(values) - 1) * sd / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return mean, sd, mean - half, mean + half


def seeds_from(text: str) -> list[int]:
    out: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, sep, hi = part.partition("-")
        out.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1-10", help="e.g. 1-10 or 1,4,7")
    parser.add_argument("--accounts", type=int, default=400)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--horizon", type=int, default=60)
    parser.add_argument("--interval-days", type=float, default=7.0)
    parser.add_argument("--jobs", type=int, default=2, help="seeds replayed at once")
    args = parser.parse_args()
    seeds = seeds_from(args.seeds)
    started = time.perf_counter()
    print(f"{len(seeds)} seeds, {args.accounts} accounts x {args.days} days, "
          f"{args.horizon} days before the outcome, grid {args.interval_days:g} d")
    print(f"{'seed':>4} {'renewals':>8} {'churned':>7}  {'score AUC':>9} {'best AUC':>8} "
          f"{'ΔAUC (95% bootstrap)':>24}  {'score lift':>10} {'best lift':>9}  best baseline")
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        # each seed's line as soon as it is known: a long run is readable as it goes
        for r in pool.map(one_seed, seeds, [args.accounts] * len(seeds),
                          [args.days] * len(seeds), [args.horizon] * len(seeds),
                          [args.interval_days] * len(seeds)):
            rows.append(r)
            c = r["comparison"]
            lo, hi = c["auc_interval"] or (math.nan, math.nan)
            print(f"{r['seed']:>4} {r['accounts']:>8} {r['churned']:>7}  "
                  f"{r['score_auc']:>9.3f} {r['baseline_auc']:>8.3f} "
                  f"{c['auc_difference']:>+8.3f} ({lo:+.3f}, {hi:+.3f})  "
                  f"{r['score_lift']:>9.2f}× {r['baseline_lift']:>8.2f}×  {r['best']}",
                  flush=True)
    print(f"({time.perf_counter() - started:.0f} s)")
    for label, score_key, base_key in (("AUC", "score_auc", "baseline_auc"),
                                       ("top-decile lift", "score_lift", "baseline_lift")):
        diffs = [r[score_key] - r[base_key] for r in rows]
        s_mean, s_sd, _, _ = summary([r[score_key] for r in rows])
        b_mean, b_sd, _, _ = summary([r[base_key] for r in rows])
        d_mean, d_sd, lo, hi = summary(diffs)
        wins = sum(1 for d in diffs if d > 0)
        print(f"{label}: score {s_mean:.3f} ± {s_sd:.3f}, best baseline {b_mean:.3f} ± "
              f"{b_sd:.3f}; difference {d_mean:+.3f} ± {d_sd:.3f} (95% interval on the "
              f"mean {lo:+.3f} to {hi:+.3f}); the score wins {wins} of {len(rows)} seeds")
    fixed_baselines(rows)
    learned_ceiling(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

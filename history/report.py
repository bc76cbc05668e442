"""The backtest report: a terminal summary and a standalone HTML page with SVG charts that
a CS leader can read without knowing what an AUC is.

:func:`write_html` writes ``index.html`` and its charts (``*.svg``) into one folder; the
page references the charts by relative path, so the folder can be zipped, mailed or
served as it is.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from history import plots
from scoring.labels import BAND_LABELS

MODEL_LABELS = {
    "score": "Telltale health score",
    "calibrated": "Calibrated score",
    "learned_logistic": "Learned reference: logistic regression",
    "learned_boosting": "Learned reference: gradient boosting",
    "baseline_recency": "Baseline: days since last use",
    "baseline_events_7d": "Baseline: product events (7 days)",
    "baseline_events_30d": "Baseline: product events (30 days)",
    "baseline_active_days_14d": "Baseline: active days (14 days)",
    "baseline_active_days_30d": "Baseline: active days (30 days)",
    "baseline_active_users": "Baseline: active users (30 days)",
    "baseline_logins": "Baseline: logins (30 days)",
}
CHARTED = ("score", "calibrated", "learned_logistic", "learned_boosting")


def _label(model: str) -> str:
    return MODEL_LABELS.get(model, model.replace("_", " "))


def _fmt(value: Any, kind: str = "num") -> str:
    if value is None:
        return "–"
    if kind == "pct":
        return f"{value:.0%}"
    if kind == "x":
        return f"{value:.2f}×"
    if kind == "usd":
        sign = "−" if value < 0 else ""
        return f"{sign}${abs(value):,.0f}"
    if kind == "auc":
        return f"{value:.3f}"
    if kind == "days":
        return f"{value:.0f} d"
    return f"{value:,.0f}" if isinstance(value, float) else str(value)


def _signed(value: float, kind: str) -> str:
    sign = "+" if value >= 0 else "−"
    return f"{sign}{abs(value):.3f}" if kind == "auc" else f"{sign}{abs(value):.2f}×"


def comparison_sentences(h: dict[str, Any]) -> list[str]:
    """Each scored ranking against the horizon's best baseline, in words, and every
    baseline that beats it: a baseline that wins is always said."""
    out: list[str] = []
    for name, c in h.get("comparisons", {}).items():
        base = c["baseline"]
        text = f"{_label(name)} against the best baseline ({_label(base)}): "
        if c["auc_difference"] is not None:
            text += f"AUC {_signed(c['auc_difference'], 'auc')}"
            if c["auc_interval"]:
                lo, hi = c["auc_interval"]
                text += f" ({c['level']:.0%} interval {_signed(lo, 'auc')} to {_signed(hi, 'auc')})"
            text += ", "
        text += f"top-10% lift {_signed(c['lift_difference'], 'x')}"
        if c["lift_interval"]:
            lo, hi = c["lift_interval"]
            text += f" ({_signed(lo, 'x')} to {_signed(hi, 'x')})"
        out.append(text + ".")
    models = h.get("models", {})
    learned = [m["auc"] for n, m in models.items()
               if n.startswith("learned_") and m["auc"] is not None]
    ceiling = max(learned, default=None)
    for name in ("score", "calibrated"):
        auc = (models.get(name) or {}).get("auc")
        if ceiling is not None and auc is not None and ceiling > 0.5:
            # above chance, as a share of what the fitted models found above chance
            out.append(f"{_label(name)} captures {(auc - 0.5) / (ceiling - 0.5):.0%} of "
                       f"the learnable signal (AUC {auc:.3f} against the learned "
                       f"reference's {ceiling:.3f}).")
    for name, beating in h.get("baselines_beating", {}).items():
        if beating:
            out.append(f"Warning: {', '.join(_label(b) for b in beating)} "
                       f"{'beats' if len(beating) == 1 else 'beat'} the "
                       f"{_label(name)} on AUC or top-10% lift at this horizon.")
    return out


def terminal_summary(result: dict[str, Any]) -> str:
    """A few lines per horizon: each model's AUC, top-decile lift, ARR recall, profit."""
    lines = [
        f"Backtest of scoring config {result['config_version']!r}: "
        f"{result['events']:,} events, {result['accounts_with_outcome']:,} accounts with an "
        f"outcome; {result['replay']['events_per_second']:,.0f} events/s read and replayed "
        f"(scoring alone {result['replay']['replay_events_per_second']:,.0f}/s)",
    ]
    replay = result["replay"]
    if replay.get("cpu_seconds"):
        lines.append(
            f"{replay['account_evaluations']:,} account evaluations, "
            f"{replay['events_per_cpu_second']:,.0f} events per CPU second, peak memory "
            f"{replay['peak_rss_mib']:,.0f} MiB per process"
        )
    params = result["params"]
    lines.append(
        f"Profit assumes ${params['intervention_cost']:,.0f} per account contacted, "
        f"{params['save_rate']:.0%} of contacted churners saved, {params['margin']:.0%} margin."
    )
    for h in result["horizons"]:
        lines.append("")
        lines.append(
            f"{h['horizon_days']} days before the outcome: {h['accounts']} accounts, "
            f"{h['churned']} churned ({h['base_rate']:.1%})"
        )
        lines.append(
            f"  {'model':<36} {'AUC':>6} {'lift@10%':>9} {'prec@10%':>9} "
            f"{'lift@k':>7} {'ARR caught':>10} {'profit@10%':>12}"
        )
        for name, m in h["models"].items():
            lines.append(
                f"  {_label(name):<36} {_fmt(m['auc'], 'auc'):>6} "
                f"{m['top_decile_lift']:>8.2f}× {m['top_decile_precision']:>9.1%} "
                f"{m['top_k_lift']:>6.2f}× {m['churned_arr_recall_top_decile']:>10.1%} "
                f"{_fmt(m['profit_top_decile'], 'usd'):>12}"
            )
        for name, why in h.get("not_computable", {}).items():
            lines.append(f"  {_label(name):<36} not computable here: {why}")
        lines.extend(f"  {line}" for line in comparison_sentences(h))
        for kind, t in (h.get("by_churn_type") or {}).items():
            aucs = ", ".join(f"{_label(m)} {_fmt(a, 'auc')}" for m, a in t["auc"].items())
            lines.append(f"  {kind} churn ({t['accounts']} accounts) against those that "
                         f"stayed whole, AUC: {aucs}")
        table = h.get("preceded_churn") or []
        if table:
            lines.append("  what preceded churn (signal active at the horizon → churn rate "
                         "where active / not; how often active; median lead):")
        for row in table[:8]:  # the most telling; the page has them all
            lines.append(
                f"    {row['signal']:<30} {_fmt(row['churn_rate_active'], 'pct'):>5} / "
                f"{_fmt(row['churn_rate_inactive'], 'pct'):<5} active "
                f"{row['share_active']:.0%}, lead "
                f"{_fmt(row['median_lead_days'], 'days')}"
            )
        bands = h.get("bands")
        if bands:
            text = ", ".join(
                f"{BAND_LABELS.get(b['group'], b['group'])} {_fmt(b['churn_rate'], 'pct')} "
                f"of {b['accounts']}" for b in bands
            )
            lines.append(f"  churn by band: {text}")
    check = result.get("probability_check")
    if check and check.get("brier") is not None:
        curve = ", ".join(f"{r['predicted']:.0%}→{r['observed']:.0%}"
                          for r in check["reliability"])
        lines.append("")
        lines.append(f"Churn probability out of time: Brier {check['brier']:.3f} (the "
                     f"earlier churn rate alone {check['brier_training_rate']:.3f}); "
                     f"predicted → observed by fifth: {curve}")
    return "\n".join(lines)


_CSS = """
body{font-family:Helvetica,Arial,sans-serif;color:#222;max-width:1180px;margin:24px auto;
padding:0 20px;line-height:1.45}
h1{font-size:26px;margin-bottom:4px}h2{font-size:20px;margin-top:36px;border-bottom:1px solid
#ddd;padding-bottom:4px}h3{font-size:16px;margin:18px 0 6px}
.sub{color:#666;margin-top:0}
.cards{display:flex;gap:14px;flex-wrap:wrap;margin:18px 0}
.card{flex:1 1 200px;border:1px solid #ddd;border-radius:8px;padding:12px 14px;background:#fafafa}
.card .big{font-size:26px;font-weight:bold}.card .lbl{color:#555;font-size:13px}
.good{color:#1d7a3e}.bad{color:#b02a2a}
table{border-collapse:collapse;margin:8px 0 14px;font-size:14px}
th,td{border-bottom:1px solid #e3e3e3;padding:5px 10px;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}
.charts{display:flex;flex-wrap:wrap;gap:16px}
.charts figure{margin:0;flex:0 0 560px}.charts img{width:560px;height:340px;border:1px solid #eee}
figcaption{font-size:13px;color:#555;max-width:560px}
.note{background:#f6f8fb;border-left:4px solid #1f5fa8;padding:8px 12px;font-size:14px}
"""


def _model_table(h: dict[str, Any]) -> str:
    rows = [
        "<table><tr><th>Ranking</th><th>AUC</th><th>Lift, top 10%</th>"
        "<th>Churners in top 10%</th><th>Lift, top k</th><th>Churned ARR in top 10%</th>"
        "<th>Profit, top 10%</th><th>Best profit (share contacted)</th></tr>"
    ]
    for name, m in h["models"].items():
        rows.append(
            f"<tr><td>{escape(_label(name))}</td><td>{_fmt(m['auc'], 'auc')}</td>"
            f"<td>{_fmt(m['top_decile_lift'], 'x')}</td>"
            f"<td>{_fmt(m['top_decile_precision'], 'pct')}</td>"
            f"<td>{_fmt(m['top_k_lift'], 'x')} (k={m['top_k']})</td>"
            f"<td>{_fmt(m['churned_arr_recall_top_decile'], 'pct')}</td>"
            f"<td>{_fmt(m['profit_top_decile'], 'usd')}</td>"
            f"<td>{_fmt(m['best_profit'], 'usd')} ({_fmt(m['best_profit_share'], 'pct')})</td>"
            "</tr>"
        )
    for name, why in h.get("not_computable", {}).items():
        rows.append(f"<tr><td>{escape(_label(name))}</td>"
                    f"<td colspan='7'>not computable on this history: {escape(why)}</td></tr>")
    rows.append("</table>")
    for line in comparison_sentences(h):
        css = "note bad" if line.startswith("Warning") else "note"
        rows.append(f"<p class='{css}'>{escape(line)}</p>")
    return "\n".join(rows)


def _preceded_table(h: dict[str, Any]) -> str:
    table = h.get("preceded_churn") or []
    if not table:
        return ""
    cells = "".join(
        f"<tr><td>{escape(r['signal'].replace('_', ' '))}</td>"
        f"<td>{_fmt(r['churn_rate_active'], 'pct')}</td>"
        f"<td>{_fmt(r['churn_rate_inactive'], 'pct')}</td>"
        f"<td>{_fmt(r['share_active'], 'pct')} ({r['accounts_active']})</td>"
        f"<td>{_fmt(r['churners_flagged'], 'pct')}</td>"
        f"<td>{_fmt(r['median_lead_days'], 'days')}</td></tr>"
        for r in table
    )
    return ("<h3>What preceded churn</h3><p>For each signal: the churn rate of the accounts "
            "where it was active at this horizon against those where it was not, how often "
            "it was active, the share of churners it flagged, and the median days from its "
            "start to the churn. Trust the signals whose two rates differ most.</p>"
            "<table><tr><th>Signal</th><th>Churn rate, active</th><th>Churn rate, not "
            "active</th><th>Active on</th><th>Churners flagged</th><th>Median lead</th></tr>"
            f"{cells}</table>")


def _churn_type_table(h: dict[str, Any]) -> str:
    kinds = h.get("by_churn_type") or {}
    if not kinds:
        return ""
    models = list(next(iter(kinds.values()))["auc"])
    head = "".join(f"<th>AUC, {escape(_label(m))}</th>" for m in models)
    cells = "".join(
        f"<tr><td>{escape(kind)}</td><td>{t['accounts']}</td>"
        f"<td>{escape(', '.join(f'{r} {n}' for r, n in t['reasons'].items()))}</td>"
        + "".join(f"<td>{_fmt(t['auc'].get(m), 'auc')}</td>" for m in models) + "</tr>"
        for kind, t in kinds.items()
    )
    return ("<h3>By type of churn</h3><p>Each kind of churn against the accounts that "
            "stayed whole: a score can see a customer deciding to leave long before it "
            "sees a card expire.</p>"
            f"<table><tr><th>Type</th><th>Accounts</th><th>Reasons</th>{head}</tr>{cells}"
            "</table>")


def _band_table(h: dict[str, Any], key: str = "bands",
                title: str = "Band at the time") -> str:
    bands = h.get(key) or []
    if not bands:
        return ""
    cells = "".join(
        f"<tr><td>{escape(BAND_LABELS.get(b['group'], b['group']))}</td><td>{b['accounts']}</td>"
        f"<td>{b['churned']}</td><td>{_fmt(b['churn_rate'], 'pct')}</td></tr>"
        for b in bands
    )
    return (f"<table><tr><th>{escape(title)}</th><th>Accounts</th><th>Churned</th>"
            f"<th>Churn rate</th></tr>{cells}</table>")


def _headline(result: dict[str, Any], h: dict[str, Any]) -> str:
    models = h["models"]
    score = models.get("score")
    best = h.get("best_baseline")
    base = models.get(best) if best else None
    if score is None:
        return ""
    cards = [
        ("Churners in the riskiest 10%", _fmt(score["top_decile_precision"], "pct"),
         f"vs {_fmt(h['base_rate'], 'pct')} on average"),
        ("Lift in the riskiest 10%", _fmt(score["top_decile_lift"], "x"),
         f"best baseline {_fmt(base['top_decile_lift'], 'x')}" if base else ""),
        ("Churned ARR flagged (top 10%)", _fmt(score["churned_arr_recall_top_decile"], "pct"),
         f"baseline {_fmt(base['churned_arr_recall_top_decile'], 'pct')}" if base else ""),
        ("Expected profit, top 10%", _fmt(score["profit_top_decile"], "usd"),
         f"baseline {_fmt(base['profit_top_decile'], 'usd')}" if base else ""),
    ]
    if "calibrated" in models:
        cal = models["calibrated"]
        cards.append(("Calibrated score lift (top 10%)", _fmt(cal["top_decile_lift"], "x"),
                      f"AUC {_fmt(cal['auc'], 'auc')}"))
    inner = "".join(
        f"<div class='card'><div class='lbl'>{escape(t)}</div><div class='big'>{escape(v)}</div>"
        f"<div class='lbl'>{escape(s)}</div></div>" for t, v, s in cards
    )
    return f"<div class='cards'>{inner}</div>"


def _charts_for(h: dict[str, Any], folder: Path) -> list[tuple[str, str]]:
    """Write the horizon's charts; returns (file name, caption) pairs."""
    days = h["horizon_days"]
    written: list[tuple[str, str]] = []
    # the scored rankings and the best baseline: seven baseline curves would hide them
    shown = {*CHARTED, h.get("best_baseline")}
    curves = [(_label(name), [(x, y) for x, y, _ in pts]) for name, pts in h["gains"].items()
              if name in shown]
    name = f"lift_{days}d.svg"
    (folder / name).write_text(plots.gains_chart(
        f"Churners caught, {days} days before the outcome", curves), encoding="utf-8")
    written.append((name, "Contacting accounts from the riskiest down: how many of the "
                    "accounts that later churned are reached. Higher and further left is "
                    "better; the dashed diagonal is picking at random."))
    dist = h.get("score_distribution")
    if dist:
        name = f"scores_{days}d.svg"
        groups = [("churned", dist["churned"]), ("renewed or contracted", dist["retained"])]
        (folder / name).write_text(plots.distribution_chart(
            f"Health score {days} days before the outcome", groups), encoding="utf-8")
        written.append((name, "Where the accounts that churned and the accounts that stayed "
                        "sat on the 0-100 health score. The less the two shapes overlap, the "
                        "better the score separates them."))
    bands = h.get("bands")
    if bands:
        series = [("score", [(BAND_LABELS.get(b["group"], b["group"]), b["churn_rate"],
                              b["accounts"]) for b in bands])]
        name = f"bands_{days}d.svg"
        (folder / name).write_text(plots.rate_chart(
            f"Churn rate by health band, {days} days before", series,
            base_rate=h["base_rate"], x_label="band at the time"), encoding="utf-8")
        written.append((name, "Calibration by band: the share of accounts in each band that "
                        "went on to churn. A useful score has a clearly higher rate in "
                        "'At risk' than in 'Healthy'."))
    quint = h.get("quintiles")
    if quint:
        series = [
            (_label(model), [(row["group"], row["churn_rate"], row["accounts"]) for row in rows])
            for model, rows in quint.items()
        ]
        name = f"quintiles_{days}d.svg"
        (folder / name).write_text(plots.rate_chart(
            f"Churn rate by risk quintile, {days} days before", series,
            base_rate=h["base_rate"], x_label="risk quintile (Q1 = riskiest 20%)"),
            encoding="utf-8")
        written.append((name, "Accounts split in five equal groups by each ranking, riskiest "
                        "first. A good ranking puts most churn in Q1 and little in Q5."))
    return written


def write_html(result: dict[str, Any], folder: Path, title: str = "Churn backtest") -> Path:
    """Write ``index.html`` and the SVG charts into ``folder``; returns the page path."""
    folder.mkdir(parents=True, exist_ok=True)
    params = result["params"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p class='sub'>Scoring config <b>{escape(str(result['config_version']))}</b> replayed "
        f"over {result['events']:,} events; {result['accounts_with_outcome']:,} accounts with a "
        f"known outcome ({escape(result.get('period', ''))}).</p>",
    ]
    primary = result.get("primary_horizon")
    horizons = result["horizons"]
    main = next((h for h in horizons if h["horizon_days"] == primary), horizons[0] if horizons
                else None)
    if main is not None:
        parts.append(f"<h2>At a glance: {main['horizon_days']} days before renewal or "
                     "churn</h2>")
        parts.append(_headline(result, main))
        parts.append(
            "<p class='note'>Each account is scored as it stood on the day shown, using only "
            "what had happened until then, exactly as Telltale would have scored it live. "
            "The baselines rank the same accounts by simple usage counts (days since last "
            "use, product events, active days, active seats, logins); the cards compare the "
            "score with the best of them at this horizon. Profit assumes contacting an "
            f"account costs ${params['intervention_cost']:,.0f}, "
            f"{params['save_rate']:.0%} of contacted would-be churners are saved, and "
            f"{params['margin']:.0%} gross margin on one year "
            "of their ARR.</p>"
        )
    for note in result.get("notes", []):
        parts.append(f"<p class='note'>{escape(note)}</p>")
    for h in horizons:
        parts.append(f"<h2>{h['horizon_days']} days before the outcome</h2>")
        parts.append(
            f"<p>{h['accounts']} accounts, of which {h['churned']} churned "
            f"({_fmt(h['base_rate'], 'pct')}).</p>"
        )
        parts.append(_model_table(h))
        parts.append(_band_table(h))
        parts.append(_band_table(h, "bands_calibrated", "Calibrated band at the time"))
        parts.append(_churn_type_table(h))
        parts.append(_preceded_table(h))
        parts.append("<div class='charts'>")
        for name, caption in _charts_for(h, folder):
            parts.append(f"<figure><img src='{escape(name)}' alt='{escape(caption)}'>"
                         f"<figcaption>{escape(caption)}</figcaption></figure>")
        parts.append("</div>")
    calibration = result.get("calibration")
    if calibration:
        parts.append("<h2>Calibration: what your history says about the weights</h2>")
        parts.append(f"<p>{escape(calibration.get('explanation', ''))}</p>")
        weights = calibration.get("weights", {})
        if weights:
            rows = "".join(
                f"<tr><td>{escape(k)}</td><td>{v['before']}</td><td>{v['after']}</td></tr>"
                for k, v in weights.items()
            )
            parts.append("<table><tr><th>Component</th><th>Default weight</th>"
                         f"<th>Calibrated weight</th></tr>{rows}</table>")
    check = result.get("probability_check")
    if check and check.get("brier") is not None:
        rows = "".join(
            f"<tr><td>{_fmt(r['predicted'], 'pct')}</td><td>{_fmt(r['observed'], 'pct')}</td>"
            f"<td>{r['accounts']}</td></tr>" for r in check["reliability"]
        )
        parts.append(
            "<h2>Churn probability, tested out of time</h2><p>Each later account's "
            "calibrated score turned into a churn probability as learnt on the earlier "
            f"ones. Brier score {check['brier']:.3f} (always predicting the earlier churn "
            f"rate: {check['brier_training_rate']:.3f}; lower is better).</p>"
            "<table><tr><th>Predicted churn</th><th>Observed churn</th><th>Accounts</th>"
            f"</tr>{rows}</table>")
    parts.append("<h2>How to read this</h2><ul>"
                 "<li><b>Lift in the top 10%</b>: how many times more churners are among the "
                 "10% of accounts the ranking flags as riskiest than in the portfolio as a "
                 "whole. 1× is no better than chance.</li>"
                 "<li><b>AUC</b>: the chance that an account that churned was ranked riskier "
                 "than one that stayed (0.5 is chance, 1.0 perfect).</li>"
                 "<li><b>Profit</b>: saved margin minus the cost of the outreach, if the team "
                 "contacted exactly the flagged accounts.</li></ul>")
    parts.append("</body></html>")
    page = folder / "index.html"
    page.write_text("\n".join(parts), encoding="utf-8")
    return page

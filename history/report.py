"""The backtest report: a terminal summary and a standalone HTML page with SVG charts that
a CS leader can read without knowing what an AUC is.

:func:`write_html` writes ``index.html`` and its charts (``*.svg``) into one folder; the
page references the charts by relative path, so the folder can be zipped, mailed or
served as it is.
"""

from __future__ import annotations

import re
from datetime import date
from html import escape
from pathlib import Path
from typing import Any

from babel.lists import format_list

from history import plots
from scoring.config import LocaleSettings
from scoring.i18n import N_, Translator, translator
from scoring.labels import band_label, component_label

ENGLISH = translator()

MODEL_LABELS = {
    "score": N_("model", "Telltale health score"),
    "calibrated": N_("model", "Calibrated score"),
    "learned_logistic": N_("model", "Learned reference: logistic regression"),
    "learned_boosting": N_("model", "Learned reference: gradient boosting"),
    "baseline_recency": N_("model", "Baseline: days since last use"),
    "baseline_events_7d": N_("model", "Baseline: product events (7 days)"),
    "baseline_events_30d": N_("model", "Baseline: product events (30 days)"),
    "baseline_active_days_14d": N_("model", "Baseline: active days (14 days)"),
    "baseline_active_days_30d": N_("model", "Baseline: active days (30 days)"),
    "baseline_active_users": N_("model", "Baseline: active users (30 days)"),
    "baseline_logins": N_("model", "Baseline: logins (30 days)"),
}
#: The same rankings inside a sentence ("Warning: X beats the Telltale health score"):
#: English says the label, French needs its article ("le score de santé Telltale").
MODEL_NAMES = {
    "score": N_("model name", "Telltale health score"),
    "calibrated": N_("model name", "Calibrated score"),
    "learned_logistic": N_("model name", "Learned reference: logistic regression"),
    "learned_boosting": N_("model name", "Learned reference: gradient boosting"),
    "baseline_recency": N_("model name", "Baseline: days since last use"),
    "baseline_events_7d": N_("model name", "Baseline: product events (7 days)"),
    "baseline_events_30d": N_("model name", "Baseline: product events (30 days)"),
    "baseline_active_days_14d": N_("model name", "Baseline: active days (14 days)"),
    "baseline_active_days_30d": N_("model name", "Baseline: active days (30 days)"),
    "baseline_active_users": N_("model name", "Baseline: active users (30 days)"),
    "baseline_logins": N_("model name", "Baseline: logins (30 days)"),
}
#: Signal types as the report's tables name them (the JSON keeps the type).
SIGNAL_LABELS = {
    "power_user_inactive": N_("signal", "power user inactive"),
    "seat_utilisation_drop": N_("signal", "seat use dropping"),
    "core_feature_decline": N_("signal", "core-feature use declining"),
    "ticket_spike": N_("signal", "support ticket spike"),
    "ticket_open_long": N_("signal", "ticket open for long"),
    "payment_failed": N_("signal", "payment failed"),
    "plan_downgraded": N_("signal", "plan downgraded"),
    "seats_reduced": N_("signal", "seats reduced"),
    "nps_detractor": N_("signal", "NPS detractor"),
    "meeting_missed": N_("signal", "meeting missed"),
    "onboarding_milestone_missed": N_("signal", "onboarding milestone missed"),
    "account_inactive": N_("signal", "account inactive"),
    "seat_saturation": N_("signal", "seats saturated"),
    "gated_feature_clicked": N_("signal", "gated feature clicked"),
    "upgrade_interest": N_("signal", "upgrade interest"),
    "renewal_checkpoint": N_("signal", "renewal checkpoint"),
}
#: Churn types and reasons (history.churn's vocabulary) as people read them.
CHURN_TYPE_LABELS = {
    "voluntary": N_("churn type", "voluntary"),
    "involuntary": N_("churn type", "involuntary"),
    "downgrade": N_("churn type", "downgrade"),
}
CHURN_REASON_LABELS = {
    "price": N_("churn reason", "price"),
    "missing_feature": N_("churn reason", "missing feature"),
    "competitor": N_("churn reason", "competitor"),
    "no_value": N_("churn reason", "no value seen"),
    "business_closed": N_("churn reason", "business closed"),
    "payment": N_("churn reason", "payment"),
    "other": N_("churn reason", "other"),
    "unknown": N_("churn reason", "unknown"),
}
NO_LOGINS = N_("not computable", "no Logged In event in the 30 days before any assessment")
ONE_SEAT = N_("not computable",
              "one seat per account, so the share of seats active says no more than recency")
ALL_ALIKE = N_("not computable", "every account has the same value")
NOT_COMPUTABLE = (NO_LOGINS, ONE_SEAT, ALL_ALIKE)
"""Why the backtest could not compute a baseline: English in its JSON, said again here."""
CHARTED = ("score", "calibrated", "learned_logistic", "learned_boosting")
TOP_SHARE = 10  # percent: the "top 10%" every figure of the report is cut at


def reader(language: str | None, locale: LocaleSettings) -> Translator:
    """The translator a report is written with: ``language`` when given (``--language``),
    else the scoring config's; amounts in the config's currency, dates on its clock."""
    return translator(language or locale.language, locale.currency, locale.time_zone)


def _said(table: dict[str, str], context: str, key: str, t: Translator) -> str:
    """``key``'s label from ``table`` in ``t``'s language; an unknown key in words."""
    label = table.get(key)
    return key.replace("_", " ") if label is None else t.pgettext(context, label)


def _label(model: str, t: Translator = ENGLISH) -> str:
    return _said(MODEL_LABELS, "model", model, t)


def _name(model: str, t: Translator = ENGLISH) -> str:
    return _said(MODEL_NAMES, "model name", model, t)


_USER_INACTIVE = re.compile(r"user_inactive_(\d+)d")


def signal_label(kind: str, t: Translator = ENGLISH) -> str:
    """A signal type as a table row names it ("payment failed" / "paiement échoué")."""
    quiet = _USER_INACTIVE.fullmatch(kind)
    if quiet:  # one type per configured threshold (user_inactive_14d)
        return t.ngettext("user inactive for %(count)s day", "user inactive for %(count)s days",
                          int(quiet.group(1)))
    return _said(SIGNAL_LABELS, "signal", kind, t)


def churn_type_label(kind: str, t: Translator = ENGLISH) -> str:
    return _said(CHURN_TYPE_LABELS, "churn type", kind, t)


def churn_reason_label(reason: str, t: Translator = ENGLISH) -> str:
    return _said(CHURN_REASON_LABELS, "churn reason", reason, t)


def day(value: date, t: Translator = ENGLISH) -> str:
    """A date in a report: ISO in English (2026-12-03, as the JSON says it), in full
    elsewhere (3 décembre 2026)."""
    return value.isoformat() if t.language == "en" else t.date(value, "long")


def _top(t: Translator) -> str:
    return t.percent(TOP_SHARE)


def _fmt(value: Any, kind: str = "num", t: Translator = ENGLISH) -> str:
    """A figure as the locale writes it: ``pct`` a share (0.12 → 12%), ``x`` a lift,
    ``money`` an amount in the report's currency, ``auc``, ``days``, else a count."""
    if value is None:
        return "–"
    if kind == "pct":
        return t.percent(100 * value)
    if kind == "x":
        return t.fixed(value, 2) + "×"
    if kind == "money":
        return t.money(round(value))
    if kind == "auc":
        return t.fixed(value, 3)
    if kind == "days":
        return t.pgettext("report", "%(days)s d", days=t.fixed(value, 0))
    return t.number(round(value)) if isinstance(value, float) else str(value)


def _signed(value: float, kind: str, t: Translator = ENGLISH) -> str:
    sign = "+" if value >= 0 else "−"
    return sign + (t.fixed(abs(value), 3) if kind == "auc" else t.fixed(abs(value), 2) + "×")


def _comparisons(h: dict[str, Any], t: Translator) -> list[tuple[str, bool]]:
    """:func:`comparison_sentences`, each with whether it warns."""
    out: list[tuple[str, bool]] = []
    top = _top(t)
    for name, c in h.get("comparisons", {}).items():
        parts = []
        if c["auc_difference"] is not None:
            said = t.gettext("AUC %(difference)s", difference=_signed(c["auc_difference"],
                                                                      "auc", t))
            if c["auc_interval"]:
                lo, hi = c["auc_interval"]
                said = t.gettext("%(figure)s (%(level)s interval %(low)s to %(high)s)",
                                 figure=said, level=t.percent(100 * c["level"]),
                                 low=_signed(lo, "auc", t), high=_signed(hi, "auc", t))
            parts.append(said)
        lift = t.gettext("top-%(top)s lift %(difference)s", top=top,
                         difference=_signed(c["lift_difference"], "x", t))
        if c["lift_interval"]:
            lo, hi = c["lift_interval"]
            lift = t.gettext("%(figure)s (%(low)s to %(high)s)", figure=lift,
                             low=_signed(lo, "x", t), high=_signed(hi, "x", t))
        parts.append(lift)
        out.append((t.gettext("%(model)s against the best baseline (%(baseline)s): "
                              "%(figures)s.", model=_label(name, t),
                              baseline=_label(c["baseline"], t),
                              figures=", ".join(parts)), False))
    models = h.get("models", {})
    learned = [m["auc"] for n, m in models.items()
               if n.startswith("learned_") and m["auc"] is not None]
    ceiling = max(learned, default=None)
    for name in ("score", "calibrated"):
        auc: float | None = (models.get(name) or {}).get("auc")
        if ceiling is not None and auc is not None and ceiling > 0.5:
            # above chance, as a share of what the fitted models found above chance
            out.append((t.gettext(
                "%(model)s captures %(share)s of the learnable signal (AUC %(auc)s against "
                "the learned reference's %(ceiling)s).", model=_label(name, t),
                share=t.percent(100 * (auc - 0.5) / (ceiling - 0.5)),
                auc=_fmt(auc, "auc", t), ceiling=_fmt(ceiling, "auc", t)), False))
    for name, beating in h.get("baselines_beating", {}).items():
        if beating:
            names = format_list([_name(b, t) for b in beating], locale=t.locale)
            out.append((t.ngettext(
                "Warning: %(baselines)s beats the %(model)s on AUC or top-%(top)s lift at "
                "this horizon.",
                "Warning: %(baselines)s beat the %(model)s on AUC or top-%(top)s lift at "
                "this horizon.", len(beating), baselines=names, model=_name(name, t),
                top=top), True))
    return out


def comparison_sentences(h: dict[str, Any], t: Translator = ENGLISH) -> list[str]:
    """Each scored ranking against the horizon's best baseline, in words, and every
    baseline that beats it: a baseline that wins is always said."""
    return [text for text, _ in _comparisons(h, t)]


def verdict(h: dict[str, Any], t: Translator = ENGLISH) -> str | None:
    """One sentence a CS leader can repeat: does the health score tell the accounts that
    churned apart better than the best simple baseline, at this horizon? "Better" or
    "worse" only when the bootstrap interval of the AUC difference leaves out zero."""
    c = h.get("comparisons", {}).get("score")
    if not c or c["auc_difference"] is None:
        return None
    low, high = c["auc_interval"] or (c["auc_difference"], c["auc_difference"])
    if low > 0:
        return t.gettext("The health score separates the accounts that churned better than "
                         "the best simple baseline.")
    if high < 0:
        return t.gettext("The best simple baseline separates the accounts that churned better "
                         "than the health score: look at the weights before trusting it.")
    return t.gettext("On this history, the health score separates the accounts that churned "
                     "no more clearly than the best simple baseline.")


def _days_before(days: int, t: Translator) -> str:
    return t.ngettext("%(count)s day before the outcome", "%(count)s days before the outcome",
                      days)


def terminal_summary(result: dict[str, Any], t: Translator = ENGLISH) -> str:
    """A few lines per horizon: each model's AUC, top-decile lift, ARR recall, profit."""
    replay = result["replay"]
    lines = [t.gettext(
        "Backtest of scoring config %(version)s: %(events)s, %(accounts)s; %(rate)s events/s "
        "read and replayed (scoring alone %(scoring)s/s)",
        version=repr(result["config_version"]),
        events=t.ngettext("%(count)s event", "%(count)s events", result["events"]),
        accounts=t.ngettext("%(count)s account with an outcome",
                            "%(count)s accounts with an outcome",
                            result["accounts_with_outcome"]),
        rate=t.number(round(replay["events_per_second"])),
        scoring=t.number(round(replay["replay_events_per_second"])))]
    if replay.get("cpu_seconds"):
        lines.append(t.ngettext(
            "%(count)s account evaluation, %(rate)s events per CPU second, peak memory "
            "%(memory)s MiB per process",
            "%(count)s account evaluations, %(rate)s events per CPU second, peak memory "
            "%(memory)s MiB per process", replay["account_evaluations"],
            rate=t.number(round(replay["events_per_cpu_second"])),
            memory=t.number(round(replay["peak_rss_mib"]))))
    lines.append(_profit_assumptions(result["params"], t))
    for h in result["horizons"]:
        lines.append("")
        lines.extend(_horizon_lines(h, t))
    check = result.get("probability_check")
    if check and check.get("brier") is not None:
        curve = ", ".join(
            f"{_fmt(r['predicted'], 'pct', t)}→{_fmt(r['observed'], 'pct', t)}"
            for r in check["reliability"])
        lines.append("")
        lines.append(t.gettext(
            "Churn probability out of time: Brier %(brier)s (the earlier churn rate alone "
            "%(reference)s); predicted → observed by fifth: %(curve)s",
            brier=_fmt(check["brier"], "auc", t),
            reference=_fmt(check["brier_training_rate"], "auc", t), curve=curve))
    return "\n".join(lines)


def _profit_assumptions(params: dict[str, Any], t: Translator) -> str:
    return t.gettext("Profit assumes %(cost)s per account contacted, %(saved)s of contacted "
                     "churners saved, %(margin)s margin.",
                     cost=_fmt(params["intervention_cost"], "money", t),
                     saved=_fmt(params["save_rate"], "pct", t),
                     margin=_fmt(params["margin"], "pct", t))


def _horizon_lines(h: dict[str, Any], t: Translator) -> list[str]:
    """One horizon of :func:`terminal_summary`."""
    top = _top(t)
    lines = [t.ngettext(
        "%(before)s: %(count)s account, %(churned)s churned (%(rate)s)",
        "%(before)s: %(count)s accounts, %(churned)s churned (%(rate)s)", h["accounts"],
        before=_days_before(h["horizon_days"], t), churned=h["churned"],
        rate=t.percent(100 * h["base_rate"], 1))]
    header = (t.pgettext("report table", "model"), t.pgettext("report table", "AUC"),
              t.pgettext("report table", "lift@%(top)s", top=top),
              t.pgettext("report table", "prec@%(top)s", top=top),
              t.pgettext("report table", "lift@k"), t.pgettext("report table", "ARR caught"),
              t.pgettext("report table", "profit@%(top)s", top=top))
    # French labels run longer than English: the column is as wide as the widest
    width = max([36, *(len(_label(n, t)) for n in (*h["models"], *h.get("not_computable", {})))])
    lines.append(f"  {header[0]:<{width}} {header[1]:>6} {header[2]:>9} {header[3]:>9} "
                 f"{header[4]:>7} {header[5]:>10} {header[6]:>12}")
    for name, m in h["models"].items():
        lines.append(
            f"  {_label(name, t):<{width}} {_fmt(m['auc'], 'auc', t):>6} "
            f"{_fmt(m['top_decile_lift'], 'x', t):>9} "
            f"{t.percent(100 * m['top_decile_precision'], 1):>9} "
            f"{_fmt(m['top_k_lift'], 'x', t):>7} "
            f"{t.percent(100 * m['churned_arr_recall_top_decile'], 1):>10} "
            f"{_fmt(m['profit_top_decile'], 'money', t):>12}")
    for name, why in h.get("not_computable", {}).items():
        said = t.gettext("%(model)s not computable here: %(why)s",
                         model=f"{_label(name, t):<{width}}", why=_why(why, t))
        lines.append(f"  {said}")
    overall = verdict(h, t)
    if overall:
        lines.append(f"  {overall}")
    lines.extend(f"  {line}" for line in comparison_sentences(h, t))
    for kind, kt in (h.get("by_churn_type") or {}).items():
        aucs = ", ".join(
            f"{_label(m, t)} {_fmt(a, 'auc', t)}" for m, a in kt["auc"].items())
        lines.append("  " + t.ngettext(
            "%(kind)s churn (%(count)s account) against those that stayed whole, AUC: "
            "%(aucs)s",
            "%(kind)s churn (%(count)s accounts) against those that stayed whole, AUC: "
            "%(aucs)s", kt["accounts"], kind=churn_type_label(kind, t), aucs=aucs))
    table = h.get("preceded_churn") or []
    if table:
        lines.append("  " + t.gettext(
            "what preceded churn (signal active at the horizon → churn rate where active / "
            "not; how often active; median lead):"))
    shown = table[:8]  # the most telling; the page has them all
    width = max([30, *(len(signal_label(row["signal"], t)) for row in shown)])
    for row in shown:
        lines.append("    " + t.gettext(
            "%(signal)s %(active)s / %(inactive)s active %(share)s, lead %(lead)s",
            signal=f"{signal_label(row['signal'], t):<{width}}",
            active=f"{_fmt(row['churn_rate_active'], 'pct', t):>5}",
            inactive=f"{_fmt(row['churn_rate_inactive'], 'pct', t):<5}",
            share=_fmt(row["share_active"], "pct", t),
            lead=_fmt(row["median_lead_days"], "days", t)))
    bands = h.get("bands")
    if bands:
        text = ", ".join(
            t.gettext("%(band)s %(rate)s of %(accounts)s", band=band_label(b["group"], t),
                      rate=_fmt(b["churn_rate"], "pct", t), accounts=b["accounts"])
            for b in bands)
        lines.append("  " + t.gettext("churn by band: %(bands)s", bands=text))
    return lines


def _why(text: str, t: Translator) -> str:
    """Why a baseline was not computed (the JSON's English) in ``t``'s language."""
    return t.pgettext("not computable", text) if text in NOT_COMPUTABLE else text


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


def _model_table(h: dict[str, Any], t: Translator) -> str:
    top = _top(t)
    head = "".join(f"<th>{escape(cell)}</th>" for cell in (
        t.pgettext("report table", "Ranking"), t.pgettext("report table", "AUC"),
        t.pgettext("report table", "Lift, top %(top)s", top=top),
        t.pgettext("report table", "Churners in top %(top)s", top=top),
        t.pgettext("report table", "Lift, top k"),
        t.pgettext("report table", "Churned ARR in top %(top)s", top=top),
        t.pgettext("report table", "Profit, top %(top)s", top=top),
        t.pgettext("report table", "Best profit (share contacted)")))
    rows = [f"<table><tr>{head}</tr>"]
    for name, m in h["models"].items():
        rows.append(
            f"<tr><td>{escape(_label(name, t))}</td><td>{_fmt(m['auc'], 'auc', t)}</td>"
            f"<td>{_fmt(m['top_decile_lift'], 'x', t)}</td>"
            f"<td>{_fmt(m['top_decile_precision'], 'pct', t)}</td>"
            f"<td>{_fmt(m['top_k_lift'], 'x', t)} (k={m['top_k']})</td>"
            f"<td>{_fmt(m['churned_arr_recall_top_decile'], 'pct', t)}</td>"
            f"<td>{escape(_fmt(m['profit_top_decile'], 'money', t))}</td>"
            f"<td>{escape(_fmt(m['best_profit'], 'money', t))} "
            f"({_fmt(m['best_profit_share'], 'pct', t)})</td></tr>"
        )
    for name, why in h.get("not_computable", {}).items():
        said = t.gettext("not computable on this history: %(why)s", why=_why(why, t))
        rows.append(f"<tr><td>{escape(_label(name, t))}</td>"
                    f"<td colspan='7'>{escape(said)}</td></tr>")
    rows.append("</table>")
    for line, warns in _comparisons(h, t):
        css = "note bad" if warns else "note"
        rows.append(f"<p class='{css}'>{escape(line)}</p>")
    return "\n".join(rows)


def _header(*cells: str) -> str:
    return "<tr>" + "".join(f"<th>{escape(c)}</th>" for c in cells) + "</tr>"


def _preceded_table(h: dict[str, Any], t: Translator) -> str:
    table = h.get("preceded_churn") or []
    if not table:
        return ""
    cells = "".join(
        f"<tr><td>{escape(signal_label(r['signal'], t))}</td>"
        f"<td>{_fmt(r['churn_rate_active'], 'pct', t)}</td>"
        f"<td>{_fmt(r['churn_rate_inactive'], 'pct', t)}</td>"
        f"<td>{_fmt(r['share_active'], 'pct', t)} ({r['accounts_active']})</td>"
        f"<td>{_fmt(r['churners_flagged'], 'pct', t)}</td>"
        f"<td>{_fmt(r['median_lead_days'], 'days', t)}</td></tr>"
        for r in table
    )
    title = t.gettext("What preceded churn")
    intro = t.gettext(
        "For each signal: the churn rate of the accounts where it was active at this "
        "horizon against those where it was not, how often it was active, the share of "
        "churners it flagged, and the median days from its start to the churn. Trust the "
        "signals whose two rates differ most.")
    head = _header(t.pgettext("report table", "Signal"),
                   t.pgettext("report table", "Churn rate, active"),
                   t.pgettext("report table", "Churn rate, not active"),
                   t.pgettext("report table", "Active on"),
                   t.pgettext("report table", "Churners flagged"),
                   t.pgettext("report table", "Median lead"))
    return (f"<h3>{escape(title)}</h3><p>{escape(intro)}</p>"
            f"<table>{head}{cells}</table>")


def _churn_type_table(h: dict[str, Any], t: Translator) -> str:
    kinds = h.get("by_churn_type") or {}
    if not kinds:
        return ""
    models = list(next(iter(kinds.values()))["auc"])
    head = _header(t.pgettext("report table", "Type"),
                   t.pgettext("report table", "Accounts"),
                   t.pgettext("report table", "Reasons"),
                   *(t.pgettext("report table", "AUC, %(model)s", model=_label(m, t))
                     for m in models))
    cells = "".join(
        f"<tr><td>{escape(churn_type_label(kind, t))}</td><td>{kt['accounts']}</td>"
        f"<td>{escape(_reasons(kt['reasons'], t))}</td>"
        + "".join(f"<td>{_fmt(kt['auc'].get(m), 'auc', t)}</td>" for m in models) + "</tr>"
        for kind, kt in kinds.items()
    )
    title = t.gettext("By type of churn")
    intro = t.gettext("Each kind of churn against the accounts that stayed whole: a score "
                      "can see a customer deciding to leave long before it sees a card "
                      "expire.")
    return (f"<h3>{escape(title)}</h3><p>{escape(intro)}</p>"
            f"<table>{head}{cells}</table>")


def _reasons(reasons: dict[str, int], t: Translator) -> str:
    return ", ".join(f"{churn_reason_label(r, t)} {n}" for r, n in reasons.items())


def _band_table(h: dict[str, Any], t: Translator, key: str = "bands",
                calibrated: bool = False) -> str:
    bands = h.get(key) or []
    if not bands:
        return ""
    cells = "".join(
        f"<tr><td>{escape(band_label(b['group'], t))}</td><td>{b['accounts']}</td>"
        f"<td>{b['churned']}</td><td>{_fmt(b['churn_rate'], 'pct', t)}</td></tr>"
        for b in bands
    )
    title = (t.pgettext("report table", "Calibrated band at the time") if calibrated
             else t.pgettext("report table", "Band at the time"))
    head = _header(title, t.pgettext("report table", "Accounts"),
                   t.pgettext("report table", "Churned"),
                   t.pgettext("report table", "Churn rate"))
    return f"<table>{head}{cells}</table>"


def _headline(h: dict[str, Any], t: Translator) -> str:
    models = h["models"]
    score = models.get("score")
    best = h.get("best_baseline")
    base = models.get(best) if best else None
    if score is None:
        return ""
    top = _top(t)

    def baseline(figure: str, kind: str) -> str:
        return "" if base is None else t.gettext("baseline %(figure)s",
                                                 figure=_fmt(base[figure], kind, t))

    cards = [
        (t.gettext("Churners in the riskiest %(top)s", top=top),
         _fmt(score["top_decile_precision"], "pct", t),
         t.gettext("vs %(rate)s on average", rate=_fmt(h["base_rate"], "pct", t))),
        (t.gettext("Lift in the riskiest %(top)s", top=top),
         _fmt(score["top_decile_lift"], "x", t),
         "" if base is None else t.gettext("best baseline %(figure)s",
                                           figure=_fmt(base["top_decile_lift"], "x", t))),
        (t.gettext("Churned ARR flagged (top %(top)s)", top=top),
         _fmt(score["churned_arr_recall_top_decile"], "pct", t),
         baseline("churned_arr_recall_top_decile", "pct")),
        (t.gettext("Expected profit, top %(top)s", top=top),
         _fmt(score["profit_top_decile"], "money", t), baseline("profit_top_decile", "money")),
    ]
    if "calibrated" in models:
        cal = models["calibrated"]
        cards.append((t.gettext("Calibrated score lift (top %(top)s)", top=top),
                      _fmt(cal["top_decile_lift"], "x", t),
                      t.gettext("AUC %(auc)s", auc=_fmt(cal["auc"], "auc", t))))
    inner = "".join(
        f"<div class='card'><div class='lbl'>{escape(c)}</div><div class='big'>{escape(v)}"
        f"</div><div class='lbl'>{escape(s)}</div></div>" for c, v, s in cards
    )
    said = verdict(h, t)
    lead = f"<p><b>{escape(said)}</b></p>" if said else ""
    return f"{lead}<div class='cards'>{inner}</div>"


def _charts_for(h: dict[str, Any], folder: Path, t: Translator) -> list[tuple[str, str]]:
    """Write the horizon's charts; returns (file name, caption) pairs."""
    days = h["horizon_days"]
    before = _days_before(days, t)
    written: list[tuple[str, str]] = []

    def chart(kind: str, svg: str, caption: str) -> None:
        name = f"{kind}_{days}d.svg"
        (folder / name).write_text(svg, encoding="utf-8")
        written.append((name, caption))

    # the scored rankings and the best baseline: seven baseline curves would hide them
    shown = {*CHARTED, h.get("best_baseline")}
    curves = [(_label(name, t), [(x, y) for x, y, _ in pts])
              for name, pts in h["gains"].items() if name in shown]
    chart("lift",
          plots.gains_chart(t.gettext("Churners caught, %(before)s", before=before), curves, t),
          t.gettext("Contacting accounts from the riskiest down: how many of the accounts "
                    "that later churned are reached. Higher and further left is better; the "
                    "dashed diagonal is picking at random."))
    dist = h.get("score_distribution")
    if dist:
        groups = [(t.pgettext("outcome", "churned"), dist["churned"]),
                  (t.pgettext("outcome", "renewed or contracted"), dist["retained"])]
        chart("scores",
              plots.distribution_chart(t.gettext("Health score %(before)s", before=before),
                                       groups, t=t),
              t.gettext("Where the accounts that churned and the accounts that stayed sat on "
                        "the 0-100 health score. The less the two shapes overlap, the better "
                        "the score separates them."))
    bands = h.get("bands")
    if bands:
        series = [(t.pgettext("chart", "score"),
                   [(band_label(b["group"], t), b["churn_rate"], b["accounts"])
                    for b in bands])]
        chart("bands",
              plots.rate_chart(
                  t.ngettext("Churn rate by health band, %(count)s day before",
                             "Churn rate by health band, %(count)s days before", days),
                  series, base_rate=h["base_rate"],
                  x_label=t.pgettext("chart", "band at the time"), t=t),
              t.gettext("Calibration by band: the share of accounts in each band that went "
                        "on to churn. A useful score has a clearly higher rate in "
                        "'%(at_risk)s' than in '%(healthy)s'.",
                        at_risk=band_label("at_risk", t), healthy=band_label("healthy", t)))
    quint = h.get("quintiles")
    if quint:
        series = [
            (_label(model, t), [(row["group"], row["churn_rate"], row["accounts"])
                                for row in rows])
            for model, rows in quint.items()
        ]
        chart("quintiles",
              plots.rate_chart(
                  t.ngettext("Churn rate by risk quintile, %(count)s day before",
                             "Churn rate by risk quintile, %(count)s days before", days),
                  series, base_rate=h["base_rate"],
                  x_label=t.pgettext("chart", "risk quintile (Q1 = riskiest %(share)s)",
                                     share=t.percent(20)), t=t),
              t.gettext("Accounts split in five equal groups by each ranking, riskiest "
                        "first. A good ranking puts most churn in Q1 and little in Q5."))
    return written


def _period(result: dict[str, Any], t: Translator) -> str:
    """The history's span, from the result's ISO dates ("2025-01-02 to 2025-06-30"), as
    the locale writes dates; anything else as it is."""
    first, _, last = str(result.get("period") or "").partition(" to ")
    try:
        start, end = date.fromisoformat(first), date.fromisoformat(last)
    except ValueError:
        return str(result.get("period") or "")
    return t.gettext("%(start)s to %(end)s", start=day(start, t), end=day(end, t))


def write_html(result: dict[str, Any], folder: Path, title: str | None = None,
               t: Translator = ENGLISH, calibration_text: str | None = None) -> Path:
    """Write ``index.html`` and the SVG charts into ``folder``; returns the page path.
    ``title`` defaults to "Churn backtest" in the report's language; ``calibration_text``
    is what the calibration learnt, said in that language (default: the result's)."""
    folder.mkdir(parents=True, exist_ok=True)
    title = title or t.gettext("Churn backtest")
    params = result["params"]
    parts = [
        f"<!doctype html><html lang='{escape(t.language)}'><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        "<p class='sub'>" + escape(t.ngettext(
            "Scoring config %(version)s replayed over %(events)s; %(count)s account with a "
            "known outcome (%(period)s).",
            "Scoring config %(version)s replayed over %(events)s; %(count)s accounts with a "
            "known outcome (%(period)s).", result["accounts_with_outcome"],
            version=str(result["config_version"]),
            events=t.ngettext("%(count)s event", "%(count)s events", result["events"]),
            period=_period(result, t))) + "</p>",
    ]
    primary = result.get("primary_horizon")
    horizons = result["horizons"]
    main = next((h for h in horizons if h["horizon_days"] == primary), horizons[0] if horizons
                else None)
    if main is not None:
        heading = t.ngettext("At a glance: %(count)s day before renewal or churn",
                             "At a glance: %(count)s days before renewal or churn",
                             main["horizon_days"])
        parts.append(f"<h2>{escape(heading)}</h2>")
        parts.append(_headline(main, t))
        parts.append("<p class='note'>" + escape(t.gettext(
            "Each account is scored as it stood on the day shown, using only what had "
            "happened until then, exactly as Telltale would have scored it live. The "
            "baselines rank the same accounts by simple usage counts (days since last use, "
            "product events, active days, active seats, logins); the cards compare the "
            "score with the best of them at this horizon. Profit assumes contacting an "
            "account costs %(cost)s, %(saved)s of contacted would-be churners are saved, "
            "and %(margin)s gross margin on one year of their ARR.",
            cost=_fmt(params["intervention_cost"], "money", t),
            saved=_fmt(params["save_rate"], "pct", t),
            margin=_fmt(params["margin"], "pct", t))) + "</p>")
    for note in _notes(result, t):
        parts.append(f"<p class='note'>{escape(note)}</p>")
    for h in horizons:
        parts.append(f"<h2>{escape(_days_before(h['horizon_days'], t))}</h2>")
        parts.append("<p>" + escape(t.ngettext(
            "%(count)s account, of which %(churned)s churned (%(rate)s).",
            "%(count)s accounts, of which %(churned)s churned (%(rate)s).", h["accounts"],
            churned=h["churned"], rate=_fmt(h["base_rate"], "pct", t))) + "</p>")
        parts.append(_model_table(h, t))
        parts.append(_band_table(h, t))
        parts.append(_band_table(h, t, "bands_calibrated", calibrated=True))
        parts.append(_churn_type_table(h, t))
        parts.append(_preceded_table(h, t))
        parts.append("<div class='charts'>")
        for name, caption in _charts_for(h, folder, t):
            parts.append(f"<figure><img src='{escape(name)}' alt='{escape(caption)}'>"
                         f"<figcaption>{escape(caption)}</figcaption></figure>")
        parts.append("</div>")
    parts.extend(_calibration_section(result, t, calibration_text))
    parts.extend(_probability_section(result, t))
    parts.append(_how_to_read(t))
    parts.append("</body></html>")
    page = folder / "index.html"
    page.write_text("\n".join(parts), encoding="utf-8")
    return page


def _notes(result: dict[str, Any], t: Translator) -> list[str]:
    """The result's notes: the out-of-time test's said from its figures (``test``), any
    other note as it is."""
    test = result.get("out_of_time")
    if not test:
        return list(result.get("notes", []))
    return [t.ngettext(
        "Out-of-time test: every figure below is computed on the %(count)s renewal or churn "
        "after %(split)s only; the calibrated weights were learnt from the ones before.",
        "Out-of-time test: every figure below is computed on the %(count)s renewals and "
        "churns after %(split)s only; the calibrated weights were learnt from the ones "
        "before.", test["outcomes"],
        split=day(date.fromisoformat(test["split_date"]), t))]


def _calibration_section(result: dict[str, Any], t: Translator,
                         text: str | None) -> list[str]:
    calibration = result.get("calibration")
    if not calibration:
        return []
    title = t.gettext("Calibration: what your history says about the weights")
    said = text if text is not None else calibration.get("explanation", "")
    parts = [f"<h2>{escape(title)}</h2>", f"<p>{escape(said)}</p>"]
    weights = calibration.get("weights", {})
    if weights:
        rows = "".join(
            f"<tr><td>{escape(component_label(k, t))}</td><td>{v['before']}</td>"
            f"<td>{v['after']}</td></tr>" for k, v in weights.items())
        head = _header(t.pgettext("report table", "Component"),
                       t.pgettext("report table", "Default weight"),
                       t.pgettext("report table", "Calibrated weight"))
        parts.append(f"<table>{head}{rows}</table>")
    return parts


def _probability_section(result: dict[str, Any], t: Translator) -> list[str]:
    check = result.get("probability_check")
    if not check or check.get("brier") is None:
        return []
    rows = "".join(
        f"<tr><td>{_fmt(r['predicted'], 'pct', t)}</td><td>{_fmt(r['observed'], 'pct', t)}"
        f"</td><td>{r['accounts']}</td></tr>" for r in check["reliability"])
    title = t.gettext("Churn probability, tested out of time")
    intro = t.gettext(
        "Each later account's calibrated score turned into a churn probability as learnt on "
        "the earlier ones. Brier score %(brier)s (always predicting the earlier churn rate: "
        "%(reference)s; lower is better).", brier=_fmt(check["brier"], "auc", t),
        reference=_fmt(check["brier_training_rate"], "auc", t))
    head = _header(t.pgettext("report table", "Predicted churn"),
                   t.pgettext("report table", "Observed churn"),
                   t.pgettext("report table", "Accounts"))
    return [f"<h2>{escape(title)}</h2><p>{escape(intro)}</p><table>{head}{rows}</table>"]


def _how_to_read(t: Translator) -> str:
    top = _top(t)
    items = (
        (t.gettext("Lift in the top %(top)s", top=top), t.gettext(
            "how many times more churners are among the %(top)s of accounts the ranking "
            "flags as riskiest than in the portfolio as a whole. 1× is no better than "
            "chance.", top=top)),
        (t.pgettext("report table", "AUC"), t.gettext(
            "the chance that an account that churned was ranked riskier than one that "
            "stayed (%(chance)s is chance, %(perfect)s perfect).",
            chance=t.fixed(0.5, 1), perfect=t.fixed(1.0, 1))),
        (t.gettext("Profit"), t.gettext(
            "saved margin minus the cost of the outreach, if the team contacted exactly the "
            "flagged accounts.")),
    )
    colon = t.pgettext("report", ": ")
    cells = "".join(f"<li><b>{escape(term)}</b>{escape(colon)}{escape(meaning)}</li>"
                    for term, meaning in items)
    heading = t.gettext("How to read this")
    return f"<h2>{escape(heading)}</h2><ul>{cells}</ul>"


def where_written(json_path: Path, page: Path, t: Translator = ENGLISH) -> str:
    """The lines a command ends on: where it wrote its JSON and its report."""
    return "\n".join((t.gettext("JSON: %(path)s", path=str(json_path)),
                      t.gettext("Report: %(path)s", path=str(page))))

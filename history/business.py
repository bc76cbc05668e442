"""Business metrics from history: monthly churn rate, gross and net revenue retention,
cohort retention, NPS trend, engagement frequency and customer lifetime value.

Definitions (the usual SaaS ones):

- churn rate of a month = accounts lost in the month ÷ customers at the start of the month;
- gross revenue retention (GRR) over renewals = Σ min(ARR after, ARR before) ÷ Σ ARR
  before; net revenue retention (NRR) = Σ ARR after ÷ Σ ARR before (expansion counts);
- cohort retention: accounts grouped by the quarter they became customers (``created_at``
  trait, else first seen), share still customers at the end of each month of history;
- NPS per month = % promoters (9-10) − % detractors (0-6) of the answers that month;
- engagement frequency per month: active days per active user, and average daily active
  users ÷ monthly active users (stickiness);
- CLV = average ARR per account × gross margin ÷ annual churn rate (annualised from the
  average monthly churn rate).

:func:`compute` is pure: events and outcomes in, a JSON-ready dict out.
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from history.churn import UNKNOWN_REASON, ChurnEvidence
from history.importers import OutcomeRecord
from scoring.i18n import Translator, translator
from streams.events import Event, EventType

DAY = 86_400.0
ENGLISH = translator()


def _month(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def _day_of(ts: float) -> date:
    return datetime.fromtimestamp(ts, tz=UTC).date()


def _next_month(d: date) -> date:
    return date(d.year + (d.month == 12), d.month % 12 + 1, 1)


def _parse_date(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


@dataclass(slots=True)
class _Accumulator:
    """What one pass over the events must remember (bounded by accounts × months)."""

    first_seen: dict[str, float] = field(default_factory=dict)
    last_seen: dict[str, float] = field(default_factory=dict)
    created: dict[str, date] = field(default_factory=dict)
    arr: dict[str, float] = field(default_factory=dict)
    nps: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    # month → user → set of active days
    active: dict[str, dict[str, set[int]]] = field(default_factory=lambda: defaultdict(dict))
    cancelled: dict[str, float] = field(default_factory=dict)
    start: float | None = None
    end: float | None = None

    def add(self, event: Event, activity: frozenset[str] | None) -> None:
        ts = event.timestamp
        self.start = ts if self.start is None or ts < self.start else self.start
        self.end = ts if self.end is None or ts > self.end else self.end
        account = event.account_id
        if account is not None:
            if account not in self.first_seen:
                self.first_seen[account] = ts
            self.last_seen[account] = ts
        if event.type is EventType.GROUP and account is not None:
            created = _parse_date(event.traits.get("created_at"))
            if created is not None:
                self.created[account] = created
            arr = event.traits.get("arr")
            if isinstance(arr, int | float) and not isinstance(arr, bool):
                self.arr[account] = float(arr)
            return
        if event.type is not EventType.TRACK:
            return
        name = event.name
        if name == "NPS Submitted":
            score = event.properties.get("score")
            if isinstance(score, int | float) and 0 <= score <= 10:
                self.nps[_month(_day_of(ts))].append(int(score))
            return
        if name == "Subscription Cancelled" and account is not None:
            self.cancelled.setdefault(account, ts)
            return
        user = event.actor
        if user is None or (activity is not None and name not in activity):
            return
        month = _month(_day_of(ts))
        days = self.active[month].get(user)
        if days is None:
            days = self.active[month][user] = set()
        days.add(int(ts // DAY))


def compute(
    events: Iterable[Event],
    outcomes: Sequence[OutcomeRecord],
    margin: float = 0.8,
    activity_events: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Business metrics of a history. ``activity_events``: track names that count as a
    user being active (default: every track event except support, billing, NPS and
    meeting records). ``margin``: gross margin used for CLV (default 0.8)."""
    activity = frozenset(activity_events) if activity_events is not None else None
    acc = _Accumulator()
    excluded = {
        "Ticket Opened", "Ticket Resolved", "CSAT Submitted", "Payment Failed",
        "Payment Succeeded", "Plan Downgraded", "Seats Changed", "Subscription Cancelled",
        "NPS Submitted", "Meeting Held", "Meeting Missed", "QBR Held", "QBR Skipped",
    }
    evidence = ChurnEvidence()
    for event in events:
        evidence.add(event)
        if activity is None and event.type is EventType.TRACK and event.name in excluded:
            # still feed NPS / cancellations, but never count them as activity
            acc.add(event, frozenset())
            continue
        acc.add(event, activity)
    if acc.start is None or acc.end is None:
        return {"period": None, "accounts": 0, "months": [], "churn": [],
                **churn_by_kind(outcomes, evidence),
                "monthly_churn_rate": None, "annual_churn_rate": None, "retention": None,
                "cohorts": {"months": [], "rows": []}, "nps": [], "engagement": [],
                "clv": None}
    metrics = _summarise(acc, outcomes, margin)
    metrics.update(churn_by_kind(outcomes, evidence))
    return metrics


def churn_by_kind(outcomes: Sequence[OutcomeRecord], evidence: ChurnEvidence,
                  ) -> dict[str, list[dict[str, Any]]]:
    """Churn rate and the GRR and NRR lost, per churn type and per reason.

    ``churn_rate``: share of all outcomes that were this kind of churn; ``arr_lost``:
    ARR before minus after over them; ``share_of_arr_lost``: that as a share of all ARR up
    for renewal (the points of GRR, and of NRR, it cost); ``grr_without`` /
    ``nrr_without``: GRR and NRR had this kind of churn kept its ARR."""
    total = len(outcomes)
    at_stake = sum(o.arr for o in outcomes)
    kept = sum(min(o.arr_after, o.arr) for o in outcomes)
    after = sum(o.arr_after for o in outcomes)
    kinds = [(o, *evidence.classify(o)) for o in outcomes]

    def rows(key: int) -> list[dict[str, Any]]:
        groups: dict[str, list[OutcomeRecord]] = defaultdict(list)
        for o, kind, reason in kinds:
            if kind is not None:
                groups[(kind, reason)[key] or UNKNOWN_REASON].append(o)
        out = []
        for name in sorted(groups, key=lambda n: (-len(groups[n]), n)):
            members = groups[name]
            lost = sum(max(0.0, o.arr - o.arr_after) for o in members)
            out.append({
                "group": name, "accounts": len(members),
                "churn_rate": len(members) / total if total else None,
                "arr_lost": lost,
                "share_of_arr_lost": lost / at_stake if at_stake else None,
                "grr_without": (kept + lost) / at_stake if at_stake else None,
                "nrr_without": (after + lost) / at_stake if at_stake else None,
            })
        return out

    return {"churn_by_type": rows(0), "churn_by_reason": rows(1)}


def _summarise(
    acc: _Accumulator, outcomes: Sequence[OutcomeRecord], margin: float
) -> dict[str, Any]:
    assert acc.start is not None and acc.end is not None
    first_day, last_day = _day_of(acc.start), _day_of(acc.end)
    months: list[date] = []
    m = date(first_day.year, first_day.month, 1)
    while m <= last_day:
        months.append(m)
        m = _next_month(m)

    accounts = set(acc.first_seen) | {o.account_id for o in outcomes}
    lost: dict[str, date] = {}
    for o in outcomes:
        if o.churned:
            lost[o.account_id] = min(o.date, lost.get(o.account_id, o.date))
    became: dict[str, date] = {}
    for a in accounts:
        seen = acc.first_seen.get(a)
        became[a] = acc.created.get(a) or (_day_of(seen) if seen is not None else first_day)

    def customer_on(a: str, d: date) -> bool:
        return became[a] <= d and (a not in lost or lost[a] > d)

    churn_rows: list[dict[str, Any]] = []
    for month in months:
        nxt = _next_month(month)
        at_start = sum(1 for a in accounts if customer_on(a, month))
        gone = sum(1 for a, d in lost.items() if month <= d < nxt)
        churn_rows.append({
            "month": _month(month),
            "customers_at_start": at_start,
            "lost": gone,
            "churn_rate": gone / at_start if at_start else None,
        })
    rates: list[float] = [r["churn_rate"] for r in churn_rows if r["churn_rate"] is not None]
    monthly = sum(rates) / len(rates) if rates else 0.0
    annual = 1 - (1 - monthly) ** 12

    before = sum(o.arr for o in outcomes)
    after = sum(o.arr_after for o in outcomes)
    kept = sum(min(o.arr_after, o.arr) for o in outcomes)
    by_quarter: dict[str, list[OutcomeRecord]] = defaultdict(list)
    for o in outcomes:
        by_quarter[f"{o.date.year}-Q{(o.date.month - 1) // 3 + 1}"].append(o)
    retention_by_quarter = []
    for quarter in sorted(by_quarter):
        rows = by_quarter[quarter]
        q_before = sum(o.arr for o in rows)
        retention_by_quarter.append({
            "quarter": quarter,
            "renewals": len(rows),
            "arr_up_for_renewal": q_before,
            "grr": sum(min(o.arr_after, o.arr) for o in rows) / q_before if q_before else None,
            "nrr": sum(o.arr_after for o in rows) / q_before if q_before else None,
        })

    cohorts: dict[str, list[str]] = defaultdict(list)
    for a in sorted(accounts):
        d = became[a]
        cohorts[f"{d.year}-Q{(d.month - 1) // 3 + 1}"].append(a)
    cohort_rows = []
    for name in sorted(cohorts):
        members = cohorts[name]
        cells = []
        for month in months:
            month_end = _next_month(month)
            present = [a for a in members if became[a] < month_end]
            alive = sum(1 for a in present if a not in lost or lost[a] >= month_end)
            cells.append(alive / len(present) if present else None)
        cohort_rows.append({"cohort": name, "accounts": len(members), "retained": cells})

    nps_rows = []
    for month in months:
        answers = acc.nps.get(_month(month), [])
        promoters = sum(1 for s in answers if s >= 9)
        detractors = sum(1 for s in answers if s <= 6)
        nps_rows.append({
            "month": _month(month),
            "responses": len(answers),
            "nps": round(100 * (promoters - detractors) / len(answers), 1) if answers else None,
        })

    engagement_rows = []
    for month in months:
        users = acc.active.get(_month(month), {})
        nxt = _next_month(month)
        span_start = max(month, first_day)
        span_end = min(nxt, _next_day(last_day))
        days_in = max(1, (span_end - span_start).days)
        active_days = sum(len(d) for d in users.values())
        engagement_rows.append({
            "month": _month(month),
            "monthly_active_users": len(users),
            "active_days_per_user": active_days / len(users) if users else None,
            "stickiness": (active_days / days_in) / len(users) if users else None,
        })

    arrs = [acc.arr[a] for a in accounts if a in acc.arr] or [o.arr for o in outcomes]
    arpa = sum(arrs) / len(arrs) if arrs else None
    clv = arpa * margin / annual if arpa is not None and annual > 0 else None
    return {
        "period": {"start": first_day.isoformat(), "end": last_day.isoformat()},
        "accounts": len(accounts),
        "months": [_month(m) for m in months],
        "churn": churn_rows,
        "monthly_churn_rate": monthly,
        "annual_churn_rate": annual,
        "retention": {
            "renewals": len(outcomes),
            "arr_up_for_renewal": before,
            "grr": kept / before if before else None,
            "nrr": after / before if before else None,
            "by_quarter": retention_by_quarter,
        },
        "cohorts": {"months": [_month(m) for m in months], "rows": cohort_rows},
        "nps": nps_rows,
        "engagement": engagement_rows,
        "clv": {"average_arr": arpa, "margin": margin, "annual_churn_rate": annual,
                "clv": clv},
    }


def _next_day(d: date) -> date:
    return date.fromordinal(d.toordinal() + 1)


def format_summary(metrics: dict[str, Any], t: Translator = ENGLISH) -> str:
    """Plain-text summary for the terminal, in ``t``'s language and currency."""
    from history.report import churn_reason_label, churn_type_label, day

    if not metrics.get("months"):
        return t.gettext("no events in the history")
    pct = t.percent
    period = metrics["period"]
    lines = [
        t.ngettext("History %(start)s to %(end)s, %(count)s account",
                   "History %(start)s to %(end)s, %(count)s accounts", metrics["accounts"],
                   start=day(date.fromisoformat(period["start"]), t),
                   end=day(date.fromisoformat(period["end"]), t)),
        t.gettext("Monthly churn rate (average): %(monthly)s  (annualised %(annual)s)",
                  monthly=pct(100 * metrics["monthly_churn_rate"], 2),
                  annual=pct(100 * metrics["annual_churn_rate"], 1)),
    ]
    ret = metrics["retention"]
    if ret["grr"] is not None:
        lines.append(t.ngettext(
            "Renewals: %(count)s worth %(arr)s ARR; gross revenue retention %(grr)s, net "
            "revenue retention %(nrr)s",
            "Renewals: %(count)s worth %(arr)s ARR; gross revenue retention %(grr)s, net "
            "revenue retention %(nrr)s", ret["renewals"],
            arr=t.money(round(ret["arr_up_for_renewal"])), grr=pct(100 * ret["grr"], 1),
            nrr=pct(100 * ret["nrr"], 1)))
    for key, label in (("churn_by_type", churn_type_label),
                       ("churn_by_reason", churn_reason_label)):
        for row in metrics.get(key) or []:
            figures = {"group": label(row["group"], t), "rate": pct(100 * row["churn_rate"], 1),
                       "lost": t.money(round(row["arr_lost"])),
                       "share": pct(100 * row["share_of_arr_lost"], 1),
                       "grr": pct(100 * row["grr_without"], 1),
                       "nrr": pct(100 * row["nrr_without"], 1)}
            if key == "churn_by_type":
                lines.append(t.ngettext(
                    "Churn by type, %(group)s: %(count)s account (%(rate)s of renewals), "
                    "%(lost)s ARR lost (%(share)s); without it GRR %(grr)s, NRR %(nrr)s",
                    "Churn by type, %(group)s: %(count)s accounts (%(rate)s of renewals), "
                    "%(lost)s ARR lost (%(share)s); without it GRR %(grr)s, NRR %(nrr)s",
                    row["accounts"], **figures))
            else:
                lines.append(t.ngettext(
                    "Churn by reason, %(group)s: %(count)s account (%(rate)s of renewals), "
                    "%(lost)s ARR lost (%(share)s); without it GRR %(grr)s, NRR %(nrr)s",
                    "Churn by reason, %(group)s: %(count)s accounts (%(rate)s of renewals), "
                    "%(lost)s ARR lost (%(share)s); without it GRR %(grr)s, NRR %(nrr)s",
                    row["accounts"], **figures))
    clv = metrics["clv"]
    if clv and clv["clv"] is not None:
        lines.append(t.gettext(
            "Customer lifetime value: %(clv)s (average ARR %(arr)s, margin %(margin)s)",
            clv=t.money(round(clv["clv"])), arr=t.money(round(clv["average_arr"])),
            margin=pct(100 * clv["margin"])))
    lines.append("")
    lines.extend(_monthly_table(metrics, t))
    lines.append("")
    lines.extend(_cohort_table(metrics, t))
    return "\n".join(lines)


def _month_label(month: str, t: Translator, pattern: str = "MMM y") -> str:
    """A ``YYYY-MM`` month as the locale writes it; English keeps the ISO month."""
    if t.language == "en":
        return month if pattern == "MMM y" else month[2:]
    from babel.dates import format_date

    return format_date(date.fromisoformat(month + "-01"), pattern, locale=t.locale)


def _quarter_label(quarter: str, t: Translator) -> str:
    """A ``YYYY-Qn`` cohort as the locale writes it (2024-Q4 / T4 2024)."""
    year, _, q = quarter.partition("-Q")
    return t.pgettext("quarter", "%(year)s-Q%(quarter)s", year=year, quarter=q)


def _monthly_table(metrics: dict[str, Any], t: Translator) -> list[str]:
    head = (t.pgettext("metrics table", "month"), t.pgettext("metrics table", "customers"),
            t.pgettext("metrics table", "lost"), t.pgettext("metrics table", "churn"),
            t.pgettext("metrics table", "NPS (n)"),
            t.pgettext("metrics table", "active users"),
            t.pgettext("metrics table", "days/user"))
    lines = [f"{head[0]:<9} {head[1]:>10}  {head[2]:>4}  {head[3]:<5}   {head[4]:<14} "
             f"{head[5]:>12}  {head[6]:>9}".rstrip()]
    for churn, nps, eng in zip(metrics["churn"], metrics["nps"], metrics["engagement"],
                               strict=True):
        rate = "-" if churn["churn_rate"] is None else t.percent(100 * churn["churn_rate"], 1)
        score = "-" if nps["nps"] is None else f"{nps['nps']:+.0f}"
        per_user = ("-" if eng["active_days_per_user"] is None
                    else t.fixed(eng["active_days_per_user"], 1))
        lines.append(
            f"{_month_label(churn['month'], t):<9} {churn['customers_at_start']:>10}  "
            f"{churn['lost']:>4}  {rate:>5}   {score:>4} ({nps['responses']:>4})   "
            f"{eng['monthly_active_users']:>12}  {per_user:>9}"
        )
    return lines


def _cohort_table(metrics: dict[str, Any], t: Translator) -> list[str]:
    months = metrics["cohorts"]["months"]
    cohort, accounts = (t.pgettext("metrics table", "cohort"),
                        t.pgettext("metrics table", "accounts"))
    lines = [t.gettext("Cohort retention (share of the cohort still a customer at month end)"),
             f"{cohort:<9} {accounts:>8}  "
             + " ".join(f"{_month_label(m, t, 'MM/yy'):>5}" for m in months)]
    for row in metrics["cohorts"]["rows"]:
        cells = " ".join("  -  " if v is None else f"{t.percent(100 * v):>5}"
                         for v in row["retained"])
        lines.append(f"{_quarter_label(row['cohort'], t):<9} {row['accounts']:>8}  {cells}")
    return lines


# --------------------------------------------------------------------------- CLI


def add_parser(subparsers: Any) -> Any:
    from history.cli_args import add_language_argument

    parser = subparsers.add_parser(
        "metrics", help="business metrics of a history: churn, GRR/NRR, cohorts, NPS, CLV",
        description="Compute business metrics from an events file and an outcomes CSV.",
    )
    parser.add_argument("events", type=_path, help="events file (JSON lines or CSV, .gz ok)")
    parser.add_argument("--outcomes", type=_path, required=True, help="outcomes CSV")
    parser.add_argument("--workspace", default="default", help="workspace name")
    parser.add_argument("--margin", type=float, default=0.8, help="gross margin for CLV")
    parser.add_argument("--config", type=_path, default=None,
                        help="scoring config TOML whose [locale] the summary is written in "
                        "(default: the workspace's own in --workspaces-dir, else the "
                        "shipped one)")
    parser.add_argument("--workspaces-dir", type=_path,
                        default=os.environ.get("TELLTALE_WORKSPACES_DIR") or None,
                        help="the workers' per-workspace files, for the workspace's "
                        "[locale] (default: TELLTALE_WORKSPACES_DIR)")
    add_language_argument(parser)
    parser.add_argument("--json", type=_path, default=None, help="also write the metrics here")
    parser.add_argument("--publish", action="store_true",
                        help="also store them in Redis (TELLTALE_REDIS_URL) for the API's "
                             "business-metrics route")
    parser.set_defaults(func=run)
    return parser


def _path(value: str) -> Any:
    from pathlib import Path

    return Path(value)


def run(args: Any) -> int:
    import orjson

    from history.backtest import scoring_config_for
    from history.importers import import_events, read_outcomes
    from history.report import reader

    locale = scoring_config_for(args.config, args.workspaces_dir, args.workspace).locale
    t = reader(args.language, locale)
    outcomes = read_outcomes(args.outcomes)
    metrics = compute(import_events(args.events, args.workspace), outcomes, margin=args.margin)
    print(format_summary(metrics, t))
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(metrics, option=orjson.OPT_INDENT_2))
    if args.publish:
        where = asyncio.run(publish(metrics, args.workspace, args.events.name))
        print(t.gettext("published to %(where)s", where=where))
    return 0


async def publish(metrics: dict[str, Any], workspace: str, source: str) -> str:
    """Store ``metrics`` in the read model's Redis (settings from the environment), where
    ``GET /api/v1/workspaces/{workspace}/business-metrics`` serves them. Returns the
    Redis key written."""
    from state.readmodel import ReadModel
    from streams.settings import Settings

    readmodel = ReadModel.from_settings(Settings.from_env())
    try:
        await readmodel.publish_business(workspace, metrics, source, datetime.now(tz=UTC))
    finally:
        await readmodel.close()
    return readmodel.business_key(workspace)

"""Every sentence Telltale writes, in one module so it can be translated.

Explanations are built from numbers (component details and signal details); nothing here
decides anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from scoring.labels import BAND_NAMES, FORECAST_NAMES, LIFECYCLE_NAMES, Band, ForecastStage

# --------------------------------------------------------------------------- helpers


def _pct(now: float, before: float) -> int:
    return round(abs(now - before) / before * 100) if before else 0


def _updown(pct: float) -> str:
    n = round(pct)
    if n == 0:
        return "level"
    return f"{'down' if n < 0 else 'up'} {abs(n)}%"


def _days(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


def _join(parts: Sequence[str]) -> str:
    parts = [p for p in parts if p]
    if not parts:
        return ""
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _money(amount: Any) -> str:
    if isinstance(amount, int | float):
        return f"${amount:,.0f}" if float(amount).is_integer() else f"${amount:,.2f}"
    return "a payment"


CHECKPOINT_NAMES = {180: "health check", 90: "value review", 60: "pricing", 30: "contract"}


# --------------------------------------------------------------------------- signals


def signal_text(kind: str, d: dict[str, Any]) -> str:
    """Plain-English text of one signal from its detail numbers."""
    if kind == "power_user_inactive":
        return f"{d['name']}, a power user, has been inactive for {_days(d['days'])}"
    if kind.startswith("user_inactive_"):
        return f"{d['name']} has been inactive for {_days(d['days'])}"
    if kind == "seat_utilisation_drop":
        return (
            f"seat usage fell {_pct(d['current'], d['previous'])}% "
            f"({d['previous']} → {d['current']} of {d['seats']} seats)"
        )
    if kind == "core_feature_decline":
        return (
            f"core-feature use fell {_pct(d['current'], d['previous'])}% "
            f"({d['previous']} → {d['current']} events in 28 days)"
        )
    if kind == "ticket_spike":
        return f"{d['count']} support tickets were opened in {_days(d['days'])}"
    if kind == "ticket_open_long":
        return f"support ticket {d['ticket_id']} has been open for {_days(d['days'])}"
    if kind == "payment_failed":
        return f"a payment of {_money(d.get('amount'))} failed"
    if kind == "plan_downgraded":
        if d.get("from") and d.get("to"):
            return f"the plan was downgraded from {d['from']} to {d['to']}"
        return "the plan was downgraded"
    if kind == "seats_reduced":
        return f"seats were cut from {d['from']} to {d['to']}"
    if kind == "nps_detractor":
        who = d.get("name")
        return f"{who} gave an NPS of {d['score']}" if who else f"an NPS answer of {d['score']}"
    if kind == "meeting_missed":
        return "a QBR was skipped" if d.get("kind") == "qbr_skipped" else "a meeting was missed"
    if kind == "onboarding_milestone_missed":
        return (
            f"onboarding milestone {d['milestone'].replace('_', ' ')} is {_days(d['late_days'])}"
            f" overdue (due day {d['due_days']})"
        )
    if kind == "account_inactive":
        return f"nobody has used the product for {_days(d['days'])}"
    if kind == "seat_saturation":
        return (
            f"{d['active']} of {d['seats']} seats are in use ({d['pct']}%) "
            "and advanced features are being used"
        )
    if kind == "gated_feature_clicked":
        feats = ", ".join(d.get("features") or [])
        n = d["count"]
        what = "a gated feature" if n == 1 else f"gated features {n} times"
        return f"users clicked {what}" + (f" ({feats})" if feats else "")
    if kind == "upgrade_interest":
        return "users looked at upgrading" + (
            f" ({d['count']} times)" if d.get("count", 1) > 1 else ""
        )
    if kind == "renewal_checkpoint":
        name = CHECKPOINT_NAMES.get(d["checkpoint"], "checkpoint")
        return (
            f"renewal in {_days(d['days_to_renewal'])}: "
            f"T-{d['checkpoint']} {name}"
        )
    return kind.replace("_", " ")


def signal_ended_text(kind: str, d: dict[str, Any]) -> str:
    """Plain-English text of a signal that has just ended."""
    if kind == "power_user_inactive":
        return f"{d['name']}, a power user, is active again"
    if kind.startswith("user_inactive_"):
        return f"{d['name']} is active again"
    if kind == "seat_utilisation_drop":
        return f"seat usage recovered (back near {d['previous']} of {d['seats']} seats)"
    if kind == "core_feature_decline":
        return f"core-feature use recovered (back near {d['previous']} events in 28 days)"
    if kind == "ticket_spike":
        return "the support ticket spike is over"
    if kind == "ticket_open_long":
        return f"support ticket {d['ticket_id']} was closed"
    if kind == "payment_failed":
        return "the failed payment was settled"
    if kind == "plan_downgraded":
        return "the plan downgrade is no longer recent"
    if kind == "seats_reduced":
        return "the seat reduction is no longer recent"
    if kind == "nps_detractor":
        return "the low NPS answer is no longer recent or was improved"
    if kind == "meeting_missed":
        return "meetings are back on track"
    if kind == "onboarding_milestone_missed":
        return f"onboarding milestone {d['milestone'].replace('_', ' ')} was reached"
    if kind == "account_inactive":
        return "the account is active again"
    if kind == "seat_saturation":
        return "seat saturation eased"
    if kind == "gated_feature_clicked":
        return "no recent gated-feature clicks"
    if kind == "upgrade_interest":
        return "no recent upgrade interest"
    if kind == "renewal_checkpoint":
        return f"renewal checkpoint T-{d['checkpoint']} passed"
    return f"{kind.replace('_', ' ')} ended"


def _ago(n: int) -> str:
    if n <= 0:
        return "today"
    return "yesterday" if n == 1 else f"{n} days ago"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _renewal_text(p: Mapping[str, Any], today: int) -> str:
    left = int(p["renewal_day"]) - today
    if left > 0:
        head = f"Renewal in {_days(left)}"
    else:
        head = "Renewal is today" if left == 0 else f"Renewal was {_ago(-left)}"
    if p.get("fell_points"):
        n, days = p["fell_points"], p.get("fell_days") or 7
        when = "this week" if days == 7 else f"in {_days(days)}"
        return f"{head} and health fell {n} point{'s' if n != 1 else ''} {when}"
    if p.get("fell_30d"):
        return f"{head} and health fell {p['fell_30d']} points in 30 days"
    if p.get("forecast") == ForecastStage.AT_RISK:
        return f"{head} and the renewal forecast is at risk (health {p['score']})"
    return f"{head} with health at {p['score']} ({BAND_NAMES.get(str(p.get('band')), 'weak')})"


def attention_note(texts: Sequence[str], *, still_needed: bool) -> str:
    """The line a health change adds when the account's attention changed: the reasons
    that appeared or got worse (rendered for the change's day), or that it needs no one
    any more; empty when some reasons ended and others remain."""
    if texts:
        return "Needs attention: " + "; ".join(texts)
    return "" if still_needed else "No longer needs attention"


def attention_text(kind: str, p: Mapping[str, Any], since_day: int, today: int) -> str:
    """One attention reason as a sentence on epoch day ``today``: days are counted from
    ``since_day`` (or the dates in ``p``) to ``today``, so it is right whenever read."""
    d = dict(p)
    ago = today - since_day
    if kind == "champion_quiet":
        return f"{d['name']}, a power user, has not been seen for {_days(ago + 1)}"
    if kind == "seats_fell":
        return (f"Seat use fell {_pct(d['current'], d['previous'])}% ({d['previous']} → "
                f"{d['current']} of {d['seats']} seats) in 30 days")
    if kind == "core_usage_fell":
        return (f"Core-feature use fell {_pct(d['current'], d['previous'])}% "
                f"({d['previous']} → {d['current']} events) in 28 days")
    if kind == "health_fell":
        n = d["points"]
        return (f"Health fell {n} point{'s' if n != 1 else ''} ({d['from']} → {d['to']}) "
                f"in {_days(d['days'])}")
    if kind == "health_at_risk":
        return f"Health is {d['score']}, in the at-risk band"
    if kind == "renewal_at_risk":
        return _renewal_text(d, today)
    if kind == "payment_failed":
        return f"A payment of {_money(d.get('amount'))} failed {_ago(ago)}"
    if kind == "plan_downgraded":
        return _capital(signal_text("plan_downgraded", d)) + f" {_ago(ago)}"
    if kind == "seats_reduced":
        return f"Seats were cut {_ago(ago)}, from {d['from']} to {d['to']}"
    if kind == "support_spike":
        return _capital(signal_text("ticket_spike", d))
    if kind == "ticket_open_long":
        return f"Support ticket {d['ticket_id']} has been open for {_days(ago)}"
    if kind == "nps_detractor":
        return _capital(signal_text("nps_detractor", d)) + f" ({_ago(ago)})"
    if kind == "meeting_missed":
        return _capital(signal_text("meeting_missed", d)) + f" {_ago(ago)}"
    if kind == "onboarding_missed":
        return (f"Onboarding milestone {str(d['milestone']).replace('_', ' ')} is "
                f"{_days(ago + 1)} overdue")
    if kind == "account_inactive":
        return f"Nobody has used the product for {_days(ago + 1)}"
    if kind == "playbook_step_overdue":
        late = today - int(d["due_day"])
        when = f"{_days(late)} overdue" if late > 0 else "due today"
        return f"Step “{d['step']}” of the {d['playbook']} playbook is {when}"
    if kind == "seat_saturation":
        return _capital(signal_text("seat_saturation", d))
    if kind == "gated_feature":
        feats = [f for f in str(d.get("features") or "").split(", ") if f]
        return _capital(signal_text("gated_feature_clicked", {**d, "features": feats}))
    if kind == "upgrade_interest":
        return _capital(signal_text("upgrade_interest", d))
    return _capital(kind.replace("_", " "))


def user_gone_text(d: dict[str, Any], days: int) -> str:
    """A quiet person's episode ended because they are no longer counted."""
    return f"{d['name']} has been away for {days}+ days and is no longer counted"


# --------------------------------------------------------------------------- components


def component_change_text(
    name: str, prev: dict[str, Any] | None, cur: dict[str, Any], delta: int
) -> str:
    """Why a component moved, from its previous and current detail."""
    p = prev or {}
    if name == "active_seats":
        a0, a1, seats = p.get("active"), cur["active"], cur["seats"]
        if a0 is not None and a0 != a1:
            verb = "fell" if a1 < a0 else "rose"
            if a0 == 0 or a1 == 0:
                return f"seat usage {verb} from {a0} to {a1} of {seats} seats"
            return f"seat usage {verb} {_pct(a1, a0)}% ({a0} → {a1} of {seats} seats)"
        if p.get("seats") is not None and p["seats"] != seats:
            return f"{a1} of {seats} seats are active (seats went from {p['seats']} to {seats})"
        were = "seat was" if seats == 1 else "seats were"
        return f"{a1} of {seats} {were} active in the last 30 days"
    if name == "power_users":
        before = {u["user_id"] for u in p.get("inactive", [])}
        newly = [u for u in cur["inactive"] if u["user_id"] not in before]
        now_ids = {u["user_id"] for u in cur["inactive"]}
        back = [u for u in p.get("inactive", []) if u["user_id"] not in now_ids]
        if delta < 0 and newly:
            shown = newly if len(newly) < len(cur["inactive"]) else cur["inactive"]
            return power_users_quiet(shown)
        if delta > 0 and back:
            names = _join([u["name"] for u in back])
            return f"{names}, {'a power user, is' if len(back) == 1 else 'power users, are'}" \
                " active again"
        if cur["inactive"]:
            return power_users_quiet(cur["inactive"])
        n, act = cur["power_users"], cur["active"]
        if not n:
            recent, users = cur.get("recent", 0), cur.get("users", 0)
            were = "user was" if users == 1 else "users were"
            return f"{recent} of {users} {were} active in the last 14 days"
        noun = "power user" if n == 1 else "power users"
        return f"{act} of {n} {noun} {'is' if act == 1 else 'are'} active"
    if name == "engagement":
        t = cur.get("trend_pct")
        level = cur["per_seat_week"]
        base = f"weighted engagement is {level:g} points per seat per week"
        was = p.get("per_seat_week")
        if t is None:
            return base + (f" (was {was:g})" if was is not None and was != level else "")
        text = f"{base}, {_updown(t)} on the 60 days before"
        t0 = p.get("trend_pct")
        if t0 is not None and round(t0) != round(t):
            text += f" (was {_updown(t0)})"
        return text
    if name == "core_features":
        c0, c1 = cur["previous_28d"], cur["events_28d"]
        if c0 == 0 and c1 == 0:
            return "no core features were used in the last 8 weeks"
        ch = cur.get("change_pct")
        if ch is None:
            times = "once" if c1 == 1 else f"{c1} times"
            return f"core features were used {times} in the last 28 days"
        ch0 = p.get("change_pct")
        was = f"; was {_updown(ch0)}" if ch0 is not None and round(ch0) != round(ch) else ""
        return (
            f"core-feature use is {_updown(ch)} on the 28 days before "
            f"({c0} → {c1} events{was})"
        )
    if name == "support":
        parts = []
        if cur.get("spike"):
            parts.append(f"{cur['recent']} support tickets were opened in 10 days")
        if cur["aged"]:
            parts.append(
                f"{cur['aged']} ticket{'s have' if cur['aged'] > 1 else ' has'} been open "
                f"for {cur['oldest_days']}+ days"
            )
        if cur.get("low_csat") is not None:
            parts.append(f"a customer rated support {int(cur['low_csat'])} of 5")
        if parts:
            return _join(parts)
        if delta > 0 and p.get("open"):
            return f"support tickets were resolved ({p['open']} → {cur['open']} open)"
        return f"{cur['open']} support ticket{'s are' if cur['open'] != 1 else ' is'} open"
    if name == "financial":
        parts = []
        if "payment_failed" in cur:
            parts.append(signal_text("payment_failed", {"amount": cur["payment_failed"]}))
        if "downgrade" in cur:
            parts.append(signal_text("plan_downgraded", {"from": cur["downgrade"][0],
                                                         "to": cur["downgrade"][1]}))
        if "seat_reduction" in cur:
            parts.append(signal_text("seats_reduced", {"from": cur["seat_reduction"][0],
                                                       "to": cur["seat_reduction"][1]}))
        if cur.get("cancelled"):
            parts.append("the subscription was cancelled")
        if parts:
            return _join(parts)
        if "payment_failed" in p:
            return "the failed payment was settled"
        return "billing is in good standing"
    if name == "relationship":
        parts = []
        n0, n1 = p.get("nps"), cur.get("nps")
        if n1 is not None and n0 != n1:
            parts.append(f"NPS is {n1:g}" + (f" (was {n0:g})" if n0 is not None else ""))
        missed = cur["meetings_missed"]
        if missed > p.get("meetings_missed", 0) or (delta < 0 and missed):
            parts.append(
                "a meeting was missed" if missed == 1
                else f"{missed} meetings were missed in 90 days"
            )
        if cur["qbrs_skipped"] > p.get("qbrs_skipped", 0) or (delta < 0 and cur["qbrs_skipped"]):
            parts.append("a QBR was skipped")
        if parts:
            return _join(parts)
        return "the relationship improved" if delta > 0 else "the relationship cooled"
    return name.replace("_", " ")


def power_users_quiet(users: list[dict[str, Any]]) -> str:
    if len(users) == 1:
        u = users[0]
        return f"{u['name']}, a power user, has been inactive for {_days(u['days'])}"
    if len(users) == 2:
        a, b = users
        days = (
            _days(a["days"]) if a["days"] == b["days"]
            else f"{a['days']} and {b['days']} days"
        )
        return f"{a['name']} and {b['name']}, power users, have been inactive for {days}"
    return f"{len(users)} power users have been inactive for {_days(users[-1]['days'])} or more"


# --------------------------------------------------------------------------- paragraph


def _week(change_7d: int | None, delta: int) -> str:
    if change_7d is None or change_7d == delta or change_7d == 0:
        return ""
    return f"; {'down' if change_7d < 0 else 'up'} {abs(change_7d)} in 7 days"


def headline(previous: int | None, current: int, band: str,
             change_7d: int | None = None) -> str:
    if previous is None:
        return f"Health is {current} ({BAND_NAMES[band]})"
    delta = current - previous
    week = _week(change_7d, delta)
    if delta < 0:
        n = -delta
        return f"Health fell {n} point{'s' if n != 1 else ''} ({previous} → {current}{week})"
    if delta > 0:
        n = delta
        return f"Health rose {n} point{'s' if n != 1 else ''} ({previous} → {current}{week})"
    if week:
        return f"Health held at {current} ({BAND_NAMES[band]}{week})"
    return f"Health held at {current} ({BAND_NAMES[band]})"


def paragraph(
    previous: int | None,
    current: int,
    band: str,
    reasons: Sequence[str],
    started: Sequence[str],
    change_7d: int | None,
    ended: Sequence[str],
    stage_notes: Sequence[str] = (),
) -> str:
    """One paragraph: headline, "because" the top reasons, then what started/ended."""
    head = headline(previous, current, band, change_7d)
    if reasons and previous is None and band == Band.HEALTHY:
        text = f"{head}; room to improve: {_join(list(reasons))}."
    elif reasons:
        lead = "mainly because" if previous is None else "because"
        text = f"{head} {lead} {_join(list(reasons))}."
    else:
        text = f"{head}."
    extra = [s for s in started if not any(s in r for r in reasons)]
    if extra:
        text += f" New: {_capped(extra)}."
    if ended:
        text += f" Resolved: {_capped(list(ended))}."
    for note in stage_notes:
        text += f" {note}."
    return text


def _capped(items: list[str], limit: int = 3) -> str:
    if len(items) <= limit:
        return "; ".join(items)
    return "; ".join(items[:limit]) + f"; and {len(items) - limit} more"


def band_note(previous: str | None, current: str) -> str:
    if previous is None:
        return ""
    return f"Band moved from {BAND_NAMES[previous]} to {BAND_NAMES[current]}"


def forecast_note(previous: str | None, current: str | None) -> str:
    if current is None:
        return "The renewal forecast no longer applies"
    if previous is None:
        return f"Renewal forecast: {FORECAST_NAMES[current]}"
    return f"Renewal forecast moved from {FORECAST_NAMES[previous]} to {FORECAST_NAMES[current]}"


def lifecycle_note(previous: str | None, current: str) -> str:
    if previous is None:
        return f"The account is {LIFECYCLE_NAMES[current]}"
    return f"The account is now {LIFECYCLE_NAMES[current]} (was {LIFECYCLE_NAMES[previous]})"


def weakest_text(name: str, cur: dict[str, Any]) -> str:
    """Current-state text for a component, for first assessments."""
    return component_change_text(name, None, cur, -1)

"""Scores: the nine account metrics, the user score, bands (with hysteresis) and the
exact integer split of a score into component points."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from scoring.config import Bands, ScoringConfig
from scoring.labels import Band
from state.aggregates import (
    DAY,
    YEAR_DAYS,
    AccountState,
    UserSummary,
    epoch_week,
    year_active_days,
    year_oldest_active,
)

_BAND_RANK: dict[str, int] = {Band.AT_RISK: 0, Band.WATCH: 1, Band.HEALTHY: 2}


@dataclass(slots=True)
class Component:
    """One part of a score: metric value, integer points earned, weight (max points) and
    the numbers behind it (``detail``), used for explanations."""

    name: str
    value: float | None
    points: int
    weight: int
    detail: dict[str, Any] = field(default_factory=dict)
    raw: float = 0.0  # unrounded points, so explanations ignore rounding noise
    share: float = 0.0  # the fraction (0-1) of its weight it earns, whatever the weight

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": None if self.value is None else round(self.value, 2),
            "points": self.points,
            "weight": self.weight,
            "detail": self.detail,
        }


def split_points(raw: Sequence[float]) -> list[int]:
    """Integer points per component that sum exactly to the rounded total (largest
    remainder; ties go to the earlier component)."""
    target = math.floor(sum(raw) + 0.5 + 1e-9)
    floors = [math.floor(x + 1e-9) for x in raw]
    rest = target - sum(floors)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - floors[i]), i))
    out = list(floors)
    for i in order[: max(rest, 0)]:
        out[i] += 1
    return out


def band_of(score: float, bands: Bands) -> Band:
    if score >= bands.healthy:
        return Band.HEALTHY
    if score >= bands.watch:
        return Band.WATCH
    return Band.AT_RISK


def sticky_band(score: int, current: str | None, bands: Bands) -> str:
    """Band with hysteresis: leave ``current`` only when the score is ``hysteresis``
    points past the boundary (healthy→watch below 67, watch→healthy at 73 by default)."""
    if current is None:
        return band_of(score, bands)
    m = bands.hysteresis
    down = band_of(score + m, bands)
    if _BAND_RANK[down] < _BAND_RANK[current]:
        return down
    up = band_of(score - m, bands)
    if _BAND_RANK[up] > _BAND_RANK[current]:
        return up
    return current


# --------------------------------------------------------------------------- user score


def user_score(s: UserSummary, today: int, config: ScoringConfig) -> tuple[int, list[Component]]:
    """User score 0-100 from recency, frequency (active days in 30) and intensity
    (weighted points in the last 4 weeks)."""
    us = config.user_score
    recency = float(today - s.last_day) if s.last_day is not None else 999.0
    frequency = float(s.active_days_in(today, 30))
    wk = epoch_week(today)
    intensity = sum(p for w, p in s.weeks.items() if w > wk - 4)
    raws = [
        us.recency_weight * us.recency(recency) / 100.0,
        us.frequency_weight * us.frequency(frequency) / 100.0,
        us.intensity_weight * us.intensity(intensity) / 100.0,
    ]
    pts = split_points(raws)
    comps = [
        Component("recency", recency, pts[0], us.recency_weight, {"days_inactive": int(recency)}),
        Component("frequency", frequency, pts[1], us.frequency_weight, {}),
        Component("intensity", intensity, pts[2], us.intensity_weight, {}),
    ]
    return sum(pts), comps


# --------------------------------------------------------------------------- facts


@dataclass(slots=True)
class Facts:
    """Numbers measured once per assessment and shared by metrics, signals and stages."""

    today: int
    seats: int
    seats_known: bool
    active_30: int
    active_prev_30: int
    users_90: int
    power: list[str]
    inactive_days: int | None  # days since the account's last activity
    points_30: float
    points_prev_60: float
    points_7: float
    points_prev_7: float
    core_28: int
    core_prev_28: int
    open_tickets: int
    aged_tickets: list[tuple[str, int]]  # (ticket id, days open)
    tickets_recent: int
    low_csat: float | None
    first_day: int | None  # first day with activity data (coverage of trend windows)

    def covered(self, start_ago: int, end_ago: int) -> int:
        """Days of [today - end_ago, today - start_ago] on or after the first data day."""
        if self.first_day is None:
            return 0
        lo = max(self.today - end_ago, self.first_day)
        return max(0, self.today - start_ago - lo + 1)


def update_power_users(account: AccountState, today: int, config: ScoringConfig) -> list[str]:
    """Recompute power users (sticky while they are quiet, so a champion who stops is
    still a champion); returns their ids, strongest first."""
    pu = config.power_users
    forget = config.signals.user_forget_days
    ranked: list[tuple[float, str]] = []
    total = 0.0
    start = epoch_week(today) - 13
    for uid, s in account.users.items():
        if s.last_day is None or today - s.last_day > 91:
            continue
        p = 0.0
        for w, pts in s.weeks.items():
            if w > start:
                p += pts
        if p > 0:
            ranked.append((-p, uid))
            total += p
    points = {uid: -negp for negp, uid in ranked}
    ranked.sort()
    chosen: dict[str, float] = {}
    cum = 0.0
    floor = max(pu.min_points, pu.relative_min * total / len(ranked)) if ranked else 0.0
    for negp, uid in ranked:
        if len(chosen) >= pu.max_users or -negp < floor:
            break
        chosen[uid] = -negp
        cum -= negp
        if cum >= pu.share * total:
            break
    out: list[tuple[float, str]] = []
    for uid, s in account.users.items():
        if uid in chosen:
            if not s.power:
                s.power = True
                s.power_since = today
        elif s.power:
            quiet = today - s.last_day if s.last_day is not None else forget
            if not (pu.active_days <= quiet < forget):
                s.power = False
                s.power_since = None
        if s.power:
            out.append((-points.get(uid, 0.0), uid))
    out.sort()
    return [uid for _, uid in out]


def measure(account: AccountState, today: int, config: ScoringConfig) -> Facts:
    active_30 = active_prev = users_90 = 0
    for s in account.users.values():
        last = s.last_day
        if last is None or today - last > 90:
            continue
        users_90 += 1
        if today - last < 30:
            active_30 += 1
        if s.active_in(today, 30, 59):
            active_prev += 1
    seats_known = account.seats is not None and account.seats > 0
    seats = account.seats if seats_known and account.seats else max(users_90, 1)
    power = update_power_users(account, today, config)
    last_activity = account.last_seen
    inactive: int | None = None
    if last_activity is not None:
        inactive = today - int(last_activity // 86400)
    # Rates and trends use complete days (today is still filling up); one pass each.
    p30 = p60 = p7 = pp7 = 0.0
    for d, pts in account.days.items():
        ago = today - d
        if ago < 1 or ago > 90:
            continue
        if ago <= 30:
            p30 += pts
            if ago <= 7:
                p7 += pts
            elif ago <= 14:
                pp7 += pts
        else:
            p60 += pts
    c28 = c56 = 0
    for d, n in account.core_days.items():
        ago = today - d
        if 1 <= ago <= 28:
            c28 += n
        elif 29 <= ago <= 56:
            c56 += n
    aged_limit = config.signals.ticket_open_days
    aged = sorted(
        ((tid, today - d) for tid, d in account.open_tickets.items() if today - d >= aged_limit),
        key=lambda x: (-x[1], x[0]),
    )
    spike_days = config.signals.ticket_spike_days
    tickets_recent = sum(1 for d in account.ticket_days if today - d < spike_days)
    csat_days = config.support.csat_days
    recent_csat = [c[1] for c in account.csat if today - c[0] < csat_days]
    return Facts(
        today=today,
        seats=seats,
        seats_known=seats_known,
        active_30=active_30,
        active_prev_30=active_prev,
        users_90=users_90,
        power=power,
        inactive_days=inactive,
        points_30=p30,
        points_prev_60=p60,
        points_7=p7,
        points_prev_7=pp7,
        core_28=c28,
        core_prev_28=c56,
        open_tickets=len(account.open_tickets),
        aged_tickets=aged,
        tickets_recent=tickets_recent,
        low_csat=min(recent_csat) if recent_csat else None,
        first_day=None if account.first_seen is None else int(account.first_seen // 86400),
    )


_POINTS_PRIOR = 30.0  # about one weighted point a day
_EVENTS_PRIOR = 10.0  # core events


def pct_change(now: float, before: float, prior: float = 0.0) -> float | None:
    """Percent change; ``prior`` (a pseudo-count added to the base) shrinks changes of
    small numbers towards zero, so 4 → 2 events is not read like 400 → 200."""
    if before <= 0:
        return None
    return (now - before) / (before + prior) * 100.0


# --------------------------------------------------------------------------- account score

#: What one component measures: its value, the fraction (0-100) of its weight it
#: earns, and the numbers behind it.
Measured = tuple[float | None, float, dict[str, Any]]


def _active_seats(account: AccountState, f: Facts, config: ScoringConfig) -> Measured:
    """Share of seats active in the last 30 days."""
    seat_pct = 100.0 * f.active_30 / f.seats
    return seat_pct, config.metrics["active_seats"].curve(seat_pct), {
        "active": f.active_30, "seats": f.seats, "seats_known": f.seats_known,
        "previous_active": f.active_prev_30, "pct": round(seat_pct, 1),
    }


def _power_users(account: AccountState, f: Facts, config: ScoringConfig) -> Measured:
    """Share of power users still active; without power users, of the whole team."""
    today = f.today
    quiet_limit = config.power_users.active_days
    inactive_power: list[dict[str, Any]] = []
    active_power = 0
    for uid in f.power:
        s = account.users[uid]
        quiet = today - s.last_day if s.last_day is not None else 999
        if quiet >= quiet_limit:
            inactive_power.append({"user_id": uid, "name": s.name or uid, "days": quiet})
        else:
            active_power += 1
    recent = 0
    if f.power:
        pu_value = 100.0 * active_power / len(f.power)
    elif f.users_90:
        # No one stands out: judge the whole team's recent activity instead.
        recent = sum(
            1 for s in account.users.values()
            if s.last_day is not None and today - s.last_day < quiet_limit
        )
        pu_value = 100.0 * recent / f.users_90
    else:
        pu_value = 0.0
    inactive_power.sort(key=lambda x: (-x["days"], x["user_id"]))
    return pu_value, config.metrics["power_users"].curve(pu_value), {
        "power_users": len(f.power), "active": active_power, "inactive": inactive_power,
        "recent": recent, "users": f.users_90,
    }


def _engagement(account: AccountState, f: Facts, config: ScoringConfig) -> Measured:
    """Weighted engagement per seat per week, blended with its trend."""
    eng = config.metrics["engagement"]
    level = f.points_30 / f.seats / (30.0 / 7.0)
    # Trends compare against what was measured before; a young account's earlier window
    # is only partly covered, so its rate is scaled to the covered days (none below 14).
    cov_60 = f.covered(31, 90)
    trend = (
        pct_change(f.points_30, f.points_prev_60 / cov_60 * 30.0, _POINTS_PRIOR)
        if cov_60 >= 14 else None
    )
    # No trend reads as steady, except for an account old enough to have one and with
    # no use at all in 30 days: once its earlier activity has left the windows it is not
    # steady, it is gone (else its score would rise as the last of its use ages out).
    gone = trend is None and cov_60 >= 14 and f.points_30 <= 0
    trend_value = -100.0 if gone else (trend if trend is not None else 0.0)
    frac = (1.0 - eng.trend_share) * eng.curve(level)
    if eng.trend_curve is not None:
        frac += eng.trend_share * eng.trend_curve(trend_value)
    wow = pct_change(f.points_7, f.points_prev_7)
    return level, frac, {
        "points_30d": round(f.points_30, 1),
        "points_prev_60d": round(f.points_prev_60, 1),
        "per_seat_week": round(level, 1),
        "trend_pct": None if trend is None else round(trend, 1),
        "week_over_week_pct": None if wow is None else round(wow, 1),
    }


def _core_features(account: AccountState, f: Facts, config: ScoringConfig) -> Measured:
    """Core-feature use of 28 days against the 28 before."""
    cov_28 = f.covered(29, 56)
    core_change = (
        pct_change(f.core_28, f.core_prev_28 / cov_28 * 28.0, _EVENTS_PRIOR)
        if cov_28 >= 14 else None
    )
    if core_change is not None:
        core_value = core_change
    elif f.core_28 > 0 or (f.core_prev_28 > 0 and cov_28 < 14):
        core_value = 0.0  # used, nothing to compare with yet: neutral
    else:
        core_value = -100.0  # no core feature used at all
    # the earlier window scaled to 28 days when only partly covered by data
    prev_28 = round(f.core_prev_28 / cov_28 * 28.0) if 14 <= cov_28 < 28 else f.core_prev_28
    return core_value, config.metrics["core_features"].curve(core_value), {
        "events_28d": f.core_28, "previous_28d": prev_28,
        "change_pct": None if core_change is None else round(core_change, 1),
    }


#: Days of the year a young account is judged on at least: a week's use is not a habit.
_HABIT_MIN_DAYS = 28


def _habit(account: AccountState, f: Facts, config: ScoringConfig) -> Measured:
    """Days a month with use, over the last year (over the account's life when younger,
    four weeks at least): the long-run habit that one quiet month does not undo."""
    active = year_active_days(account.year_bits, account.year_anchor, f.today)
    covered = f.covered(0, YEAR_DAYS - 1)
    if covered <= 0:
        return None, 0.0, {"active_days": 0, "days": 0, "per_month": None}
    per_month = 30.0 * active / max(covered, _HABIT_MIN_DAYS)
    return per_month, config.metrics["habit"].curve(per_month), {
        "active_days": active, "days": covered, "per_month": round(per_month, 1),
    }


def _recency(account: AccountState, f: Facts, config: ScoringConfig) -> Measured:
    """Days since anyone last used the product; never used earns nothing."""
    days = f.inactive_days
    if days is None:
        return None, 0.0, {"days": None}
    return float(days), config.metrics["recency"].curve(days), {"days": days}


def _support(account: AccountState, f: Facts, config: ScoringConfig) -> Measured:
    """Support friction: open and aged tickets, a spike, a low CSAT."""
    sup = config.support
    sg = config.signals
    spike = f.tickets_recent >= sg.ticket_spike_count
    low = f.low_csat is not None and f.low_csat <= sg.low_csat_max
    friction = (
        f.open_tickets * sup.open_ticket
        + len(f.aged_tickets) * sup.aged_ticket
        + (sup.spike if spike else 0.0)
        + (sup.low_csat if low else 0.0)
    )
    return friction, config.metrics["support"].curve(friction), {
        "open": f.open_tickets, "aged": len(f.aged_tickets),
        "oldest_days": f.aged_tickets[0][1] if f.aged_tickets else None,
        "recent": f.tickets_recent, "spike": spike, "low_csat": f.low_csat if low else None,
    }


def _financial(account: AccountState, f: Facts, config: ScoringConfig) -> Measured:
    """Financial risk: a failed payment, a recent downgrade or seat cut, a cancellation."""
    today = f.today
    fin = config.financial
    risk = 0.0
    fdetail: dict[str, Any] = {}
    if account.payment_failed is not None:
        risk += fin.payment_failed
        fdetail["payment_failed"] = account.payment_failed[1]
    if account.downgrade is not None and today - account.downgrade[0] < fin.lookback_days:
        risk += fin.downgrade
        fdetail["downgrade"] = [account.downgrade[1], account.downgrade[2]]
    if account.seat_reduction is not None and today - account.seat_reduction[0] < fin.lookback_days:
        risk += fin.seat_reduction
        fdetail["seat_reduction"] = [account.seat_reduction[1], account.seat_reduction[2]]
    if account.cancelled_day is not None:
        risk += fin.cancelled
        fdetail["cancelled"] = True
    risk = min(risk, 100.0)
    fdetail["risk"] = risk
    return risk, config.metrics["financial"].curve(risk), fdetail


def _relationship(account: AccountState, f: Facts, config: ScoringConfig) -> Measured:
    """Mean recent NPS after missed meetings and skipped QBRs, plus held ones."""
    today = f.today
    rel = config.relationship
    nps_recent = [n[1] for n in account.nps if today - n[0] < config.signals.nps_days]
    nps = sum(nps_recent) / len(nps_recent) if nps_recent else None
    value = nps if nps is not None else rel.no_nps
    missed = skipped = held = 0
    for day, kind in account.meetings:
        if today - day >= rel.lookback_days:
            continue
        if kind == "meeting_missed":
            missed += 1
        elif kind == "qbr_skipped":
            skipped += 1
        else:
            held += 1
    value = value - missed * rel.meeting_missed_penalty - skipped * rel.qbr_skipped_penalty
    value = max(0.0, min(10.0, value + held * rel.held_bonus))
    return value, config.metrics["relationship"].curve(value), {
        "nps": None if nps is None else round(nps, 1), "responses": len(nps_recent),
        "meetings_missed": missed, "qbrs_skipped": skipped, "held": held,
    }


def _days_of(records: Iterable[list[Any]], days: int) -> list[int]:
    return [r[0] + days for r in records]


def _while_active(account: AccountState, today: int, config: ScoringConfig) -> list[int]:
    """Every day while a user seen in the last 90 days is counted."""
    for s in account.users.values():
        if s.last_day is not None and today - s.last_day <= 90:
            return [today + 1]
    return []


def _while_points(account: AccountState, today: int, config: ScoringConfig) -> list[int]:
    """Every day while activity is in the windows."""
    return [today + 1] if account.days else []


def _while_core(account: AccountState, today: int, config: ScoringConfig) -> list[int]:
    """Every day while a core event is in one of the two 28-day windows."""
    for day in account.core_days:
        if today - day <= 56:
            return [today + 1]
    return []


def _while_recent(account: AccountState, today: int, config: ScoringConfig) -> list[int]:
    """Every day until the last activity is as old as the recency curve's last point."""
    if account.last_seen is None:
        return []
    last = int(account.last_seen // DAY)
    end = config.metrics["recency"].curve.points[-1][0]
    return [today + 1] if today - last < end else []


def _habit_due(account: AccountState, today: int, config: ScoringConfig) -> list[int]:
    """The day the oldest active day of the year leaves it, and each day while the
    account is younger than the year it is judged on (its share of days moves daily);
    never while the habit weighs nothing, as in the shipped config."""
    oldest = year_oldest_active(account.year_bits, account.year_anchor, today)
    if oldest is None or not _weighs(config, "habit"):
        return []
    first = None if account.first_seen is None else int(account.first_seen // DAY)
    if first is not None and today - first < YEAR_DAYS - 1:
        return [today + 1]
    return [oldest + YEAR_DAYS]


def _weighs(config: ScoringConfig, metric: str) -> bool:
    """Whether ``metric`` weighs anything in some segment: else it never moves a score."""
    return config.metrics[metric].weight > 0 or any(
        w.get(metric) for w in config.segment_weights.values())


def _support_due(account: AccountState, today: int, config: ScoringConfig) -> list[int]:
    """Every day while a ticket is open; else when recent tickets and CSAT answers
    leave their windows."""
    if account.open_tickets:
        return [today + 1]
    spike = config.signals.ticket_spike_days
    return [*(d + spike for d in account.ticket_days),
            *_days_of(account.csat, config.support.csat_days)]


def _financial_due(account: AccountState, today: int, config: ScoringConfig) -> list[int]:
    """When a downgrade or seat cut leaves ``financial.lookback_days``."""
    fin = config.financial.lookback_days
    return [rec[0] + fin for rec in (account.downgrade, account.seat_reduction)
            if rec is not None]


def _relationship_due(account: AccountState, today: int, config: ScoringConfig) -> list[int]:
    """When meetings leave ``relationship.lookback_days`` and answers ``signals.nps_days``."""
    return [*_days_of(account.meetings, config.relationship.lookback_days),
            *_days_of(account.nps, config.signals.nps_days)]


@dataclass(frozen=True, slots=True)
class ComponentUnit:
    """One account-score component: its name (its weight and curve are
    ``metrics.<name>``), what it measures, the other settings it reads (``section.key``)
    and the days it can move by time alone."""

    name: str
    measure: Callable[[AccountState, Facts, ScoringConfig], Measured]
    settings: tuple[str, ...]
    due: Callable[[AccountState, int, ScoringConfig], list[int]]


#: The nine components in score order.
COMPONENTS: tuple[ComponentUnit, ...] = (
    ComponentUnit("active_seats", _active_seats, (), _while_active),
    ComponentUnit("power_users", _power_users,
                  ("power_users.active_days", "power_users.share", "power_users.min_points",
                   "power_users.relative_min", "power_users.max_users"), _while_active),
    ComponentUnit("engagement", _engagement, (), _while_points),
    ComponentUnit("core_features", _core_features, (), _while_core),
    ComponentUnit("recency", _recency, (), _while_recent),
    ComponentUnit("habit", _habit, (), _habit_due),
    ComponentUnit("support", _support,
                  ("support.open_ticket", "support.aged_ticket", "support.spike",
                   "support.low_csat", "support.csat_days", "signals.ticket_spike_count",
                   "signals.ticket_spike_days", "signals.ticket_open_days",
                   "signals.low_csat_max"), _support_due),
    ComponentUnit("financial", _financial,
                  ("financial.payment_failed", "financial.downgrade",
                   "financial.seat_reduction", "financial.cancelled",
                   "financial.lookback_days"), _financial_due),
    ComponentUnit("relationship", _relationship,
                  ("relationship.no_nps", "relationship.meeting_missed_penalty",
                   "relationship.qbr_skipped_penalty", "relationship.held_bonus",
                   "relationship.lookback_days", "signals.nps_days"), _relationship_due),
)
#: Each component's due rule once, the cheapest of the daily ones first.
_DUE = (_while_points, _while_active, _while_core, _while_recent, _habit_due, _support_due,
        _financial_due, _relationship_due)


def account_components(
    account: AccountState, f: Facts, config: ScoringConfig, segment: str | None = None
) -> list[Component]:
    """The components, weighed as in ``segment`` (:meth:`ScoringConfig.weight`), with
    integer points summing exactly to the score."""
    measured: list[tuple[str, float | None, dict[str, Any], float]] = []
    weights: list[int] = []
    raws: list[float] = []
    for unit in COMPONENTS:
        value, fraction, detail = unit.measure(account, f, config)
        earned = max(0.0, min(100.0, fraction))
        measured.append((unit.name, value, detail, earned / 100.0))
        weight = config.weight(unit.name, segment)
        weights.append(weight)
        raws.append(weight * earned / 100.0)
    pts = split_points(raws)
    return [
        Component(name, value, p, weight, detail, raw, share)
        for (name, value, detail, share), p, weight, raw
        in zip(measured, pts, weights, raws, strict=True)
    ]


def components_due(account: AccountState, today: int, config: ScoringConfig) -> list[int]:
    """Days a component can move by time alone (each component's ``due`` rule); just
    tomorrow when one of them moves every day."""
    days: list[int] = []
    for due in _DUE:
        found = due(account, today, config)
        if found and found[0] == today + 1:
            return found
        days.extend(found)
    return days

"""Signals: named conditions with episodes (an onset, a resolution, a stable key).

:func:`detect` lists the conditions that hold now; :func:`merge` turns them into episodes
against the signals already active: a condition that continues keeps its key and
``since``; a new one starts an episode keyed ``<ident>@<onset day>``; an active signal no
longer detected ends. A person's inactivity is identified by the person alone, not by
their last active day: an older event that arrives late moves the last active day but,
while the person is still quiet past the threshold, the episode continues instead of
ending and starting again in one breath. Identities that carry their own anchor (a
ticket id) make a new episode after every resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scoring import explain
from scoring.config import ScoringConfig
from scoring.labels import SignalSeverity
from scoring.scores import Facts
from state.aggregates import DAY, AccountState, SignalState

RISK = SignalSeverity.RISK
EXPANSION = SignalSeverity.EXPANSION
INFO = SignalSeverity.INFO

#: Every signal type :func:`detect` emits, but for the one per inactivity threshold
#: (:func:`user_inactive_type`); routing rules and playbooks match these names.
FIXED_SIGNAL_TYPES = (
    "power_user_inactive", "seat_utilisation_drop", "core_feature_decline", "ticket_spike",
    "ticket_open_long", "payment_failed", "plan_downgraded", "seats_reduced", "nps_detractor",
    "meeting_missed", "onboarding_milestone_missed", "account_inactive", "seat_saturation",
    "gated_feature_clicked", "upgrade_interest", "renewal_checkpoint",
)


def user_inactive_type(days: int) -> str:
    """The signal type of a regular user quiet for ``days`` days (a configured threshold)."""
    return f"user_inactive_{days}d"


def signal_types(config: ScoringConfig) -> tuple[str, ...]:
    """Every signal type :func:`detect` can emit under ``config``."""
    return (*FIXED_SIGNAL_TYPES,
            *(user_inactive_type(n) for n in config.signals.user_inactive_days))


@dataclass(slots=True)
class Detected:
    type: str
    ident: str  # identity of the condition; episodes continue while it holds
    subject: str | None
    severity: str
    onset_day: int
    detail: dict[str, Any] = field(default_factory=dict)
    # Lower thresholds that keep an already active episode alive (hysteresis).
    sustain_only: bool = False


def _user_name(account: AccountState, uid: str | None) -> str | None:
    if uid is None:
        return None
    s = account.users.get(uid)
    return (s.name if s is not None and s.name else None) or uid


def _active_by_ident(active: dict[str, SignalState]) -> dict[str, SignalState]:
    return {sig.key.rsplit("@", 1)[0]: sig for sig in active.values()}


@dataclass(frozen=True, slots=True)
class _Look:
    """What every family of detectors reads about one account on one day."""

    account: AccountState
    f: Facts
    config: ScoringConfig
    ongoing: dict[str, SignalState]  # active episodes by identity
    created_day: int | None
    days_to_renewal: int | None


def _people_going_quiet(look: _Look) -> list[Detected]:
    """Power users and regular users quiet past their thresholds (days)."""
    account, f, ongoing = look.account, look.f, look.ongoing
    sg, today = look.config.signals, look.f.today
    out: list[Detected] = []
    power = set(f.power)
    for uid, s in account.users.items():
        last = s.last_day
        if last is None:
            continue
        quiet = today - last
        if quiet >= sg.user_forget_days:
            continue
        name = s.name or uid
        detail = {"user_id": uid, "name": name, "days": quiet}
        # An open episode ends only when the person is really back (quiet for less than
        # half the threshold); an older event delivered late must not end it and start
        # it again a day or two later.
        ident = f"power_user_inactive:{uid}"
        threshold = sg.power_user_inactive_days
        if uid in power and (quiet >= threshold or (
                ident in ongoing and quiet * 2 >= threshold)):
            out.append(Detected("power_user_inactive", ident, uid, RISK, last + threshold,
                                detail, sustain_only=quiet < threshold))
        if (s.mask & ((1 << 30) - 1)).bit_count() >= sg.user_regular_active_days:
            for n in sg.user_inactive_days:
                kind = user_inactive_type(n)
                ident = f"{kind}:{uid}"
                if quiet >= n or (ident in ongoing and quiet * 2 >= n):
                    out.append(Detected(
                        kind, ident, uid, INFO if n == sg.user_inactive_days[0] else RISK,
                        last + n, detail, sustain_only=quiet < n,
                    ))
    return out


def _fall(look: _Look, kind: str, episode: SignalState | None, base: int, current: int,
          threshold_pct: float, pct_field: str, extra: dict[str, Any]) -> list[Detected]:
    """A fall from ``base`` to ``current`` of ``threshold_pct`` percent or more; an episode
    holds down to half of it and keeps the base it started from."""
    fall = (base - current) / base * 100.0
    if fall < threshold_pct / 2:
        return []
    return [Detected(kind, kind, None, RISK, look.f.today,
                     {"previous": base, "current": current, **extra,
                      pct_field: round(fall, 1)},
                     sustain_only=episode is not None or fall < threshold_pct)]


def _seat_utilisation_drop(look: _Look) -> list[Detected]:
    """Seat utilisation drop (active users, last 30 days vs the 30 before). While an episode
    lasts it is measured against the level it started from, so a decline that keeps going
    (and drags the earlier month down with it) is not mistaken for recovery."""
    f, sg = look.f, look.config.signals
    episode = look.ongoing.get("seat_utilisation_drop")
    base = episode.detail["previous"] if episode is not None else f.active_prev_30
    if base < sg.seat_drop_min_users or not base:
        return []
    return _fall(look, "seat_utilisation_drop", episode, base, f.active_30, sg.seat_drop_pct,
                 "drop_pct", {"seats": f.seats})


def _core_feature_decline(look: _Look) -> list[Detected]:
    """Core-feature decline, with the same episode rule; a new one needs enough events in
    the 28 days before and those days covered by history."""
    f, sg = look.f, look.config.signals
    episode = look.ongoing.get("core_feature_decline")
    if episode is not None:
        base: int | None = episode.detail["previous"]
    elif f.core_prev_28 >= sg.core_decline_min_events and f.covered(29, 56) >= 28:
        base = f.core_prev_28
    else:
        base = None
    if not base:
        return []
    return _fall(look, "core_feature_decline", episode, base, f.core_28, sg.core_decline_pct,
                 "decline_pct", {})


def _support(look: _Look) -> list[Detected]:
    """Ticket spikes and tickets open too long."""
    account, f, sg, today = look.account, look.f, look.config.signals, look.f.today
    out: list[Detected] = []
    if f.tickets_recent >= sg.ticket_spike_count:
        out.append(Detected(
            "ticket_spike", "ticket_spike", None, RISK, today,
            {"count": f.tickets_recent, "days": sg.ticket_spike_days},
        ))
    for tid, days_open in f.aged_tickets:
        opened = account.open_tickets[tid]
        out.append(Detected(
            "ticket_open_long", f"ticket_open_long:{tid}", None, RISK,
            opened + sg.ticket_open_days, {"ticket_id": tid, "days": days_open},
        ))
    return out


def _billing(look: _Look) -> list[Detected]:
    """Failed payments, plan downgrades and seat reductions."""
    account, sg, today = look.account, look.config.signals, look.f.today
    out: list[Detected] = []
    if account.payment_failed is not None:
        day, amount = account.payment_failed
        out.append(Detected(
            "payment_failed", f"payment_failed:{day}", None, RISK, day, {"amount": amount},
        ))
    if account.downgrade is not None and today - account.downgrade[0] < sg.downgrade_days:
        day, frm, to = account.downgrade
        out.append(Detected(
            "plan_downgraded", f"plan_downgraded:{day}", None, RISK, day,
            {"from": frm, "to": to},
        ))
    if account.seat_reduction is not None and today - account.seat_reduction[0] < sg.downgrade_days:
        sday, sfrom, sto = account.seat_reduction
        out.append(Detected(
            "seats_reduced", f"seats_reduced:{sday}", None, RISK, sday,
            {"from": sfrom, "to": sto},
        ))
    return out


def _relationship(look: _Look) -> list[Detected]:
    """Relationship: latest answer per person within the window."""
    account, sg, today = look.account, look.config.signals, look.f.today
    out: list[Detected] = []
    latest: dict[str | None, list[Any]] = {}
    for rec in account.nps:
        if today - rec[0] < sg.nps_days:
            latest[rec[2]] = rec
    for who, (nday, score, _) in sorted(latest.items(), key=lambda kv: str(kv[0])):
        if score < sg.nps_detractor_below:
            out.append(Detected(
                "nps_detractor", f"nps_detractor:{who or '-'}:{nday}", who, RISK, nday,
                {"score": score, "name": _user_name(account, who)},
            ))
    last_missed: list[Any] | None = None
    for rec in account.meetings:
        if rec[1] in ("meeting_missed", "qbr_skipped"):
            last_missed = rec
        elif last_missed is not None and rec[0] >= last_missed[0]:
            last_missed = None  # a held meeting since then repairs it
    if last_missed is not None and today - last_missed[0] < sg.meeting_missed_days:
        out.append(Detected(
            "meeting_missed", f"meeting_missed:{last_missed[0]}", None, RISK, last_missed[0],
            {"kind": last_missed[1]},
        ))
    return out


def _onboarding(look: _Look) -> list[Detected]:
    """Onboarding milestones (only while the account is young enough to be onboarding)."""
    account, config, created_day, today = look.account, look.config, look.created_day, look.f.today
    out: list[Detected] = []
    if created_day is not None and today - created_day < config.stages.mature_days:
        for ms in config.milestones:
            due = created_day + ms.due_days
            if ms.name not in account.milestones and today > due:
                out.append(Detected(
                    "onboarding_milestone_missed", f"onboarding_milestone_missed:{ms.name}",
                    None, RISK, due + 1,
                    {"milestone": ms.name, "due_days": ms.due_days, "late_days": today - due},
                ))
    return out


def _account_lost(look: _Look) -> list[Detected]:
    """Nobody active for ``signals.account_lost_days``."""
    f, sg, today = look.f, look.config.signals, look.f.today
    out: list[Detected] = []
    if f.inactive_days is not None and f.inactive_days >= sg.account_lost_days:
        last = today - f.inactive_days
        out.append(Detected(
            "account_inactive", f"account_inactive:{last}", None, RISK,
            last + sg.account_lost_days, {"days": f.inactive_days},
        ))
    return out


def _expansion(look: _Look) -> list[Detected]:
    """Seat saturation with advanced use, gated-feature clicks, upgrade interest."""
    account, f, config, today = look.account, look.f, look.config, look.f.today
    out: list[Detected] = []
    ex = config.expansion
    if f.seats_known and account.advanced_day is not None and (
        today - account.advanced_day < ex.advanced_days
    ):
        pct = 100.0 * f.active_30 / f.seats
        # ends only well below the threshold: one person more or less in a small
        # account must not start and end it every few days
        if pct >= ex.saturation_pct - 20:
            out.append(Detected(
                "seat_saturation", "seat_saturation", None, EXPANSION, today,
                {"active": f.active_30, "seats": f.seats, "pct": round(pct)},
                sustain_only=pct < ex.saturation_pct,
            ))
    gated = [g for g in account.gated if today - g[0] < ex.recent_days]
    if gated:
        feats = sorted({g[1] for g in gated if g[1]})
        out.append(Detected(
            "gated_feature_clicked", "gated_feature_clicked", None, EXPANSION, gated[0][0],
            {"count": len(gated), "features": feats},
        ))
    ups = [u for u in account.upgrade_days if today - u[0] < ex.recent_days]
    if ups:
        out.append(Detected(
            "upgrade_interest", "upgrade_interest", None, EXPANSION, ups[0][0],
            {"count": len(ups)},
        ))
    return out


def _renewal_checkpoints(look: _Look) -> list[Detected]:
    """Renewal checkpoints (info): the nearest checkpoint already passed."""
    account, config, days_to_renewal = look.account, look.config, look.days_to_renewal
    out: list[Detected] = []
    if days_to_renewal is not None and days_to_renewal > 0 and account.renewal_day is not None:
        passed = [c for c in config.renewal.checkpoints if days_to_renewal <= c]
        if passed:
            c = min(passed)
            out.append(Detected(
                "renewal_checkpoint", f"renewal_checkpoint:T-{c}:{account.renewal_day}", None,
                INFO, account.renewal_day - c,
                {"checkpoint": c, "days_to_renewal": days_to_renewal},
            ))
    return out


#: The families of signals, in the order their detections are listed.
DETECTORS = (
    _people_going_quiet,
    _seat_utilisation_drop,
    _core_feature_decline,
    _support,
    _billing,
    _relationship,
    _onboarding,
    _account_lost,
    _expansion,
    _renewal_checkpoints,
)


def detect(
    account: AccountState, f: Facts, config: ScoringConfig, created_day: int | None,
    days_to_renewal: int | None,
) -> list[Detected]:
    """All conditions that hold at ``f.today`` (hysteresis-only ones flagged)."""
    look = _Look(account, f, config, _active_by_ident(account.signals), created_day,
                 days_to_renewal)
    out: list[Detected] = []
    for family in DETECTORS:
        out.extend(family(look))
    return out


def merge(
    active: dict[str, SignalState], detected: list[Detected]
) -> tuple[dict[str, SignalState], list[SignalState], list[SignalState]]:
    """New active set, signals started, signals ended (each sorted by key)."""
    by_ident: dict[str, SignalState] = {}
    for sig in active.values():
        by_ident[sig.key.rsplit("@", 1)[0]] = sig
    new_active: dict[str, SignalState] = {}
    started: list[SignalState] = []
    for d in detected:
        text = explain.signal_text(d.type, d.detail)
        prev = by_ident.get(d.ident)
        if prev is not None:
            # a fresh record: changes already emitted keep the numbers they were sent with
            new_active[prev.key] = SignalState(
                prev.type, prev.key, prev.subject, prev.severity, prev.since, d.detail, text
            )
            continue
        if d.sustain_only:
            continue
        sig = SignalState(
            type=d.type, key=f"{d.ident}@{d.onset_day}", subject=d.subject,
            severity=d.severity, since=d.onset_day * DAY, detail=d.detail, text=text,
        )
        new_active[sig.key] = sig
        started.append(sig)
    ended = [s for k, s in active.items() if k not in new_active]
    started.sort(key=lambda s: s.key)
    ended.sort(key=lambda s: s.key)
    return dict(sorted(new_active.items())), started, ended

"""Health-change events shaped exactly like the wire contract (``telltale.health-change/1``),
for tests of everything that consumes the health-changes topic."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime
from typing import Any

from scoring.attention import (
    Attention,
    AttentionReason,
    Playbook,
    PlaybookStep,
    ReasonType,
    Severity,
)
from streams.health_change import HEALTH_CHANGES, HealthChangeRecord

DAY = 86_400.0


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def signal(type_: str, *, key: str | None = None, subject: str | None = None,
           severity: str = "risk", since: float = 1_780_000_000.0,
           text: str | None = None, **detail: float) -> dict[str, Any]:
    return {
        "type": type_,
        "key": key or (f"{type_}:{subject}" if subject else type_),
        "subject": subject,
        "severity": severity,
        "since": iso(since),
        "detail": dict(detail),
        "text": text or f"{type_.replace('_', ' ')} fired",
    }


def components(score: int) -> dict[str, dict[str, Any]]:
    """Four components whose integer points sum to ``score``."""
    adoption, engagement, support = round(score * 0.4), round(score * 0.3), round(score * 0.15)
    return {
        "adoption": {"value": 60.0, "points": adoption, "weight": 40,
                     "detail": {"active_users": 18, "seats": 30}},
        "engagement": {"value": 0.5, "points": engagement, "weight": 30,
                       "detail": {"week_over_week_pct": -20.0, "points_30d": 412.5}},
        "support": {"value": 0.8, "points": support, "weight": 15,
                    "detail": {"open_tickets": 1, "low_csat": None}},
        "relationship": {"value": 8.0, "points": score - adoption - engagement - support,
                         "weight": 15, "detail": {"nps": [9, 8]}},
    }


def users(account_id: str, n: int = 3, *, now: float = 1_780_000_000.0) -> list[dict[str, Any]]:
    names = ["Dana Fox", "Lee Park", "Sam Ortiz", "Kim Lowe", "Ari Cole", "Jo Banks"]
    out = []
    for i in range(n):
        name = names[i % len(names)]
        score = max(5, 80 - 17 * i)
        out.append({
            "user_id": f"{account_id}-u{i}",
            "name": name,
            "email": f"{name.split()[0].lower()}@{account_id}.example",
            "score": score,
            "band": "healthy" if score >= 70 else "watch" if score >= 40 else "at_risk",
            "power_user": i == 0,
            "last_seen": iso(now - DAY * (2 + 5 * i)) if i < n - 1 else None,
        })
    return out


def band_of(score: int) -> str:
    return "healthy" if score >= 70 else "watch" if score >= 40 else "at_risk"


def make_change(
    *,
    workspace: str = "demo",
    account_id: str = "acme",
    account_name: str | None = "Acme Corp",
    score: int = 57,
    previous_score: int | None = 72,
    change_7d: int | None = None,
    forecast: str | None = "best_case",
    previous_forecast: str | None = "commit",
    lifecycle: str = "mature",
    reasons: list[str] | None = None,
    started: list[dict[str, Any]] | None = None,
    ended: list[dict[str, Any]] | None = None,
    active: list[dict[str, Any]] | None = None,
    now: float = 1_780_000_000.0,
    owner: str | None = "Riley Chen",
    owner_slack_id: str | None = "U024BE7LH",
    segment: str = "mid_market",
    arr: float | None = 42_000.0,
    days_to_renewal: int | None = 75,
    external_ids: dict[str, str] | None = None,
    n_users: int = 3,
    explanation: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One health change; defaults describe Acme falling from 72 to 57."""
    started = [] if started is None else started
    ended = [] if ended is None else ended
    active = list(started) if active is None else active
    delta = 0 if previous_score is None else score - previous_score
    if reasons is None:
        reasons = []
        if previous_score is not None and band_of(previous_score) != band_of(score):
            reasons.append("band_changed")
        if abs(delta) >= 10:
            reasons.append("score_moved")
        if previous_forecast != forecast and previous_score is not None:
            reasons.append("forecast_changed")
        if started:
            reasons.append("signal_started")
        if ended:
            reasons.append("signal_ended")
        reasons = reasons or ["score_moved"]
    if explanation is None:
        verb = "fell" if delta < 0 else "rose"
        explanation = (
            f"Health {verb} {abs(delta)} points ({previous_score} → {score}) because "
            "Dana, your main power user, has been inactive for 22 days and seat usage "
            "fell 20% (25 → 20 of 30 seats)."
        )
    day = int(now // DAY)
    key = f"{workspace}|{account_id}|{','.join(sorted(reasons))}|{day}|{score}"
    renewal_date = None
    if days_to_renewal is not None:
        renewal_date = datetime.fromtimestamp(now + days_to_renewal * DAY, UTC).date().isoformat()
    change: dict[str, Any] = {
        "schema": "telltale.health-change/1",
        "id": hashlib.sha256(key.encode()).hexdigest()[:32],
        "workspace": workspace,
        "account_id": account_id,
        "account_name": account_name,
        "event_time": iso(now),
        "day": day,
        "reasons": reasons,
        "previous": None if previous_score is None else {
            "score": previous_score, "band": band_of(previous_score),
            "forecast": previous_forecast, "lifecycle": lifecycle,
        },
        "current": {
            "score": score, "band": band_of(score), "forecast": forecast,
            "lifecycle": lifecycle, "components": components(score),
        },
        "delta": delta,
        "change_7d": delta if change_7d is None else change_7d,
        "signals_started": started,
        "signals_ended": ended,
        "active_signals": active,
        "explanation": explanation,
        "drivers": [
            {"component": "adoption", "delta": -9,
             "text": "seat usage fell 20% (25 → 20 of 30 seats)"},
            {"component": "engagement", "delta": -6,
             "text": "Dana, your main power user, has been inactive for 22 days"},
        ],
        "owner": owner,
        "owner_email": None if owner is None else f"{owner.split()[0].lower()}@vendor.example",
        "owner_slack_id": owner_slack_id,
        "segment": segment,
        "arr": arr,
        "renewal_date": renewal_date,
        "days_to_renewal": days_to_renewal,
        "external_ids": {} if external_ids is None else dict(external_ids),
        "users": users(account_id, n_users, now=now),
        "config_version": "default-1",
    }
    change.update(copy.deepcopy(extra))
    return change


def reason(type_: str = "champion_quiet", *, severity: str = "high", key: str | None = None,
           since_day: int = 20_600, subject: str | None = None,
           **params: str | int | float | bool | None) -> AttentionReason:
    """One attention reason; the key defaults to the type and subject (one episode)."""
    return AttentionReason(
        type=ReasonType(type_), severity=Severity(severity),
        key=key or (f"{type_}:{subject}" if subject else type_),
        since_day=since_day, subject=subject, params=dict(params))


def attention(*reasons: AttentionReason, day: int = 20_600, priority: float | None = None,
              playbooks: tuple[str, ...] = ()) -> Attention:
    """An account's attention; the priority defaults to one that grows with severity."""
    if priority is None:
        priority = float(sum(10 * (r.severity.rank + 1) for r in reasons))
    ordered = tuple(sorted(reasons, key=lambda r: -r.severity.rank))
    return Attention(day=day, priority=priority, reasons=ordered, playbooks=playbooks)


def with_attention(change: dict[str, Any], value: Attention | None) -> dict[str, Any]:
    """The change carrying ``value`` in its ``attention`` field (as the wire has it)."""
    out = copy.deepcopy(change)
    out["attention"] = None if value is None else value.to_dict()
    return out


#: Playbooks for tests, as a scoring config would declare them.
SAVE_PLAYBOOK = Playbook(
    name="champion_save", title="Save the champion", reasons=frozenset(
        {ReasonType.CHAMPION_QUIET}),
    steps=(PlaybookStep("Call the champion", due_days=2),
           PlaybookStep("Book an executive check-in", owner_role="manager", due_days=7)),
    success="The champion is active again")
TEST_PLAYBOOKS = (SAVE_PLAYBOOK,)


def english(reason: AttentionReason, today: int) -> str:
    """A minimal English rendering for tests (the product's is ``scoring.attention.render``):
    the type in words, who, and how many days since it began on ``today``."""
    who = f" {reason.subject}" if reason.subject else ""
    return (f"{reason.type.value.replace('_', ' ').capitalize()}{who} for "
            f"{today - reason.since_day} days")


def record(change: dict[str, Any]) -> HealthChangeRecord:
    """The typed record of a wire change, decoded (and so validated) as a consumer does."""
    return HEALTH_CHANGES.decode(change)


def make_record(**fields: Any) -> HealthChangeRecord:
    """:func:`make_change` as the typed record consumers read."""
    return record(make_change(**fields))

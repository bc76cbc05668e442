"""Attention: whether an account needs a person today, and why.

Every evaluation of an account decides its :class:`Attention`: the ordered, structured
reasons it needs someone today (risk reasons count whatever the band: a green account
whose champion has gone quiet is exactly the one to list), a priority, and the expansion
leads kept apart from risk. Reasons are data; sentences are rendered from them at the
edge (:func:`render`), so the page, Slack, CRM fields and reports say the same thing.

Figures that move with the calendar are kept as dates (``since_day``, the renewal date),
never as "N days": whoever reads a reason on a later day computes the days for that day.

This module is pure: no Kafka, Faust, Redis, HTTP or wall-clock imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

ATTENTION_SCHEMA = "telltale.attention/1"

ParamValue = str | int | float | bool | None


class ReasonType(StrEnum):
    """Why an account is on someone's list. Values are stable wire names."""

    CHAMPION_QUIET = "champion_quiet"  # a power user not seen for N days
    SEATS_FELL = "seats_fell"  # active seats fell N% in 30 days
    CORE_USAGE_FELL = "core_usage_fell"  # core ("sticky") feature use fell N%
    HEALTH_FELL = "health_fell"  # score fell N points within the week
    HEALTH_AT_RISK = "health_at_risk"  # score in the at-risk band
    RENEWAL_AT_RISK = "renewal_at_risk"  # renewal near while health is weak or falling
    PAYMENT_FAILED = "payment_failed"
    PLAN_DOWNGRADED = "plan_downgraded"
    SEATS_REDUCED = "seats_reduced"
    SUPPORT_SPIKE = "support_spike"  # several tickets within a few days
    TICKET_OPEN_LONG = "ticket_open_long"
    NPS_DETRACTOR = "nps_detractor"
    MEETING_MISSED = "meeting_missed"
    ONBOARDING_MISSED = "onboarding_missed"
    ACCOUNT_INACTIVE = "account_inactive"  # nobody active for N days
    PLAYBOOK_STEP_OVERDUE = "playbook_step_overdue"  # decided on the worklist, not here
    # Expansion leads: a separate list, never mixed into risk.
    SEAT_SATURATION = "seat_saturation"
    GATED_FEATURE = "gated_feature"
    UPGRADE_INTEREST = "upgrade_interest"


EXPANSION_REASONS = frozenset(
    {ReasonType.SEAT_SATURATION, ReasonType.GATED_FEATURE, ReasonType.UPGRADE_INTEREST}
)


class Severity(StrEnum):
    """How badly a reason hurts the account. ``rank`` orders them (higher is worse)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


@dataclass(frozen=True, slots=True)
class AttentionReason:
    """One structured reason.

    ``key`` identifies the episode (the same champion going quiet keeps the same key for
    as long as she stays quiet), so "a new or worse reason" can be told from the same one.
    ``since_day`` is the epoch day the condition began (for a quiet person: the day after
    they were last seen). ``subject`` is the person or ticket named, if any. ``params``
    holds the numbers and names a sentence needs (flat, JSON scalars only).
    """

    type: ReasonType
    severity: Severity
    key: str
    since_day: int
    subject: str | None = None
    params: Mapping[str, ParamValue] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type.value,
            "severity": self.severity.value,
            "key": self.key,
            "since_day": self.since_day,
            "subject": self.subject,
            "params": dict(self.params),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> AttentionReason:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on anything malformed."""
        params = raw.get("params") or {}
        if not isinstance(params, Mapping) or not all(
            isinstance(k, str) and (v is None or isinstance(v, str | int | float | bool))
            for k, v in params.items()
        ):
            raise ValueError("attention reason params must map names to JSON scalars")
        since = raw.get("since_day")
        if not isinstance(since, int) or isinstance(since, bool):
            raise ValueError("attention reason since_day must be an integer")
        key, subject = raw.get("key"), raw.get("subject")
        if not isinstance(key, str) or not (subject is None or isinstance(subject, str)):
            raise ValueError("attention reason key and subject must be strings")
        return cls(
            type=ReasonType(str(raw.get("type"))),
            severity=Severity(str(raw.get("severity"))),
            key=key,
            since_day=since,
            subject=subject,
            params=dict(params),
        )


@dataclass(frozen=True, slots=True)
class Attention:
    """An account's standing on ``day`` (epoch day).

    ``reasons`` are the risk reasons, worst first; an empty tuple means the account does
    not need anyone today. ``priority`` (0 when there is no reason) weighs severity, ARR
    at stake and days to renewal. ``playbooks`` names the configured playbooks whose
    trigger holds today, in configuration order.
    """

    day: int
    priority: float
    reasons: tuple[AttentionReason, ...] = ()
    expansion: tuple[AttentionReason, ...] = ()
    playbooks: tuple[str, ...] = ()

    @property
    def needed(self) -> bool:
        return bool(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": ATTENTION_SCHEMA,
            "day": self.day,
            "priority": self.priority,
            "reasons": [r.to_dict() for r in self.reasons],
            "expansion": [r.to_dict() for r in self.expansion],
            "playbooks": list(self.playbooks),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Attention:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on anything malformed."""
        day, priority = raw.get("day"), raw.get("priority")
        if not isinstance(day, int) or isinstance(day, bool):
            raise ValueError("attention day must be an integer")
        if not isinstance(priority, int | float) or isinstance(priority, bool):
            raise ValueError("attention priority must be a number")
        playbooks = raw.get("playbooks") or []
        if not isinstance(playbooks, list) or not all(isinstance(p, str) for p in playbooks):
            raise ValueError("attention playbooks must be a list of names")
        return cls(
            day=day,
            priority=float(priority),
            reasons=tuple(AttentionReason.from_dict(r) for r in raw.get("reasons") or []),
            expansion=tuple(AttentionReason.from_dict(r) for r in raw.get("expansion") or []),
            playbooks=tuple(playbooks),
        )


NO_ATTENTION_PRIORITY = 0.0


@dataclass(frozen=True, slots=True)
class PlaybookStep:
    """One thing to do: ``title`` (a short imperative), who does it (``owner_role``:
    "csm", "manager", "support", "finance", ...) and when (``due_days`` after the
    playbook triggered)."""

    title: str
    owner_role: str = "csm"
    due_days: int = 3


@dataclass(frozen=True, slots=True)
class Playbook:
    """Configured response to a situation.

    It triggers on a day when any of ``reasons`` holds for the account and every other
    given condition holds too (segment in ``segments`` if given, ARR at least ``min_arr``
    if given, days to renewal at most ``renewal_within_days`` if given). Its steps are
    done in order; ``success`` says in words what outcome counts as success.
    """

    name: str
    title: str
    reasons: frozenset[ReasonType]
    steps: tuple[PlaybookStep, ...]
    success: str = ""
    segments: frozenset[str] = frozenset()
    min_arr: float | None = None
    renewal_within_days: int | None = None


def render(reason: AttentionReason, today: int) -> str:
    """The reason as an English sentence on epoch day ``today``."""
    raise NotImplementedError  # filled in with the attention rules

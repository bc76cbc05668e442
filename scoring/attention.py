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

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from scoring import explain
from scoring.changes import iso_date
from scoring.i18n import DEFAULT_LANGUAGE, Lang, as_translator
from scoring.labels import Band, SignalSeverity
from scoring.labels import ReasonType as ReasonType  # re-exported: long imported from here
from scoring.signals import SIGNAL_REASONS, signal_kinds
from state.aggregates import SignalState, epoch_day

if TYPE_CHECKING:  # the configuration imports this module for the types below
    from scoring.config import AttentionRules

ATTENTION_SCHEMA = "telltale.attention/1"

ParamValue = str | int | float | bool | None


#: Reasons that are expansion leads (a separate list, never mixed into risk): those the
#: registry's expansion signals raise. Which signal raises which reason is declared once,
#: on its unit (:data:`scoring.signals.SIGNAL_REASONS`).
EXPANSION_REASONS = frozenset(
    kind.reason for _, kind in signal_kinds()
    if kind.reason is not None and kind.severity == SignalSeverity.EXPANSION
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
    # and more than this many days to renewal (a checkpoint holds until the next one)
    renewal_beyond_days: int | None = None

    def triggers(self, present: frozenset[ReasonType], segment: str, arr: float | None,
                 days_to_renewal: int | None) -> bool:
        """Whether the trigger holds for an account with reasons (risk and expansion)
        ``present``; a playbook without reasons triggers on its other conditions."""
        if self.reasons and not self.reasons & present:
            return False
        if self.segments and segment not in self.segments:
            return False
        if self.min_arr is not None and (arr or 0.0) < self.min_arr:
            return False
        within = self.renewal_within_days
        if within is None:
            return True
        if days_to_renewal is None or not 0 <= days_to_renewal <= within:
            return False
        return self.renewal_beyond_days is None or days_to_renewal > self.renewal_beyond_days


# --------------------------------------------------------------------------- deciding


@dataclass(frozen=True, slots=True)
class HealthFacts:
    """What the score side says about the account on ``today`` (epoch day).

    ``score_before``: the score ``rules.health_fell_days`` ago (None without history);
    ``change_30d``: points moved in 30 days; ``renewal_window``: the segment's renewal
    window (days); ``cancelled``: the subscription was cancelled (the account is lost,
    not at risk: nobody is asked to save it).
    """

    today: int
    score: int
    band: str
    score_before: int | None
    change_30d: int
    forecast: str | None
    segment: str
    arr: float | None
    renewal_day: int | None
    renewal_window: int
    cancelled: bool = False


_ORDER = {t: i for i, t in enumerate(ReasonType)}
_LEVELS = tuple(Severity)
_SIGNAL_DETAIL = {  # detail numbers and names a sentence needs, per reason type
    ReasonType.SEATS_FELL: ("previous", "current", "seats", "drop_pct"),
    ReasonType.CORE_USAGE_FELL: ("previous", "current", "decline_pct"),
    ReasonType.PLAN_DOWNGRADED: ("from", "to"),
    ReasonType.SEATS_REDUCED: ("from", "to"),
    ReasonType.SUPPORT_SPIKE: ("count", "days"),
    ReasonType.NPS_DETRACTOR: ("score", "name"),
    ReasonType.MEETING_MISSED: ("kind",),
    ReasonType.ONBOARDING_MISSED: ("milestone", "due_days"),
    ReasonType.SEAT_SATURATION: ("active", "seats", "pct"),
    ReasonType.UPGRADE_INTEREST: ("count",),
}


def _scalar(v: Any) -> ParamValue:
    return v if v is None or isinstance(v, str | int | float | bool) else str(v)


def _worse(level: Severity) -> Severity:
    return _LEVELS[min(level.rank + 1, len(_LEVELS) - 1)]


def _from_signal(s: SignalState, kind: ReasonType, today: int,
                 rules: AttentionRules) -> AttentionReason:
    d = s.detail
    severity = rules.severity_of(kind)
    since = epoch_day(s.since)
    subject: str | None = None
    params: dict[str, ParamValue] = {
        k: _scalar(d.get(k)) for k in _SIGNAL_DETAIL.get(kind, ())
    }
    if kind is ReasonType.CHAMPION_QUIET:
        quiet = int(d["days"])
        since = today - quiet + 1  # the day after she was last seen
        subject = s.subject
        params = {"name": _scalar(d.get("name")), "user_id": s.subject,
                  "last_seen": iso_date(today - quiet)}
        if quiet >= rules.champion_severe_days:
            severity = _worse(severity)
    elif kind is ReasonType.ACCOUNT_INACTIVE:
        since = today - int(d["days"]) + 1
    elif kind is ReasonType.TICKET_OPEN_LONG:
        since = today - int(d["days"])  # the day it was opened
        subject = str(d["ticket_id"])
        params = {"ticket_id": subject}
    elif kind is ReasonType.PAYMENT_FAILED:
        amount = d.get("amount")
        params = {"amount": amount if isinstance(amount, int | float) else None}
    elif kind is ReasonType.NPS_DETRACTOR:
        subject = s.subject
    elif kind is ReasonType.GATED_FEATURE:
        params = {"count": _scalar(d.get("count")),
                  "features": ", ".join(str(f) for f in d.get("features") or [])}
    return AttentionReason(kind, severity, s.key, since, subject, params)


def _held(ident: str, reported: Mapping[str, int], today: int) -> tuple[str, int]:
    """Key and onset of a score-derived reason: it continues from the last report."""
    since = reported.get(ident, today)
    return f"{ident}@{since}", since


def reported_onsets(keys: Iterable[str]) -> dict[str, int]:
    """Onset day of each reported reason by identity (``<ident>@<day>`` keys)."""
    out: dict[str, int] = {}
    for key in keys:
        ident, _, day = key.rpartition("@")
        if ident and day.lstrip("-").isdigit():
            out[ident] = int(day)
    return out


def decide(
    facts: HealthFacts,
    signals: Iterable[SignalState],
    rules: AttentionRules,
    playbooks: Iterable[Playbook] = (),
    reported: Mapping[str, int] | None = None,
) -> Attention:
    """The account's :class:`Attention` on ``facts.today`` from its active signals and
    score facts. ``reported``: onset day by identity of the reasons last reported
    (:func:`reported_onsets`), so a continuing score-derived reason keeps its key."""
    today = facts.today
    if facts.cancelled:
        return Attention(today, NO_ATTENTION_PRIORITY)
    held = reported or {}
    risks: list[AttentionReason] = []
    leads: list[AttentionReason] = []
    for s in signals:
        kind = SIGNAL_REASONS.get(s.type)
        if kind is None:
            continue
        reason = _from_signal(s, kind, today, rules)
        (leads if kind in EXPANSION_REASONS else risks).append(reason)

    fell = None if facts.score_before is None else facts.score_before - facts.score
    falling = fell is not None and fell >= rules.health_fell_points
    if falling and fell is not None and facts.score_before is not None:
        key, since = _held("health_fell", held, today)
        severity = rules.severity_of(ReasonType.HEALTH_FELL)
        if fell >= rules.health_fell_severe_points:
            severity = _worse(severity)
        risks.append(AttentionReason(ReasonType.HEALTH_FELL, severity, key, since, None, {
            "points": fell, "from": facts.score_before, "to": facts.score,
            "days": rules.health_fell_days,
        }))
    if facts.band == Band.AT_RISK:
        key, since = _held("health_at_risk", held, today)
        risks.append(AttentionReason(
            ReasonType.HEALTH_AT_RISK, rules.severity_of(ReasonType.HEALTH_AT_RISK), key,
            since, None, {"score": facts.score}))
    dtr = None if facts.renewal_day is None else facts.renewal_day - today
    if facts.renewal_day is not None and dtr is not None and 0 <= dtr <= facts.renewal_window:
        ident = f"renewal_at_risk:{facts.renewal_day}"
        weak = facts.band in rules.renewal_weak_bands
        # once reported, a slide must halve before the renewal counts as safe again, so
        # a score wobbling around the threshold does not list and unlist it every week
        slide = rules.renewal_falling_points
        slid = facts.change_30d <= -(slide + 1) // 2 if ident in held else (
            facts.change_30d <= -slide)
        forecast = facts.forecast in rules.renewal_forecasts
        if weak or falling or slid or forecast:
            key, since = _held(ident, held, today)
            risks.append(AttentionReason(
                ReasonType.RENEWAL_AT_RISK, rules.severity_of(ReasonType.RENEWAL_AT_RISK), key,
                since, None, {
                    "renewal_date": iso_date(facts.renewal_day),
                    "renewal_day": facts.renewal_day,
                    "score": facts.score, "band": str(facts.band),
                    "forecast": None if facts.forecast is None else str(facts.forecast),
                    "fell_points": fell if falling else None,
                    "fell_days": rules.health_fell_days if falling else None,
                    "fell_30d": -facts.change_30d if slid else None,
                }))
    risks.sort(key=_rank)
    leads.sort(key=_rank)
    present = frozenset(r.type for r in risks) | frozenset(r.type for r in leads)
    names = tuple(
        pb.name for pb in playbooks if pb.triggers(present, facts.segment, facts.arr, dtr)
    )
    return Attention(today, priority(risks, facts.arr, dtr, rules, facts.score),
                     tuple(risks), tuple(leads), names)


def _rank(r: AttentionReason) -> tuple[int, int, str]:
    return (-r.severity.rank, _ORDER[r.type], r.key)


def priority(reasons: Iterable[AttentionReason], arr: float | None,
             days_to_renewal: int | None, rules: AttentionRules, score: int = 100) -> float:
    """S x A x R x H (see :class:`scoring.config.AttentionRules`); 0 without a reason.

    S: the worst reason's severity points plus ``others_share`` of the others' (several
    small worries do not outrank one grave one); A: ARR at stake, up to ``arr_cap``; R:
    how close the renewal is, within ``renewal_days``; H: how weak health already is
    (the same worry weighs more on a weaker account)."""
    points = sorted((rules.severity_points.get(r.severity, 0.0) for r in reasons),
                    reverse=True)
    if not points:
        return NO_ATTENTION_PRIORITY
    s = points[0] + rules.others_share * sum(points[1:])
    a = 1.0 + rules.arr_weight * min(max(arr or 0.0, 0.0), rules.arr_cap) / rules.arr_cap
    r = 1.0
    if days_to_renewal is not None and 0 <= days_to_renewal <= rules.renewal_days:
        r += rules.renewal_weight * (1.0 - days_to_renewal / rules.renewal_days)
    h = 1.0 + rules.health_weight * (100 - max(0, min(100, score))) / 100.0
    return round(s * a * r * h, 3)


def render(reason: AttentionReason, today: int, language: Lang = DEFAULT_LANGUAGE) -> str:
    """The reason as a sentence on epoch day ``today``, in ``language`` (default English)."""
    return explain.attention_text(reason.type.value, reason.params, reason.since_day, today,
                                  language)


Render = Callable[[AttentionReason, int], str]
"""A reason in words on an epoch day (:func:`render`, or :func:`renderer` of a language)."""


@lru_cache(maxsize=64)
def renderer(language: Lang = DEFAULT_LANGUAGE) -> Render:
    """:func:`render` in ``language``."""
    if language == DEFAULT_LANGUAGE:
        return render

    def in_language(reason: AttentionReason, today: int) -> str:
        return render(reason, today, language)

    return in_language


def reason_text(reason: AttentionReason, today: int, render: Render = render,
                language: Lang = DEFAULT_LANGUAGE) -> str:
    """The reason in words on epoch day ``today``. An overdue step is a worklist reason,
    said here; a type the renderer cannot say yet is named with its figures rather than
    left out."""
    t = as_translator(language)
    if reason.type is ReasonType.PLAYBOOK_STEP_OVERDUE:
        return t.gettext("%(step)s (%(playbook)s) was due on %(date)s",
                         step=str(reason.params.get("step")),
                         playbook=str(reason.params.get("playbook")),
                         date=t.day(int(reason.params.get("due_day") or reason.since_day - 1)))
    try:
        return render(reason, today)
    except (NotImplementedError, KeyError, ValueError):
        figures = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in reason.params.items())
        who = f" ({reason.subject})" if reason.subject else ""
        since = t.gettext("since %(date)s", date=t.day(reason.since_day))
        return (f"{reason.type.value.replace('_', ' ').capitalize()}{who}: "
                f"{figures + ', ' if figures else ''}{since}")

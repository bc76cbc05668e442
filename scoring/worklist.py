"""The worklist: which accounts each person should look at today, and why.

The core decides an account's :class:`~scoring.attention.Attention`; people then act on
it (acknowledge, snooze, assign, mark a playbook step done). This module folds both into
what a list shows on epoch day ``today``:

- an account is listed when its attention has reasons, unless it is snoozed until a later
  day, or it was acknowledged and no reason has appeared or worsened since;
- its owner is the assignee when someone assigned it, else the account owner;
- each triggered playbook has one open step (the first not done since the playbook began
  triggering), due ``due_days`` after that day; a step past due adds a
  ``playbook_step_overdue`` reason and raises the priority;
- "new since yesterday" are the reasons that began, or got worse, yesterday or today.

Everything here is pure: state and ``today`` in, a listing out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from scoring.attention import (
    EXPANSION_REASONS,
    Attention,
    AttentionReason,
    Playbook,
    PlaybookStep,
    Severity,
)
from scoring.labels import ReasonType

DEFAULT_PER_OWNER = 5
"""Accounts shown per owner unless configured otherwise."""

STEP_OVERDUE_PRIORITY = 25.0
"""Priority added for each overdue playbook step (the core's priorities are of the order
of tens to hundreds; one overdue step lifts an account above its peers of equal risk)."""

STEP_OVERDUE_SEVERITY = Severity.HIGH


# ---------------------------------------------------------------------- attention over time


@dataclass(frozen=True, slots=True)
class AttentionTrack:
    """An account's latest attention and what only its history tells.

    ``playbook_since`` maps each triggered playbook to the epoch day it began triggering
    (steps fall due from it). ``worsened_on`` maps a reason key to the last epoch day its
    severity rose.
    """

    attention: Attention | None = None
    playbook_since: Mapping[str, int] = field(default_factory=dict)
    worsened_on: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "attention": None if self.attention is None else self.attention.to_dict(),
            "playbook_since": dict(self.playbook_since),
            "worsened_on": dict(self.worsened_on),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> AttentionTrack:
        """Inverse of :meth:`to_dict`; None or {} is an account never needing anyone."""
        if not raw:
            return cls()
        attention = raw.get("attention")
        return cls(
            attention=None if attention is None else Attention.from_dict(attention),
            playbook_since=_day_map(raw.get("playbook_since")),
            worsened_on=_day_map(raw.get("worsened_on")),
        )


def _day_map(raw: Any) -> dict[str, int]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
            for k, v in raw.items()):
        raise ValueError("expected a mapping of names to epoch days")
    return dict(raw)


def track(previous: AttentionTrack, attention: Attention | None) -> AttentionTrack:
    """The track after the account's next attention (None: the change carried none)."""
    if attention is None:
        return AttentionTrack()
    day = attention.day
    since = {name: previous.playbook_since.get(name, day) for name in attention.playbooks}
    before = {} if previous.attention is None else {
        r.key: r.severity.rank for r in previous.attention.reasons}
    current = {r.key for r in attention.reasons}
    worsened = {k: d for k, d in previous.worsened_on.items() if k in current}
    for reason in attention.reasons:
        if reason.key in before and reason.severity.rank > before[reason.key]:
            worsened[reason.key] = day
    return AttentionTrack(attention, since, worsened)


# ---------------------------------------------------------------------- what people did


@dataclass(frozen=True, slots=True)
class Handling:
    """What people did about an account, folded from its actions in time order.

    ``acknowledged`` maps the reason keys shown when someone last acknowledged the account
    to their severities then (None: never acknowledged). ``snoozed_until`` is the epoch
    day the account comes back. ``steps_done`` maps a playbook name to the epoch day each
    step (by index) was marked done.
    """

    acknowledged: Mapping[str, Severity] | None = None
    snoozed_until: int | None = None
    assignee: str | None = None
    steps_done: Mapping[str, Mapping[int, int]] = field(default_factory=dict)


def acknowledge(handling: Handling, reasons: Mapping[str, Severity]) -> Handling:
    """Acknowledged the reasons shown (key → severity): off the list until a new or worse
    one appears."""
    return replace(handling, acknowledged=dict(reasons))


def snooze(handling: Handling, until_day: int) -> Handling:
    """Off the list before epoch day ``until_day``, back on it that day."""
    return replace(handling, snoozed_until=until_day)


def assign(handling: Handling, assignee: str | None) -> Handling:
    """Listed for ``assignee`` from now on (None: back to the account owner)."""
    return replace(handling, assignee=assignee or None)


def mark_step_done(handling: Handling, playbook: str, step: int, day: int) -> Handling:
    """Step ``step`` (0-based) of ``playbook`` done on epoch day ``day``."""
    done = {name: dict(steps) for name, steps in handling.steps_done.items()}
    done.setdefault(playbook, {})[step] = day
    return replace(handling, steps_done=done)


# ---------------------------------------------------------------------- the listing


@dataclass(frozen=True, slots=True)
class OpenStep:
    """The next step of a triggered playbook: ``index`` (0-based) and its due epoch day."""

    playbook: Playbook
    index: int
    due_day: int

    @property
    def step(self) -> PlaybookStep:
        return self.playbook.steps[self.index]

    def overdue(self, today: int) -> bool:
        return today > self.due_day


@dataclass(frozen=True, slots=True)
class WorklistEntry:
    """One account on a list on epoch day ``today``.

    ``reasons`` are worst first, an overdue step's reason included; ``new`` holds the
    keys of the reasons that began or got worse yesterday or today.
    """

    account_id: str
    owner: str | None
    priority: float
    reasons: tuple[AttentionReason, ...]
    new: frozenset[str]
    open_steps: tuple[OpenStep, ...]
    today: int


def open_steps(track_: AttentionTrack, handling: Handling,
               playbooks: Sequence[Playbook]) -> tuple[OpenStep, ...]:
    """The open step of each playbook triggered in the latest attention (config order);
    a playbook whose steps are all done has none."""
    if track_.attention is None:
        return ()
    triggered = set(track_.attention.playbooks)
    out = []
    for playbook in playbooks:
        if playbook.name not in triggered:
            continue
        began = track_.playbook_since.get(playbook.name, track_.attention.day)
        done = handling.steps_done.get(playbook.name, {})
        for index, step in enumerate(playbook.steps):
            # A step done before this trigger belongs to an earlier episode.
            if done.get(index, began - 1) < began:
                out.append(OpenStep(playbook, index, began + step.due_days))
                break
    return tuple(out)


def step_overdue_reason(step: OpenStep) -> AttentionReason:
    return AttentionReason(
        type=ReasonType.PLAYBOOK_STEP_OVERDUE,
        severity=STEP_OVERDUE_SEVERITY,
        key=f"{ReasonType.PLAYBOOK_STEP_OVERDUE.value}:{step.playbook.name}:{step.index}",
        since_day=step.due_day + 1,
        params={"playbook": step.playbook.title, "step": step.step.title,
                "due_day": step.due_day},
    )


def entry(account_id: str, owner: str | None, track_: AttentionTrack, handling: Handling,
          playbooks: Sequence[Playbook], today: int) -> WorklistEntry | None:
    """The account as listed on epoch day ``today``, or None when it is not listed."""
    attention = track_.attention
    if attention is None or not attention.needed:
        return None
    if handling.snoozed_until is not None and today < handling.snoozed_until:
        return None
    steps = open_steps(track_, handling, playbooks)
    # An overdue step of a risk playbook is a reason of its own, after the reasons that
    # put the account on the list (they explain it; the step is what is late about it).
    # An expansion lead's step stays an open step: it never lists an account as at risk.
    overdue = [step_overdue_reason(s) for s in steps
               if s.overdue(today) and not s.playbook.reasons <= EXPANSION_REASONS]
    reasons = (*attention.reasons, *overdue)
    if handling.acknowledged is not None and not any(
            r.key not in handling.acknowledged
            or r.severity.rank > handling.acknowledged[r.key].rank for r in reasons):
        return None
    new = frozenset(
        r.key for r in reasons
        if r.since_day >= today - 1 or track_.worsened_on.get(r.key, today - 2) >= today - 1)
    return WorklistEntry(
        account_id=account_id,
        owner=handling.assignee or owner,
        priority=attention.priority + STEP_OVERDUE_PRIORITY * len(overdue),
        reasons=reasons,
        new=new,
        open_steps=steps,
        today=today,
    )


def ranked(entries: Iterable[WorklistEntry]) -> list[WorklistEntry]:
    """Most urgent first; equal priorities by account id so the order is stable."""
    return sorted(entries, key=lambda e: (-e.priority, e.account_id))


def per_owner(entries: Iterable[WorklistEntry],
              limit: int = DEFAULT_PER_OWNER) -> dict[str | None, list[WorklistEntry]]:
    """Each owner's top ``limit`` accounts, most urgent first (None: unowned)."""
    lists: dict[str | None, list[WorklistEntry]] = {}
    for item in ranked(entries):
        mine = lists.setdefault(item.owner, [])
        if len(mine) < limit:
            mine.append(item)
    return lists

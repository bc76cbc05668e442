"""Does the worklist put the accounts that will churn in front of their owner in time?

A history is replayed through the scoring core on the daily grid (the live cadence).
Every day, each owner gets three lists of the same size (``attention.worklist_size``,
five by default), drawn from the same accounts (assessed, not cancelled, not yet gone):

- ``worklist``: accounts that need attention, by attention priority;
- ``score``: lowest score first (what a health score alone would show);
- ``activity``: fewest product events in the last 30 days (an honest baseline any
  history supports).

Recall is the share of churned accounts that were on their owner's list at least once
between ``early`` and ``late`` days before churning (90 to 30 by default: late enough to
be a warning, early enough to act on); precision is the share of list appearances that
were accounts churning within ``precision_days`` (90). The worklist lists only accounts
that need attention, so on a quiet day it can be shorter than the others: the mean list
length is reported beside each ranking.

Alerts: every health change is what people were told before ``alert`` existed; after,
only changes whose ``alert`` is true. Both are counted per account per month, with the
share of alerts whose account needs attention at that change.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from scoring.config import ScoringConfig
from scoring.engine import AccountAssessment
from scoring.replay import Replay
from state.aggregates import DAY
from streams.events import Event, EventType

RANKINGS = ("worklist", "score", "activity")
ACTIVITY_WINDOW_DAYS = 30
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


class _Outcome(Protocol):
    @property
    def account_id(self) -> str: ...
    @property
    def date(self) -> date: ...
    @property
    def outcome(self) -> str: ...


def churn_days(outcomes: Iterable[_Outcome]) -> dict[str, int]:
    """Account id → epoch day it churned, for the outcomes that are churns."""
    return {o.account_id: o.date.toordinal() - _EPOCH_ORDINAL
            for o in outcomes if o.outcome == "churned"}


@dataclass(slots=True)
class RankingFigures:
    """One ranking's recall and precision over the replay."""

    name: str
    churned: int = 0  # churned accounts whose whole warning window was replayed
    caught: int = 0  # of those, listed at least once inside the window
    appearances: int = 0  # (owner list, account, day) entries
    churn_appearances: int = 0  # entries of accounts churning within precision_days
    owner_days: int = 0  # lists drawn (one per owner per day)

    @property
    def recall(self) -> float | None:
        return self.caught / self.churned if self.churned else None

    @property
    def precision(self) -> float | None:
        return self.churn_appearances / self.appearances if self.appearances else None

    @property
    def mean_list(self) -> float:
        return self.appearances / self.owner_days if self.owner_days else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "recall": self.recall, "precision": self.precision,
                "churned": self.churned, "caught": self.caught,
                "appearances": self.appearances, "mean_list": self.mean_list}


@dataclass(slots=True)
class WorklistReport:
    list_size: int
    days: int = 0
    accounts: int = 0
    rankings: dict[str, RankingFigures] = field(
        default_factory=lambda: {n: RankingFigures(n) for n in RANKINGS})
    changes: int = 0
    alerts: int = 0
    alerts_with_attention: int = 0
    account_days: int = 0

    @property
    def account_months(self) -> float:
        return self.account_days / 30.0

    @property
    def changes_per_account_month(self) -> float:
        return self.changes / self.account_months if self.account_days else 0.0

    @property
    def alerts_per_account_month(self) -> float:
        return self.alerts / self.account_months if self.account_days else 0.0

    @property
    def attention_share(self) -> float | None:
        """Share of alerts whose account needs attention at that change."""
        return self.alerts_with_attention / self.alerts if self.alerts else None

    def lines(self) -> list[str]:
        """The figures as printable lines."""
        def pct(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.1%}"

        out = [f"{self.accounts} accounts, {self.days} days, top {self.list_size} per owner "
               "per day"]
        for r in self.rankings.values():
            out.append(f"  {r.name:<9} recall {pct(r.recall):>6} ({r.caught}/{r.churned} "
                       f"churned, 90-30 days before)  precision {pct(r.precision):>6} "
                       f"({r.churn_appearances}/{r.appearances})  mean list "
                       f"{r.mean_list:.2f}")
        out.append(f"  alerts per account per month: {self.changes_per_account_month:.2f} "
                   f"before (every change), {self.alerts_per_account_month:.2f} after "
                   f"(alert true); {pct(self.attention_share)} of alerts carry an "
                   "attention reason")
        return out


class _Activity:
    """Product events per account over the last 30 days, kept as a rolling sum."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names
        self.recent: dict[str, int] = defaultdict(int)
        self.by_day: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, e: Event) -> None:
        if e.account_id is None:
            return
        if e.type is EventType.PAGE or (e.type is EventType.TRACK and e.name in self.names):
            self.recent[e.account_id] += 1
            self.by_day[int(e.timestamp // DAY)][e.account_id] += 1

    def expire(self, today: int) -> None:
        """Keep the 30 complete days before ``today``."""
        for day in [d for d in self.by_day if d < today - ACTIVITY_WINDOW_DAYS]:
            for account, n in self.by_day.pop(day).items():
                self.recent[account] -= n


def _top(items: list[tuple[Any, str]], k: int) -> list[str]:
    return [account for _, account in heapq.nsmallest(k, items)]


def evaluate_worklists(
    events: Iterable[Event],
    churned: Mapping[str, int],
    config: ScoringConfig,
    list_size: int | None = None,
    early: int = 90,
    late: int = 30,
    precision_days: int = 90,
    progress: Callable[[int], None] | None = None,
) -> WorklistReport:
    """Replay ``events`` (in time order) and score the three rankings each day (see the
    module docstring). ``churned``: account id → epoch day it churned."""
    k = list_size if list_size is not None else config.attention.worklist_size
    report = WorklistReport(list_size=k)
    # Assessments say whether a change was decided and whether it is an alert, so the
    # replay need not build the changes themselves (the same decisions, much cheaper).
    replay = Replay(config=config, interval=DAY, keep_changes=False)
    activity = _Activity(frozenset(
        n for n, rule in config.events.items() if rule.family == "adoption"))
    caught: dict[str, set[str]] = {n: set() for n in RANKINGS}
    first_day: int | None = None
    current: int | None = None
    chunk: list[Event] = []

    def close(day: int) -> None:
        """Evaluate the grid point that starts ``day`` and draw its lists."""
        if chunk:
            replay.feed(chunk)
            chunk.clear()
        point = day * DAY
        replay.advance_to(point)
        activity.expire(day)
        assessed = replay.assessments()
        for a in assessed.values():
            if a.time == point and a.change_id is not None:  # decided at this point
                report.changes += 1
                if a.alert:
                    report.alerts += 1
                    report.alerts_with_attention += a.attention.needed
        _draw(day, assessed, activity.recent, churned, report, caught, k, early, late,
              precision_days)
        report.days += 1
        if progress is not None:
            progress(day)

    for e in events:
        day = int(e.timestamp // DAY)
        if current is None:
            first_day = current = day
        while current < day:
            current += 1
            close(current)
        activity.add(e)
        chunk.append(e)
    if current is not None:
        close(current + 1)
    report.accounts = len(replay.accounts)
    if first_day is not None and current is not None:
        last_list = current + 1
        for name, figures in report.rankings.items():
            window = [a for a, d in churned.items()
                      if d - early >= first_day + 1 and d - late <= last_list]
            figures.churned = len(window)
            figures.caught = sum(1 for a in window if a in caught[name])
    return report


def _draw(
    day: int,
    assessed: Mapping[tuple[str, str], AccountAssessment],
    recent: Mapping[str, int],
    churned: Mapping[str, int],
    report: WorklistReport,
    caught: dict[str, set[str]],
    k: int,
    early: int,
    late: int,
    precision_days: int,
) -> None:
    by_owner: dict[str | None, list[AccountAssessment]] = defaultdict(list)
    for (_, account), a in assessed.items():
        gone = churned.get(account)
        if (gone is not None and day >= gone) or a.lifecycle == "churned":
            continue  # cancelled or already lost: nobody's list
        by_owner[a.owner].append(a)
        report.account_days += 1
    for accounts in by_owner.values():
        lists: dict[str, list[str]] = {
            "worklist": _top([(-a.attention.priority, a.account_id) for a in accounts
                              if a.attention.needed], k),
            "score": _top([(a.score, a.account_id) for a in accounts], k),
            "activity": _top([(recent.get(a.account_id, 0), a.account_id) for a in accounts], k),
        }
        for name, listed in lists.items():
            figures = report.rankings[name]
            figures.owner_days += 1
            figures.appearances += len(listed)
            for account in listed:
                gone = churned.get(account)
                if gone is None:
                    continue
                ahead = gone - day
                if 0 < ahead <= precision_days:
                    figures.churn_appearances += 1
                if late <= ahead <= early:
                    caught[name].add(account)


def run_simulated(accounts: int, days: int, seed: int, config: ScoringConfig,
                  list_size: int | None = None,
                  progress: Callable[[int], None] | None = None) -> WorklistReport:
    """Simulate a portfolio (``history.simulate``) and evaluate its worklists."""
    from history.importers import segment_events
    from history.simulate import simulate

    sim = simulate(accounts=accounts, days=days, seed=seed)
    return evaluate_worklists(segment_events(sim.events(), "demo"), churn_days(sim.outcomes),
                              config, list_size, progress=progress)


__all__: Sequence[str] = (
    "RANKINGS", "RankingFigures", "WorklistReport", "churn_days", "evaluate_worklists",
    "run_simulated",
)

"""In-memory driver over many accounts: replays, backtests and determinism tests run the
very same :func:`scoring.engine.step` as the live workers.

Events are fed in time order and routed by their ``account_id``. The driver evaluates on
a fixed event-time grid (``interval`` seconds, one day by default): at each grid point it
steps every account that received events since the previous point, and every account
whose ``next_due`` has come, with ``now`` = the grid point. Because the grid depends only
on event time, feeding the same events in any grouping gives identical state and
decisions.

Backtests: ``advance_to(t)`` then ``assessment(workspace, account_id)`` gives the account
as assessed at the last grid point <= t; ``assess_at(workspace, account_id, t)`` computes
a fresh read-only assessment at exactly ``t`` (including events not yet evaluated)
without changing the replay.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from scoring.changes import HealthChange
from scoring.config import ScoringConfig, load_config
from scoring.driver import AccountKey, Driver, Loaded, MemoryDueIndex
from scoring.engine import AccountAssessment, StepResult, step
from state.aggregates import DAY, AccountState, UserState
from streams.events import Event


@dataclass(slots=True)
class ReplayStats:
    events: int = 0
    unrouted: int = 0  # events without an account id (identity not resolved)
    steps: int = 0
    due_steps: int = 0
    changes: int = 0


@dataclass
class Replay:
    """Drive many accounts through ``step`` on an event-time grid (see module doc)."""

    config: ScoringConfig = field(default_factory=load_config)
    #: Workspaces with their own scoring config (the live worker's workspace files);
    #: every other workspace is scored under ``config``.
    workspace_configs: Mapping[str, ScoringConfig] = field(default_factory=dict)
    interval: float = DAY
    keep_changes: bool = True
    on_change: Callable[[HealthChange], None] | None = None
    accounts: dict[AccountKey, AccountState] = field(default_factory=dict)
    users: dict[tuple[str, str, str], UserState] = field(default_factory=dict)
    changes: list[HealthChange] = field(default_factory=list)
    stats: ReplayStats = field(default_factory=ReplayStats)
    _latest: dict[AccountKey, AccountAssessment] = field(default_factory=dict)
    _pending: dict[AccountKey, list[Event]] = field(default_factory=dict)
    _index: MemoryDueIndex = field(default_factory=MemoryDueIndex)
    _user_ids: dict[AccountKey, set[str]] = field(default_factory=dict)  # to forget them
    _next_point: float | None = None
    _last_point: float | None = None
    _decided: list[HealthChange] = field(default_factory=list)  # at the current point

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError("interval must be positive seconds")
        self._driver = Driver(self, self._index, self.config_for, self.emits)

    # ------------------------------------------------------------------ feeding

    def feed(self, events: Iterable[Event]) -> list[HealthChange]:
        """Feed events (in time order); returns the changes decided meanwhile."""
        out: list[HealthChange] = []
        for e in events:
            self.stats.events += 1
            if e.account_id is None:
                self.stats.unrouted += 1
                continue
            if self._next_point is not None and e.timestamp >= self._next_point:
                out.extend(self.advance_to(e.timestamp))
            self._pending.setdefault((e.workspace, e.account_id), []).append(e)
            # The grid point that evaluates this event (advance_to may have skipped an
            # idle stretch past it).
            point = self._grid_after(e.timestamp)
            if self._last_point is not None and point <= self._last_point:
                point = self._last_point + self.interval  # late event: next point
            if self._next_point is None or point < self._next_point:
                self._next_point = point
        return out

    def run(self, events: Iterable[Event], until: float | None = None) -> list[HealthChange]:
        """Feed everything, then evaluate up to ``until`` (default: the grid point after
        the last event, so every event is evaluated)."""
        out = self.feed(events)
        out.extend(self.finish(until))
        return out

    def finish(self, until: float | None = None) -> list[HealthChange]:
        """Evaluate pending events and due accounts up to ``until`` (default: the grid
        point after the newest fed event)."""
        if until is None:
            if self._next_point is None:
                return []
            until = self._next_point
        return self.advance_to(until)

    def advance_to(self, now: float) -> list[HealthChange]:
        """Process every grid point <= ``now``: pending events and due accounts."""
        out: list[HealthChange] = []
        if self._next_point is None:
            self._next_point = self._grid_after(now)
            first = self._index.first()
            if first is not None:
                self._next_point = min(self._next_point, self._grid_at_or_after(first))
        while self._next_point is not None and self._next_point <= now:
            point = self._next_point
            out.extend(self._evaluate_point(point))
            self._last_point = point
            nxt = point + self.interval
            if not self._pending:
                # skip empty stretches straight to the next due account
                first = self._index.first()
                nxt = max(nxt, self._grid_after(now) if first is None
                          else self._grid_at_or_after(first))
            self._next_point = nxt
        return out

    # ------------------------------------------------------------------ reading

    def assessment(self, workspace: str, account_id: str) -> AccountAssessment | None:
        """The account as assessed at the last grid point it was evaluated."""
        return self._latest.get((workspace, account_id))

    def assessments(self) -> dict[AccountKey, AccountAssessment]:
        """Latest assessment per (workspace, account id)."""
        return dict(self._latest)

    def assess_at(self, workspace: str, account_id: str, at: float) -> AccountAssessment | None:
        """A read-only assessment at exactly ``at``, including events fed but not yet
        evaluated; the replay's state is left untouched."""
        key = (workspace, account_id)
        acc = self.accounts.get(key)
        pending = [e for e in self._pending.get(key, []) if e.timestamp <= at]
        if acc is None and not pending:
            return None
        users = {
            e.user_id: self._user_copy(workspace, account_id, e.user_id)
            for e in pending
            if e.user_id is not None
        }
        result = step(
            acc.copy() if acc is not None else None,
            {u: s for u, s in users.items() if s is not None},
            pending, max(at, acc.clock if acc else at), self.config_for(workspace), workspace,
            account_id, self.emits,
        )
        return result.assessment

    def config_for(self, workspace: str) -> ScoringConfig:
        """The scoring config of ``workspace``: its own, else :attr:`config`."""
        return self.workspace_configs.get(workspace, self.config)

    @property
    def emits(self) -> bool:
        """Whether health changes are built: only when they are kept or handed on.
        Otherwise steps skip the explanations (same decisions, same state)."""
        return self.keep_changes or self.on_change is not None

    def account_keys(self) -> list[AccountKey]:
        return sorted(self.accounts)

    def forget(self, workspace: str, account_id: str) -> None:
        """Drop an account nobody will read again (a backtest past its last assessment):
        its state, users, pending events and due time. Accounts never affect each other,
        so the others replay exactly as before; an event for it later starts it afresh."""
        key = (workspace, account_id)
        self.accounts.pop(key, None)
        self._pending.pop(key, None)
        for uid in self._user_ids.pop(key, ()):
            self.users.pop((workspace, account_id, uid), None)
        self._latest.pop(key, None)
        self._index.discard(key)

    # ------------------------------------------------------------------ internals

    def _grid_after(self, t: float) -> float:
        return (math.floor(t / self.interval) + 1) * self.interval

    def _grid_at_or_after(self, t: float) -> float:
        return math.ceil(t / self.interval) * self.interval

    def _user_copy(self, ws: str, acc: str, uid: str) -> UserState | None:
        u = self.users.get((ws, acc, uid))
        return None if u is None else UserState.from_list(u.to_list())

    def _evaluate_point(self, point: float) -> list[HealthChange]:
        arrivals = {key: self._pending.pop(key) for key in sorted(self._pending)}
        self._decided = []
        self.stats.due_steps += self._driver.advance(point, arrivals)
        return self._decided

    # ------------------------------------------------------------------ the driver's store

    def load(self, key: AccountKey, user_ids: Sequence[str]) -> Loaded:
        ws, acc_id = key
        users = {uid: self.users[(ws, acc_id, uid)]
                 for uid in user_ids if (ws, acc_id, uid) in self.users}
        return Loaded(self.accounts.get(key), users)

    def save(self, key: AccountKey, loaded: Loaded, result: StepResult, due: int | None,
             events: Sequence[Event]) -> None:
        ws, acc_id = key
        self.stats.steps += 1
        self.accounts[key] = result.account
        if result.users:
            known = self._user_ids.get(key)
            if known is None:
                known = self._user_ids[key] = set()
            for uid, state in result.users.items():
                self.users[(ws, acc_id, uid)] = state
                known.add(uid)
        self._latest[key] = result.assessment
        self._index.set(key, due)
        if result.assessment.change_id is not None:
            self.stats.changes += 1
        for change in result.changes:
            if self.keep_changes:
                self.changes.append(change)
            if self.on_change is not None:
                self.on_change(change)
        self._decided.extend(result.changes)

    def failed(self, key: AccountKey, error: Exception) -> None:
        raise error  # a replay is a test of the core: a failing step fails it

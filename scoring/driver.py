"""The one driver of :func:`scoring.engine.step`, for every shell that runs the core: the
live score agent, the in-memory replay behind backtests, and the benchmark's peers.

A shell owns time and storage; the driver owns what happens at one moment ``now`` of one
partition (:meth:`Driver.advance`):

1. every account whose due second has come (its due index, :class:`DueIndex`) and that
   has no events now is re-evaluated with ``events=[]``: that is how "power user
   inactive 21 days" fires on the right day when an account sends nothing;
2. every account with events (``arrivals``) is stepped with them;
3. each result is saved (:class:`Accounts`) with the account's next due second, always
   later than ``now`` and in whole seconds rounded up (:func:`due_second`), so a shell
   that keeps due times as keys and one that keeps them in a heap re-evaluate at the
   same moments.

Accounts never affect each other, so what a shell decides about exactly-once delivery
(the live agent's applied offsets, redo records and outbox), storage (RocksDB records,
live objects) and the clock (the live partition's event-time clock, the replay's grid)
stays in its :class:`Accounts` and :class:`DueIndex`, and the decisions are the same
whichever shell runs them.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from scoring.config import ScoringConfig
from scoring.engine import StepResult, step
from state.aggregates import AccountState, UserState
from state.keys import MAX_DUE
from streams.events import Event

AccountKey = tuple[str, str]
"""(workspace, account id)."""


def due_second(due: float) -> int:
    """Due times are kept in whole seconds, rounded up (never re-evaluate early)."""
    return min(max(0, math.ceil(due)), MAX_DUE)


def next_due_second(result: StepResult, now: float) -> int | None:
    """When the account of ``result`` must be re-evaluated if nothing arrives: its
    ``next_due``, at least one second after ``now``, in whole seconds (None: never)."""
    if result.next_due is None:
        return None
    return due_second(max(result.next_due, now + 1))


@dataclass(frozen=True, slots=True)
class Loaded:
    """An account's state before a step (None: not seen yet) and those of the users the
    step's events name that exist. A shell may hand back a subclass that carries what
    its :meth:`Accounts.save` needs of the account as it was (the driver passes it on)."""

    account: AccountState | None
    users: Mapping[str, UserState]


class Accounts(Protocol):
    """Where a shell keeps the state of the accounts of one partition."""

    def load(self, key: AccountKey, user_ids: Sequence[str]) -> Loaded | None:
        """The account and those of ``user_ids`` that exist; None when the shell will not
        have the account stepped now (the live agent: this message was applied already)."""

    def save(self, key: AccountKey, loaded: Loaded, result: StepResult, due: int | None,
             events: Sequence[Event]) -> None:
        """Keep ``result`` (the account, the users it changed, its changes) and the
        account's next due second; ``loaded`` is what :meth:`load` gave for this step,
        ``events`` the events it was stepped with."""

    def failed(self, key: AccountKey, error: Exception) -> None:
        """The step raised: the account keeps its previous state, the shell reports it."""


class DueIndex(Protocol):
    """The accounts of one partition by due second."""

    def pop_until(self, until: int, arriving: Collection[AccountKey]) -> Iterable[AccountKey]:
        """The accounts due at or before ``until``, oldest first, to be re-evaluated with
        no events; those ``arriving`` (stepped with events at this moment anyway) are
        left out. The steps that follow set each account's next due second again."""


class Driver:
    """The moments of one partition, over a shell's :class:`Accounts` and
    :class:`DueIndex` (see the module doc)."""

    __slots__ = ("accounts", "config_for", "due", "emit")

    def __init__(self, accounts: Accounts, due: DueIndex,
                 config_for: Callable[[str], ScoringConfig], emit: bool = True) -> None:
        self.accounts = accounts
        self.due = due
        self.config_for = config_for
        #: Whether health changes (and their explanations) are built; a backtest that
        #: only reads scores turns them off (same decisions, same state).
        self.emit = emit

    def advance(self, now: float, arrivals: Mapping[AccountKey, Sequence[Event]]) -> int:
        """Re-evaluate the accounts due by ``now``, then step those with events; returns
        how many accounts were re-evaluated only because they were due."""
        due = 0
        for key in self.due.pop_until(math.floor(now), arrivals):
            self.step(key, (), now)
            due += 1
        for key, events in arrivals.items():
            self.step(key, events, now)
        return due

    def step(self, key: AccountKey, events: Sequence[Event], now: float) -> StepResult | None:
        """One account at ``now`` with ``events`` (``()``: a re-evaluation); None when the
        shell did not have it stepped, or the step failed."""
        user_ids = sorted({e.user_id for e in events if e.user_id})
        loaded = self.accounts.load(key, user_ids)
        if loaded is None:
            return None
        workspace, account_id = key
        try:
            result = step(loaded.account, loaded.users, events, now,
                          self.config_for(workspace), workspace, account_id, self.emit)
        except Exception as error:  # a bug or an input the core cannot take
            self.accounts.failed(key, error)
            return None
        self.accounts.save(key, loaded, result, next_due_second(result, now), events)
        return result


@dataclass
class MemoryDueIndex:
    """:class:`DueIndex` in memory: a heap with the live due second per account, popped in
    the order of a key-ordered scan of due keys (due, workspace, account)."""

    heap: list[tuple[int, str, str]] = field(default_factory=list)
    due: dict[AccountKey, int] = field(default_factory=dict)

    def set(self, key: AccountKey, due: int | None) -> None:
        if due is None:
            self.due.pop(key, None)
        elif self.due.get(key) != due:
            self.due[key] = due
            heapq.heappush(self.heap, (due, *key))

    def first(self) -> int | None:
        """The earliest due second, None when nothing is due."""
        while self.heap and self.due.get(self.heap[0][1:]) != self.heap[0][0]:
            heapq.heappop(self.heap)  # replaced or dropped since it was pushed
        return self.heap[0][0] if self.heap else None

    def pop_until(self, until: int, arriving: Collection[AccountKey]) -> list[AccountKey]:
        out: list[AccountKey] = []
        while self.heap and self.heap[0][0] <= until:
            due, workspace, account_id = heapq.heappop(self.heap)
            key = (workspace, account_id)
            if self.due.get(key) == due:
                del self.due[key]
                if key not in arriving:
                    out.append(key)
        return out

    def discard(self, key: AccountKey) -> None:
        """Forget ``key``'s due time (its heap entry is skipped when it comes up)."""
        self.due.pop(key, None)


__all__ = ["AccountKey", "Accounts", "Driver", "DueIndex", "Loaded", "MemoryDueIndex",
           "due_second", "next_due_second"]

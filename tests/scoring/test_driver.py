"""The one driver of the core's ``step`` that the live agent, replays and the peers share:
at a moment of a partition, due accounts first (in due-key order, those with events left
to their own step), then the accounts with events; the next due second is always later
than the moment and whole; what the shell will not step is skipped, and a failing step
is the shell's to report."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from scoring.config import load_config
from scoring.driver import (
    AccountKey,
    Driver,
    Loaded,
    MemoryDueIndex,
    due_second,
    next_due_second,
)
from scoring.engine import StepResult
from state import tables
from state.aggregates import AccountState, UserState
from streams.events import Event, EventType, Source

DAY = 86_400.0
START = 1_800_000_000.0
CONFIG = load_config(None)


def _login(account: str, user: str, at: float) -> Event:
    return Event(workspace="ws", message_id=f"{account}-{user}-{at}", type=EventType.TRACK,
                 timestamp=at, received_at=at, source=Source.KAFKA, name="Logged In",
                 user_id=user, account_id=account)


class Shell:
    """A shell's accounts in dicts, recording what the driver asked of it."""

    def __init__(self, index: MemoryDueIndex, *, refuse: frozenset[AccountKey] = frozenset(),
                 ) -> None:
        self.index = index
        self.refuse = refuse
        self.accounts: dict[AccountKey, AccountState] = {}
        self.users: dict[tuple[AccountKey, str], UserState] = {}
        self.loads: list[tuple[AccountKey, list[str]]] = []
        self.saved: list[tuple[AccountKey, int | None, int]] = []
        self.failures: list[tuple[AccountKey, Exception]] = []

    def load(self, key: AccountKey, user_ids: Sequence[str]) -> Loaded | None:
        self.loads.append((key, list(user_ids)))
        if key in self.refuse:
            return None
        users = {u: self.users[(key, u)] for u in user_ids if (key, u) in self.users}
        return Loaded(self.accounts.get(key), users)

    def save(self, key: AccountKey, loaded: Loaded, result: StepResult, due: int | None,
             events: Sequence[Event]) -> None:
        self.accounts[key] = result.account
        for user_id, user in result.users.items():
            self.users[(key, user_id)] = user
        self.index.set(key, due)
        self.saved.append((key, due, len(events)))

    def failed(self, key: AccountKey, error: Exception) -> None:
        self.failures.append((key, error))


def _driver(**shell_options: frozenset[AccountKey]) -> tuple[Driver, Shell, MemoryDueIndex]:
    index = MemoryDueIndex()
    shell = Shell(index, **shell_options)
    return Driver(shell, index, lambda _workspace: CONFIG), shell, index


def test_due_accounts_come_in_the_order_of_the_agents_key_scan() -> None:
    index = MemoryDueIndex()
    index.set(("ws", "b"), 200)
    index.set(("ws", "a"), 200)
    index.set(("ws", "c"), 100)
    index.set(("ws", "c"), 300)  # moved later: its entry at 100 no longer counts
    index.set(("ws", "d"), 150)
    index.set(("ws", "d"), None)  # nothing due any more
    keys = sorted(tables.due_key(due, ws, acc) for (ws, acc), due in index.due.items()
                  if due <= 250)
    assert index.first() == 200
    assert index.pop_until(250, ()) == [tables.parse_due_key(k)[1:] for k in keys]
    assert index.pop_until(250, ()) == []
    assert index.pop_until(300, {("ws", "c")}) == [], "an arriving account is left out"
    assert index.first() is None


def test_due_accounts_are_stepped_first_and_an_arriving_one_only_with_its_events() -> None:
    driver, shell, index = _driver()
    for account in ("a", "b", "c"):
        driver.step(("ws", account), [_login(account, "u1", START)], START)
    assert set(index.due) == {("ws", "a"), ("ws", "b"), ("ws", "c")}
    shell.loads.clear()
    shell.saved.clear()
    later = max(index.due.values()) + DAY
    due = driver.advance(later, {("ws", "b"): [_login("b", "u2", later)]})
    assert due == 2
    assert [key for key, _ in shell.loads] == [("ws", "a"), ("ws", "c"), ("ws", "b")]
    assert shell.loads[-1] == (("ws", "b"), ["u2"]), "only the users the events name"
    assert [events for _, _, events in shell.saved] == [0, 0, 1]


def test_the_next_due_second_is_whole_and_after_the_moment() -> None:
    driver, shell, _ = _driver()
    result = driver.step(("ws", "a"), [_login("a", "u1", START)], START)
    assert result is not None and result.next_due is not None
    (_, due, _), = shell.saved
    assert due == next_due_second(result, START) == due_second(max(result.next_due, START + 1))
    assert isinstance(due, int) and due > START
    assert due_second(10.2) == 11 and due_second(-5) == 0, "never early, never negative"


def test_an_account_the_shell_will_not_step_is_skipped() -> None:
    driver, shell, _ = _driver(refuse=frozenset({("ws", "a")}))
    assert driver.step(("ws", "a"), [_login("a", "u1", START)], START) is None
    assert shell.saved == [] and shell.accounts == {}


def test_a_failing_step_is_reported_and_leaves_the_account_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    driver, shell, _ = _driver()
    driver.step(("ws", "a"), [_login("a", "u1", START)], START)
    before = shell.accounts[("ws", "a")].to_list()

    def broken(*_args: object) -> StepResult:
        raise RuntimeError("core bug")

    monkeypatch.setattr("scoring.driver.step", broken)
    assert driver.step(("ws", "a"), [_login("a", "u1", START + DAY)], START + DAY) is None
    (key, error), = shell.failures
    assert key == ("ws", "a") and str(error) == "core bug"
    assert shell.accounts[("ws", "a")].to_list() == before

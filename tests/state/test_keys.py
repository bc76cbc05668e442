"""State keys: one account's keys built once are the keys the table functions build, and
an id that cannot be part of a key is refused by both."""

from __future__ import annotations

import pytest

from state import tables
from state.aggregates import AccountState, UserSummary, encode_within, shed_users
from state.keys import MAX_DUE, KeyPartError


@pytest.mark.parametrize(("workspace", "account", "user"), [
    ("acme", "acct-1", "u-1"), ("w", "a:b@c.d", "user+tag@example.com"),
    ("ws_2", "0", "x" * 100)])
def test_account_keys_are_the_table_keys(workspace: str, account: str, user: str) -> None:
    keys = tables.AccountKeys(workspace, account)
    assert keys.account == tables.account_key(workspace, account)
    assert keys.user(user) == tables.user_key(workspace, account, user)
    for due in (0, 1_780_000_000, MAX_DUE + 5):
        assert keys.due(due) == tables.due_key(due, workspace, account)
        assert tables.parse_due_key(keys.due(due))[1:] == (workspace, account)


@pytest.mark.parametrize("bad", ["", "a\x1fb", "a\nb", "x" * 1000])
def test_a_bad_id_is_refused_once_for_all_its_keys(bad: str) -> None:
    with pytest.raises(KeyPartError):
        tables.AccountKeys(bad, "acct")
    with pytest.raises(KeyPartError):
        tables.AccountKeys("acme", bad)
    with pytest.raises(KeyPartError):
        tables.AccountKeys("acme", "acct").user(bad)


def test_encode_within_returns_the_bytes_it_measured() -> None:
    account = AccountState("acme", "acct")
    for n in range(400):
        account.users[f"user-{n:04d}"] = UserSummary(name=f"Person {n}", last_seen=n * 60.0)
    small = AccountState("acme", "small")
    assert encode_within(small, 16 * 1024) == (small.to_bytes(), [])
    twin = AccountState.from_bytes(account.to_bytes())
    raw, shed = encode_within(account, 16 * 1024)
    assert raw == account.to_bytes() and len(raw) <= 16 * 1024
    assert shed == shed_users(twin, 16 * 1024) and shed[0] == "user-0000"

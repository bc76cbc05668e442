from __future__ import annotations

import pytest

from state.identity import (
    MAX_ACCOUNTS,
    IdentityKeyError,
    IdentityRecord,
    expiry_key,
    expiry_range_end,
    map_key,
    parse_expiry_key,
)


def test_link_keeps_most_recent_first_and_is_bounded() -> None:
    record = IdentityRecord()
    assert record.current is None
    assert record.link("a") is True
    assert record.link("a") is False
    assert record.link("b") is True
    assert record.link("a") is True
    assert record.accounts == ["a", "b"]
    for i in range(MAX_ACCOUNTS + 5):
        record.link(f"x{i}")
    assert len(record.accounts) == MAX_ACCOUNTS
    assert record.current == f"x{MAX_ACCOUNTS + 4}"


def test_record_round_trip() -> None:
    record = IdentityRecord(["a", "b"], held=3, hold_due=1_800_000_000)
    assert IdentityRecord.from_bytes(record.to_bytes()) == record
    assert IdentityRecord.from_bytes(IdentityRecord(["a"]).to_bytes()) == IdentityRecord(["a"])
    assert IdentityRecord.from_bytes(None) == IdentityRecord()


def test_link_user_follows_the_latest_call() -> None:
    record = IdentityRecord()
    assert record.link_user("u1", 10.0) is True
    assert record.link_user("u1", 10.0) is False  # the same call again
    assert record.link_user("u2", 5.0) is False  # an older call for another user
    assert (record.linked_to, record.linked_at) == ("u1", 10.0)
    assert record.link_user("u2", 10.0) is True  # as recent: the later arrival wins
    assert record.link_user("u2", 20.0) is True
    assert record.linked_at == 20.0
    record.link_due = 99
    assert record.uses_due(99) and not record.uses_due(98)
    assert IdentityRecord.from_bytes(record.to_bytes()) == record
    record.unlink_user()
    assert record.empty
    assert IdentityRecord.from_bytes(record.to_bytes()) == IdentityRecord()


def test_expiry_keys_sort_by_due_time() -> None:
    keys = sorted([expiry_key(200, "w", "u2"), expiry_key(100, "w", "u1"),
                   expiry_key(1_800_000_000, "w", "u3")])
    assert [parse_expiry_key(k) for k in keys] == [
        (100, "w", "u1"), (200, "w", "u2"), (1_800_000_000, "w", "u3")]
    assert [k for k in keys if k < expiry_range_end(200)] == keys[:2]


def test_ids_with_the_separator_are_refused() -> None:
    with pytest.raises(IdentityKeyError):
        map_key("w", "a\x1fb")
    with pytest.raises(IdentityKeyError):
        map_key("", "u")

"""The score pipeline through the real broker: envelopes in, health changes out.

A `telltale worker` child process runs the score agent in replay mode (time comes only
from the messages). The stream is a known portfolio; every day ends with one tick per
partition, and a third of the accounts go silent early, so their inactivity signals can
only come from the clock ticks.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
import pytest

from state import tables
from streams.envelope import ENVELOPES, Envelope, Tick, kafka_key
from streams.health_change import validate
from streams.settings import Settings
from tests.e2e.test_pipeline_support import (
    DAY,
    T0,
    Message,
    Scenario,
    changelog_topic,
    read_topic,
    score_worker_run,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]


def _day(change: dict[str, Any]) -> int:
    return int(change["day"])


def _last_active_day_per_user(messages: list[Message]) -> dict[str, int]:
    last: dict[str, int] = {}
    for message in messages:
        envelope = ENVELOPES.decode(message.value)
        if isinstance(envelope, Envelope):
            for event in envelope.events:
                if event.user_id:
                    day = int(event.timestamp // DAY)
                    last[event.user_id] = max(day, last.get(event.user_id, day))
    return last


async def test_events_in_health_changes_out_with_inactivity_from_ticks_alone(
    settings: Settings, kafka_bootstrap: str, start_worker: Any,
) -> None:
    settings = settings.replace(replay=True)
    names = settings.topics
    scenario = Scenario(accounts=6, users=3, days=30, silent_after=10)
    _, state = await score_worker_run(kafka_bootstrap, settings,
                                      scenario.build(settings.partitions), start_worker)

    records = await read_topic(kafka_bootstrap, names.health_changes, settings.partitions)
    changes = [orjson.loads(r.value) for r in records]
    for change in changes:
        validate(change)
    ids = [c["id"] for c in changes]
    assert len(ids) == len(set(ids)), "an uninterrupted run emits each change once"
    by_account: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record, change in zip(records, changes, strict=True):
        assert record.key == kafka_key(change["workspace"], change["account_id"])
        by_account[change["account_id"]].append(change)
    accounts = [f"acc-{a:03d}" for a in range(scenario.accounts)]
    assert sorted(by_account) == accounts, "every account gets its first assessment"

    last_day = _last_active_day_per_user(scenario.messages)
    for account in accounts[::3]:  # the silent ones
        started = [
            (s["type"], s["subject"], _day(c))
            for c in by_account[account] for s in c["signals_started"]
        ]
        inactive = [(user, day) for kind, user, day in started if kind == "user_inactive_10d"]
        assert inactive, f"{account} went silent but no inactivity signal: {started}"
        for user, day in inactive:
            # From ticks alone, on the right day: the 10th day after the user's last
            # event, long after the account's last message.
            assert day - last_day[user] == 10, (user, day, last_day[user])
            assert last_day[user] < T0 // DAY + scenario.silent_after
    for account in accounts:
        if account in accounts[::3]:
            continue
        kinds = {s["type"] for c in by_account[account] for s in c["signals_started"]}
        assert "account_inactive" not in kinds

    # Final state: every account, its users and the clock of every partition.
    assert len(state.accounts) == scenario.accounts
    assert len(state.users) == scenario.accounts * scenario.users
    for clock in state.clocks.values():
        assert clock.now == T0 + scenario.days * DAY


async def test_user_records_live_in_their_accounts_partition(
    settings: Settings, kafka_bootstrap: str, start_worker: Any,
) -> None:
    """Faust files a table write under the partition of the message being processed;
    the user records must therefore share the account's changelog partition."""
    settings = settings.replace(replay=True)
    names = settings.topics
    scenario = Scenario(accounts=8, users=2, days=2, silent_after=99)
    await score_worker_run(kafka_bootstrap, settings, scenario.build(settings.partitions),
                           start_worker, timeout=120)

    source = await read_topic(kafka_bootstrap, names.by_account, settings.partitions)
    account_partition = {
        r.key.decode().split("|", 1)[1]: r.partition for r in source if r.key is not None
    }
    assert len(set(account_partition.values())) == settings.partitions, "spread over both"
    changelog = await read_topic(kafka_bootstrap, changelog_topic(settings), settings.partitions)
    seen = {tables.ACCOUNT: 0, tables.USER: 0}
    for record in changelog:
        kind = tables.key_kind(record.key)
        if kind in seen:
            account = record.key.split(tables.SEP)[2].decode()
            assert record.partition == account_partition[account], record.key
            seen[kind] += 1
    assert seen[tables.ACCOUNT] and seen[tables.USER]


async def test_bad_messages_are_skipped_and_processing_goes_on(
    settings: Settings, kafka_bootstrap: str, start_worker: Any,
) -> None:
    settings = settings.replace(replay=True)
    good = Scenario(accounts=2, users=1, days=1).build(settings.partitions)
    key = kafka_key("acme", "acc-000")
    garbage = [
        Message(key, b"not json"),
        Message(key, orjson.dumps({"v": 1, "kind": "events", "ws": "acme"})),
        Message(key, orjson.dumps({"v": 9, "kind": "tick"})),
        Message(None, ENVELOPES.encode(Tick(T0, 0)), 0),
    ]
    worker, state = await score_worker_run(kafka_bootstrap, settings, garbage + good,
                                           start_worker, timeout=120)
    assert len(state.accounts) == 2
    assert worker.process.alive

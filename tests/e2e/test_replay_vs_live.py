"""Replays and backtests score exactly what the live pipeline scores.

A simulated portfolio (``history.simulate``, resolved to accounts by the history
importer) goes through the real score agent in a `telltale worker` (replay mode: time
comes only from the messages), as one envelope per account and day and a clock tick per
partition at every midnight. The same messages are then driven through the pure core in
memory, the way the agent drives it (per partition: advance the clock, re-evaluate the
accounts due at or before it, apply the envelope), and the health changes must be the
same: ids, scores, reasons.

:class:`scoring.replay.Replay`, which backtests use, evaluates on a daily grid instead of
at each message, so its changes carry other times by design; what must agree is the
assessment itself: after the last midnight tick every account's score and components are
the same in the live record, in ``Replay``, and in the backtest's ``assess_at``.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from history.importers import segment_events
from history.simulate import simulate
from scoring.config import load_config
from scoring.driver import due_second
from scoring.engine import evaluate, step
from scoring.replay import Replay
from state.aggregates import DAY, AccountState, UserState
from streams.envelope import ENVELOPES, Envelope, Tick, kafka_key
from streams.events import Event
from streams.settings import Settings
from tests.e2e.test_pipeline_support import (
    Message,
    read_topic,
    score_worker_run,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

WORKSPACE = "demo"
ACCOUNTS, DAYS, SEED = 10, 40, 12


def _history() -> tuple[list[Event], float]:
    sim = simulate(accounts=ACCOUNTS, days=DAYS, seed=SEED)
    events = [e for e in segment_events(sim.events(), WORKSPACE) if e.account_id is not None]
    return events, sim.start_epoch + DAYS * DAY


def _messages(events: list[Event], partitions: int) -> list[Message]:
    """Per day: one envelope per account (its events of the day), then a tick per
    partition at the midnight that ends the day."""
    partitioner = DefaultPartitioner()
    every = list(range(partitions))
    by_day: dict[int, dict[str, list[Event]]] = defaultdict(lambda: defaultdict(list))
    for e in events:
        assert e.account_id is not None
        by_day[int(e.timestamp // DAY)][e.account_id].append(e)
    out: list[Message] = []
    for day in sorted(by_day):
        for account in sorted(by_day[day]):
            key = kafka_key(WORKSPACE, account)
            value = ENVELOPES.encode(Envelope(WORKSPACE, account, by_day[day][account]))
            out.append(Message(key, value, partitioner(key, every, every)))
        out.extend(Message(None, ENVELOPES.encode(Tick((day + 1) * DAY, p)), p) for p in every)
    return out


def _drive_like_the_agent(messages: list[Message]) -> list[dict[str, Any]]:
    """The pure core, driven as agents/score.py drives it, partition by partition."""
    config = load_config(None)
    accounts: dict[str, AccountState] = {}
    users: dict[tuple[str, str], UserState] = {}
    due: dict[str, int] = {}
    clock: dict[int, float] = defaultdict(float)
    changes: list[dict[str, Any]] = []

    def run(account: str, events: list[Event], now: float) -> None:
        ids = sorted({e.user_id for e in events if e.user_id})
        known = {u: users[(account, u)] for u in ids if (account, u) in users}
        result = step(accounts.get(account), known, events, now, config, WORKSPACE, account)
        accounts[account] = result.account
        for uid, state in result.users.items():
            users[(account, uid)] = state
        if result.next_due is None:
            due.pop(account, None)
        else:
            due[account] = due_second(max(result.next_due, now + 1))
        changes.extend(c.to_dict() for c in result.changes)

    partition_of: dict[str, int] = {}
    for m in messages:
        message = ENVELOPES.decode(m.value)
        assert m.partition is not None
        p = m.partition
        if isinstance(message, Envelope):
            partition_of[message.key] = p
            newest = max(e.timestamp for e in message.events)
        else:
            assert isinstance(message, Tick)
            newest = message.now
        now = max(clock[p], newest)
        clock[p] = now
        skip = message.key if isinstance(message, Envelope) else None
        for account in sorted(a for a, d in due.items()
                              if partition_of.get(a) == p and d <= math.floor(now)):
            if account != skip:
                run(account, [], now)
        if isinstance(message, Envelope):
            run(message.key, message.events, now)
    return changes


def _signature(change: dict[str, Any]) -> tuple[Any, ...]:
    return (change["id"], change["account_id"], change["day"], change["current"]["score"],
            change["current"]["band"], tuple(change["reasons"]), change["delta"])


async def test_live_pipeline_replay_and_backtest_agree(
    settings: Settings, kafka_bootstrap: str, start_worker: Any,
) -> None:
    settings = settings.replace(replay=True)
    names = settings.topics
    events, end = _history()
    messages = _messages(events, settings.partitions)
    _, state = await score_worker_run(kafka_bootstrap, settings, messages, start_worker,
                                      timeout=200)
    records = await read_topic(kafka_bootstrap, names.health_changes, settings.partitions)
    live = [orjson.loads(r.value) for r in records if r.value]
    assert len(live) > ACCOUNTS, "a month of a portfolio produces health changes"

    # 1. live == the pure core driven the way the agent drives it: same decisions.
    reference = _drive_like_the_agent(messages)
    assert Counter(map(_signature, live)) == Counter(map(_signature, reference))
    print(f"\nlive pipeline and in-memory core: {len(live)} identical health changes "
          f"for {ACCOUNTS} accounts over {DAYS} days ({len(events):,} events)")

    # 2. live == Replay == backtest assess_at, for the assessment after the last midnight.
    replay = Replay(load_config(None))
    replay.run(events, until=end)
    assert replay.stats.events == len(events)
    decoded = [AccountState.from_bytes(record.state) for record in state.accounts.values()]
    live_states = {s.account_id: s for s in decoded}
    assert sorted(live_states) == sorted({e.account_id for e in events if e.account_id})
    config = load_config(None)
    compared = 0
    for account, live_state in sorted(live_states.items()):
        assert live_state.clock == end, "the last tick re-evaluated every active account"
        replayed = replay.assessment(WORKSPACE, account)
        assert replayed is not None and replayed.time == end
        snapshot = replay.assess_at(WORKSPACE, account, end)
        assert snapshot is not None
        live_assessment, _ = evaluate(live_state.copy(), end, config)
        for other in (replayed, snapshot):
            assert other.score == live_state.score == live_assessment.score, account
            assert [c.to_dict() for c in other.components] == \
                [c.to_dict() for c in live_assessment.components], account
        compared += 1
    print(f"final assessments identical in live, Replay and assess_at for {compared} accounts")

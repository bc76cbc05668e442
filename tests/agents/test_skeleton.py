"""The walking skeleton end to end: aiokafka producer → Faust agent with a RocksDB table →
health-changes topic, with a real broker and a real worker process."""

from __future__ import annotations

import asyncio
import time
from urllib.request import urlopen

import orjson
import pytest

from agents.skeleton import SCHEMA, account_of, crossing
from devstack.topics import json_values


def test_crossing_fires_once_per_multiple() -> None:
    reached = [crossing(n - 1, n, 3) for n in range(1, 10)]
    assert reached == [None, None, 3, None, None, 6, None, None, 9]


def test_account_from_key_or_json_value() -> None:
    assert account_of(b"acct-1", b"not json") == "acct-1"
    assert account_of(None, orjson.dumps({"account_id": "a2"})) == "a2"
    assert account_of(None, orjson.dumps({"context": {"groupId": "a3"}})) == "a3"
    assert account_of(None, b"\xff garbage") is None
    assert account_of(None, b"[1, 2]") is None


@pytest.mark.integration
@pytest.mark.slow
async def test_counts_per_account_and_emits_at_each_threshold(
    settings, start_worker, produce, consume_until
) -> None:
    worker = start_worker(settings, "--skeleton", env={"TELLTALE_SKELETON_THRESHOLD": "3"})
    topics = settings.topics

    # acct-a crosses 3 and 6; acct-b crosses 3 once; acct-c never; one message is garbage
    # with no account and must not stop the agent.
    messages: list[tuple[str | None, object]] = [("acct-a", {"n": i}) for i in range(7)]
    messages += [("acct-b", {"n": i}) for i in range(4)]
    messages += [("acct-c", {"n": 0}), (None, b"\x00 not an event")]
    await produce(topics.events, messages)

    records = await consume_until(topics.health_changes, lambda rs: len(rs) >= 3, timeout=60)
    changes = json_values(records)
    assert sorted((c["account_id"], c["count"], c["threshold"]) for c in changes) == [
        ("acct-a", 3, 3), ("acct-a", 6, 6), ("acct-b", 3, 3),
    ]
    assert all(c["schema"] == SCHEMA for c in changes)
    assert {r.key for r in records} == {b"acct-a", b"acct-b"}  # keyed by account

    # The garbage message may sit on another partition and land after the last change.
    processed = 'telltale_messages_processed_total{agent="skeleton"} 13.0'
    deadline = time.monotonic() + 20
    while processed not in (exposition := _metrics(worker.metrics_url)):
        assert time.monotonic() < deadline, exposition
        await asyncio.sleep(0.2)
    assert 'telltale_events_dead_lettered_total{reason="no_account"} 1.0' in exposition


def _metrics(url: str) -> str:
    with urlopen(f"{url}/metrics", timeout=10) as response:
        return str(response.read().decode())

"""The resolve agent inside a real ``telltale worker``: direct producers, garbage, held
events released by a later group call, holds that expire to the dead-letter topic, and
anonymous events that follow an identify call to the user's account."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from devstack.topics import Record
from devstack.workers import start_worker
from streams.envelope import ENVELOPES, Envelope, kafka_key
from streams.events import Event, EventType, Source
from streams.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]


def _events(records: list[Record]) -> list[Event]:
    found: list[Event] = []
    for record in records:
        decoded = ENVELOPES.decode(record.value)
        assert isinstance(decoded, Envelope)
        assert record.key == kafka_key(decoded.workspace, decoded.key)
        found.extend(decoded.events)
    return found


def _dead(records: list[Record]) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in records]


async def test_resolve_worker_end_to_end(
    settings: Settings, tmp_path: Path, create_topics: Callable[..., Any],
    produce: Callable[..., Any], consume_until: Callable[..., Any]
) -> None:
    settings = settings.replace(write_keys="wk=acme", resolve_hold_seconds=1.0,
                                tick_interval=0.5)
    topics = settings.topics
    await create_topics(topics.events, topics.by_account, partitions=settings.partitions)
    await create_topics(topics.events_dlq)
    worker = await asyncio.to_thread(start_worker, settings, ["--module", "agents.resolve"],
                                     log_path=tmp_path / "worker.log", ready_timeout=180)
    try:
        waiting = Event("acme", "w-1", EventType.TRACK, 1_700_000_000.0, 1_700_000_000.0,
                        Source.SEGMENT, name="Report Published", user_id="u-wait")
        await produce(topics.events, [
            (b"whatever", b"\x00 not json"),
            # A direct producer keying by account: rerouted to the user's partition.
            (b"acct-direct", orjson.dumps({
                "type": "track", "userId": "u-direct", "event": "Logged In",
                "messageId": "d-1", "context": {"groupId": "acct-direct"}})),
            (kafka_key("acme", "u-wait"), ENVELOPES.encode(Envelope("acme", "u-wait", [waiting]))),
            (None, orjson.dumps({"type": "track", "userId": "u-lonely",
                                 "event": "Logged In", "messageId": "l-1"})),
        ])
        await asyncio.sleep(0.5)
        await produce(topics.events, [(kafka_key("acme", "u-wait"), orjson.dumps({
            "type": "group", "userId": "u-wait", "groupId": "acct-wait",
            "messageId": "g-1"}))])

        def attributed(records: list[Record]) -> bool:
            ids = {e.message_id for e in _events(records)}
            return {"d-1", "w-1", "g-1"} <= ids

        records = await consume_until(topics.by_account, attributed, timeout=60)
        by_id = {e.message_id: e for e in _events(records)}
        assert (by_id["d-1"].account_id, by_id["d-1"].source) == ("acct-direct",
                                                                  Source.KAFKA)
        assert by_id["w-1"].account_id == "acct-wait"
        assert by_id["g-1"].account_id == "acct-wait"
        assert "l-1" not in by_id

        def both_dead(records: list[Record]) -> bool:
            reasons = {d["reason"] for d in _dead(records)}
            return {"not_json", "unattributed"} <= reasons

        dead = _dead(await consume_until(topics.events_dlq, both_dead, timeout=60))
        unattributed = [d for d in dead if d["reason"] == "unattributed"]
        assert [d["payload"]["id"] for d in unattributed] == ["l-1"]
        assert unattributed[0]["workspace"] == "acme"
        not_json = next(d for d in dead if d["reason"] == "not_json")
        assert not_json["payload_text"] == "\x00 not json"
    finally:
        await asyncio.to_thread(worker.stop)


async def test_anonymous_events_follow_identify_to_the_account_exactly_once(
    settings: Settings, tmp_path: Path, create_topics: Callable[..., Any],
    produce: Callable[..., Any], consume_until: Callable[..., Any]
) -> None:
    settings = settings.replace(write_keys="wk=acme", tick_interval=0.5)
    topics = settings.topics
    await create_topics(topics.events, topics.by_account, partitions=settings.partitions)
    await create_topics(topics.events_dlq)
    worker = await asyncio.to_thread(start_worker, settings, ["--module", "agents.resolve"],
                                     log_path=tmp_path / "worker.log", ready_timeout=180)
    anon, user = "anon-7", "u-7"
    try:
        await produce(topics.events, [(kafka_key("acme", anon), orjson.dumps({"batch": [
            {"type": "page", "anonymousId": anon, "name": "Pricing", "messageId": "p-1"},
            {"type": "track", "anonymousId": anon, "event": "Trial Started",
             "messageId": "t-1"},
        ]}))])
        await asyncio.sleep(0.5)
        await produce(topics.events, [(kafka_key("acme", user), orjson.dumps({"batch": [
            {"type": "identify", "userId": user, "anonymousId": anon, "messageId": "i-1"},
            {"type": "group", "userId": user, "groupId": "acct-7", "messageId": "g-1"},
        ]}))])

        def attributed(records: list[Record]) -> bool:
            return {"p-1", "t-1", "i-1", "g-1"} <= {e.message_id for e in _events(records)}

        await consume_until(topics.by_account, attributed, timeout=60)
        # Later events with only the anonymous id follow the link too.
        await produce(topics.events, [(kafka_key("acme", anon), orjson.dumps(
            {"type": "track", "anonymousId": anon, "event": "Report Published",
             "messageId": "t-2"}))])

        def forwarded(records: list[Record]) -> bool:
            return "t-2" in {e.message_id for e in _events(records)}

        await consume_until(topics.by_account, forwarded, timeout=60)
        await asyncio.sleep(2.0)  # room for a repeat to show up, if there were one
        events = _events(await consume_until(topics.by_account, forwarded, timeout=60))
        assert sorted(e.message_id for e in events) == ["g-1", "i-1", "p-1", "t-1", "t-2"]
        assert {(e.account_id, e.user_id) for e in events} == {("acct-7", user)}
        assert {e.anonymous_id for e in events if e.message_id != "g-1"} == {anon}
    finally:
        await asyncio.to_thread(worker.stop)

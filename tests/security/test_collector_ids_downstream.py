"""Ids with control characters inside a real worker: the collector refuses them and
counts them under ``bad_identity``; one produced straight onto the events topic, past
the collector, is refused by the resolve stage for the same reason (one id rule)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import pytest

from devstack.workers import WorkerProcess
from streams.envelope import ENVELOPES, Envelope, kafka_key
from streams.events import Event, EventType, Source
from streams.settings import Settings
from tests.security.harness import AUTH, KEY, track

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

_BAD_IDENTITY = re.compile(r'^telltale_events_dead_lettered_total\{reason="bad_identity"\} '
                           r"([0-9.e+]+)$", re.M)


async def test_bad_ids_are_refused_at_the_collector_and_again_by_resolve(
    settings: Settings, start_worker: Callable[..., WorkerProcess],
    produce: Callable[..., Any], consume_until: Callable[..., Any],
) -> None:
    config = settings.replace(write_keys=f"{KEY}=acme")
    worker = await asyncio.to_thread(start_worker, config)
    async with aiohttp.ClientSession() as session:
        async with session.post(worker.url + "/v1/batch", headers={"Authorization": AUTH},
                                data=orjson.dumps({"batch": [
                                    track(1, user="u\x1f1"), track(2, user="u\u202e"),
                                    track(3, context={"groupId": "acct\n1"}),
                                    track(4)]})) as reply:
            answer = orjson.loads(await reply.read())
        assert (reply.status, answer["accepted"], answer["rejected"]) == (200, 1, 3)
        async with session.get(worker.metrics_url + "/metrics") as reply:
            exposition = await reply.text()
    counted = _BAD_IDENTITY.search(exposition)
    assert counted is not None and float(counted.group(1)) == 3, exposition[-2000:]

    topics = config.topics
    # Past the collector: a direct producer's Segment JSON, and an envelope in wire form
    # that no normaliser ever saw.
    forged = Event("acme", "f-1", EventType.TRACK, 1_700_000_000.0, 1_700_000_000.0,
                   Source.SEGMENT, name="x", user_id="u\nforged")
    await produce(topics.events, [
        (None, orjson.dumps({"type": "track", "userId": "u\x00direct", "event": "x",
                             "messageId": "d-1"})),
        (kafka_key("acme", "u\nforged"), ENVELOPES.encode(Envelope("acme", "u\nforged", [forged]))),
    ])

    def three_and_two(records: list[Any]) -> bool:
        return len(records) >= 5

    dead = [orjson.loads(r.value) for r in
            await consume_until(topics.events_dlq, three_and_two, timeout=90)]
    by_stage = sorted((d["source"], d["reason"]) for d in dead)
    assert by_stage == [("kafka", "bad_identity"), ("segment", "bad_identity"),
                        ("segment", "bad_identity"), ("segment", "bad_identity"),
                        ("segment", "bad_identity")], dead

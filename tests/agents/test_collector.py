"""The HTTP collector against a real Kafka broker and a real Redis."""

from __future__ import annotations

import asyncio
import base64
import gzip
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from agents.collector import Collector, CollectorLimits, create_collector_app
from devstack.process import free_port
from devstack.topics import Record
from streams.envelope import ENVELOPES, Envelope, KeyPartitions, kafka_key
from streams.settings import Settings

pytestmark = pytest.mark.integration

KEY = "wk-acme"


@dataclass
class Served:
    url: str
    collector: Collector
    settings: Settings

    async def post(self, path: str, body: Any, *, key: str | None = KEY,
                   headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], Any]:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if key is not None:
            all_headers["Authorization"] = "Basic " + base64.b64encode(
                f"{key}:".encode()).decode()
        async with aiohttp.ClientSession() as session, session.post(
                self.url + path, data=raw, headers=all_headers) as response:
            text = await response.read()
            return response.status, dict(response.headers), orjson.loads(text)


async def _serve(settings: Settings, limits: CollectorLimits | None = None
                 ) -> tuple[web.AppRunner, Served]:
    collector = Collector(settings, limits)
    runner = web.AppRunner(create_collector_app(settings, collector))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, Served(f"http://127.0.0.1:{port}", collector, settings)


@pytest.fixture
async def served(settings: Settings, create_topics: Callable[..., Any]
                 ) -> AsyncIterator[Served]:
    settings = settings.replace(write_keys=f"{KEY}=acme,wk-other=other")
    await create_topics(settings.topics.events, settings.topics.events_dlq,
                        partitions=settings.partitions)
    runner, server = await _serve(settings)
    try:
        yield server
    finally:
        await runner.cleanup()


def _track(i: int, user: str = "u1", **extra: Any) -> dict[str, Any]:
    return {"type": "track", "messageId": f"m-{i}", "userId": user,
            "event": "Report Published", "timestamp": "2024-05-01T10:00:00Z", **extra}


def _envelopes(records: list[Record]) -> list[Envelope]:
    out = []
    for record in records:
        decoded = ENVELOPES.decode(record.value)
        assert isinstance(decoded, Envelope)
        out.append(decoded)
    return out


def _event_count(records: list[Record]) -> int:
    return sum(len(e.events) for e in _envelopes(records))


async def test_batch_is_grouped_by_user_and_bad_messages_are_dead_lettered(
    served: Served, consume_until: Callable[..., Any]
) -> None:
    batch = [_track(1), _track(2), _track(3, user="u2"),
             {"type": "track", "messageId": "bad", "event": "x"}]
    status, _, body = await served.post("/v1/batch", {"batch": batch,
                                                      "sentAt": "2024-05-01T10:00:00Z"})
    assert status == 200
    assert (body["accepted"], body["rejected"]) == (3, 1)

    topics = served.settings.topics
    records = await consume_until(topics.events, lambda rs: _event_count(rs) >= 3)
    events = [e for envelope in _envelopes(records) for e in envelope.events]
    assert [e.message_id for e in events if e.user_id == "u1"] == ["m-1", "m-2"]
    assert [e.message_id for e in events if e.user_id == "u2"] == ["m-3"]
    assert all(e.workspace == "acme" for e in events)

    dead = await consume_until(topics.events_dlq, lambda rs: len(rs) >= 1)
    record = orjson.loads(dead[0].value)
    assert record["reason"] == "missing_identity"
    assert record["payload"] == batch[3]
    assert record["source"] == "segment"
    assert record["workspace"] == "acme"


async def test_concurrent_requests_share_messages_and_each_person_keeps_its_partition(
    served: Served, consume_until: Callable[..., Any]
) -> None:
    """Group commit: 40 requests at once, 8 people each, make far fewer than 320
    messages; every event arrives once, in its person's partition, in request order."""
    people = [f"p{n}" for n in range(24)]

    def batch(r: int) -> dict[str, Any]:
        return {"batch": [_track(r * 100 + i, user=people[(r + i) % len(people)])
                          for i in range(8)]}

    replies = await asyncio.gather(*(served.post("/v1/batch", batch(r)) for r in range(40)))
    assert all(status == 200 and body["accepted"] == 8 for status, _, body in replies)

    records = await consume_until(served.settings.topics.events,
                                  lambda rs: _event_count(rs) >= 320)
    assert len(records) < 40 * 8 / 2
    partition_of = KeyPartitions(served.settings.partitions)
    arrived: dict[str, list[str]] = {}
    for record in records:
        envelope = ENVELOPES.decode(record.value)
        assert isinstance(envelope, Envelope)
        for event in envelope.events:
            assert event.user_id is not None
            assert partition_of(kafka_key("acme", event.user_id)) == record.partition
            arrived.setdefault(event.user_id, []).append(event.message_id)
    assert sum(map(len, arrived.values())) == 320
    for person, ids in arrived.items():
        assert len(set(ids)) == len(ids), person
        # Requests were all in flight at once, so only each request's own order holds.
        for r in range(40):
            mine = [i for i in ids if int(i[2:]) // 100 == r]
            assert mine == sorted(mine, key=lambda i: int(i[2:])), person


async def test_retried_batch_is_accepted_once(served: Served) -> None:
    batch = {"batch": [_track(1), _track(2)]}
    first = await served.post("/v1/batch", batch)
    again = await served.post("/v1/batch", batch)
    assert (first[0], first[2]["accepted"]) == (200, 2)
    assert (again[0], again[2]["accepted"], again[2]["duplicates"]) == (200, 0, 2)
    # Another workspace may reuse the same ids.
    other = await served.post("/v1/batch", batch, key="wk-other")
    assert other[2]["accepted"] == 2


async def test_failed_produce_does_not_mark_ids_seen(served: Served) -> None:
    served.collector.inject_fault("error_before")
    failed = await served.post("/v1/batch", {"batch": [_track(7)]})
    assert failed[0] == 500
    retried = await served.post("/v1/batch", {"batch": [_track(7)]})
    assert (retried[0], retried[2]["accepted"]) == (200, 1)


async def test_keys_from_body_and_posthog(served: Served) -> None:
    status, _, body = await served.post("/v1/batch", {"batch": [_track(1)],
                                                      "writeKey": KEY}, key=None)
    assert (status, body["accepted"]) == (200, 1)
    status, _, body = await served.post("/batch/", {
        "api_key": KEY, "sent_at": "2024-05-01T10:00:00Z",
        "batch": [{"event": "Logged In", "distinct_id": "u1", "uuid": "p-1",
                   "properties": {"$groups": {"company": "acct-1"}}}]}, key=None)
    assert (status, body["accepted"]) == (200, 1)
    status, _, _ = await served.post("/capture/", {"api_key": KEY, "event": "Logged In",
                                                   "distinct_id": "u1", "uuid": "p-2"},
                                     key=None)
    assert status == 200


@pytest.mark.parametrize("key", [None, "nope"])
async def test_unknown_or_missing_key_is_401(served: Served, key: str | None) -> None:
    status, _, _ = await served.post("/v1/batch", {"batch": [_track(1)]}, key=key)
    assert status == 401


@pytest.mark.parametrize("body", [b"{not json", b"[1,2]", b'{"batch": 5}', b'"x"', b""])
async def test_not_json_or_not_a_batch_is_400(served: Served, body: bytes) -> None:
    status, _, _ = await served.post("/v1/batch", body)
    assert status == 400


async def test_single_calls_take_their_type_from_the_path(
    served: Served, consume_until: Callable[..., Any]
) -> None:
    status, _, _ = await served.post("/v1/group", {"userId": "u9", "groupId": "acct-9",
                                                   "messageId": "g-9",
                                                   "traits": {"name": "Nine"}})
    assert status == 200
    records = await consume_until(served.settings.topics.events,
                                  lambda rs: _event_count(rs) >= 1)
    (event,) = _envelopes(records)[0].events
    assert (event.type.value, event.account_id, event.user_id) == ("group", "acct-9", "u9")


async def test_size_limits_are_413(served: Served) -> None:
    big_batch = {"batch": [_track(i, properties={"pad": "x" * 20_000}) for i in range(30)]}
    assert (await served.post("/v1/batch", big_batch))[0] == 413
    big_call = _track(1, properties={"pad": "x" * 40_000})
    assert (await served.post("/v1/track", big_call))[0] == 413
    # Inside a batch, one oversized message is dead-lettered and the rest accepted.
    status, _, body = await served.post("/v1/batch", {"batch": [big_call, _track(2)]})
    assert (status, body["accepted"], body["rejected"]) == (200, 1, 1)


async def test_gzip_and_deflate_bodies_are_read_with_a_bound(served: Served) -> None:
    raw = orjson.dumps({"batch": [_track(1), _track(2)]})
    status, _, body = await served.post("/v1/batch", gzip.compress(raw),
                                        headers={"Content-Encoding": "gzip"})
    assert (status, body["accepted"]) == (200, 2)
    status, _, body = await served.post("/v1/batch", zlib.compress(
        orjson.dumps({"batch": [_track(3)]})), headers={"Content-Encoding": "deflate"})
    assert (status, body["accepted"]) == (200, 1)
    bomb = gzip.compress(b'{"batch": ["' + b"a" * 5_000_000 + b'"]}')
    assert len(bomb) < 100_000
    assert (await served.post("/v1/batch", bomb,
                              headers={"Content-Encoding": "gzip"}))[0] == 413
    assert (await served.post("/v1/batch", b"\x1f\x8bnot gzip",
                              headers={"Content-Encoding": "gzip"}))[0] == 400


async def test_back_pressure_is_429_with_retry_after(settings: Settings) -> None:
    settings = settings.replace(write_keys=f"{KEY}=acme")
    runner, server = await _serve(settings, CollectorLimits(max_inflight_bytes=100))
    try:
        status, headers, _ = await server.post("/v1/batch", {"batch": [_track(1)] * 3})
        assert status == 429
        assert headers["Retry-After"] == "1"
    finally:
        await runner.cleanup()


async def test_write_key_may_be_the_basic_auth_password(served: Served) -> None:
    header = "Basic " + base64.b64encode(f":{KEY}".encode()).decode()
    status, _, body = await served.post("/v1/batch", {"batch": [_track(1)]}, key=None,
                                        headers={"Authorization": header})
    assert (status, body["accepted"]) == (200, 1)


async def test_unreachable_kafka_or_redis_is_503_with_retry_after(settings: Settings) -> None:
    dead = free_port()
    for broken in ({"broker": f"kafka://127.0.0.1:{dead}"},
                   {"redis_url": f"redis://127.0.0.1:{dead}/0"}):
        config = settings.replace(write_keys=f"{KEY}=acme", **broken)
        collector = Collector(config)
        runner = web.AppRunner(web.Application())
        runner.app.add_routes(collector.routes())
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            server = Served(f"http://127.0.0.1:{port}", collector, config)
            status, headers, _ = await server.post("/v1/batch", {"batch": [_track(1)]})
            assert status == 503, broken
            assert headers["Retry-After"] == "1"
        finally:
            await runner.cleanup()
            await collector.stop()

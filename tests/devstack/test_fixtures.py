"""The shared fixtures give every test a live broker and Redis, and isolated names."""

from __future__ import annotations

import pytest
import redis.asyncio as redis_asyncio

from devstack.topics import json_values
from streams.kafka_admin import topic_partitions
from streams.settings import Settings

pytestmark = pytest.mark.integration


async def test_round_trip_through_the_session_broker(
    kafka_bootstrap: str, unique_prefix: str, create_topics, produce, consume_until
) -> None:
    topic = f"{unique_prefix}.round-trip"
    await create_topics(topic, partitions=3)
    assert await topic_partitions(kafka_bootstrap, topic) == 3

    sent = await produce(topic, [(f"acct-{i}", {"n": i}) for i in range(30)])
    records = await consume_until(topic, lambda rs: len(rs) >= 30, timeout=30)

    assert sent == 30
    assert sorted(v["n"] for v in json_values(records)) == list(range(30))
    assert {r.partition for r in records} == {0, 1, 2}  # keys spread over partitions


async def test_consume_until_gives_up_with_what_it_saw(
    unique_prefix: str, create_topics, produce, consume_until
) -> None:
    topic = f"{unique_prefix}.never"
    await create_topics(topic)
    await produce(topic, [(None, b"only-one")])
    with pytest.raises(TimeoutError, match="only-one"):
        await consume_until(topic, lambda rs: len(rs) >= 2, timeout=2)


async def test_redis_answers(redis_url: str, unique_prefix: str) -> None:
    client = redis_asyncio.from_url(redis_url)
    try:
        await client.set(f"{unique_prefix}:k", "v")
        assert await client.get(f"{unique_prefix}:k") == b"v"
    finally:
        await client.aclose()


def test_settings_point_at_the_session_servers(
    settings: Settings, kafka_bootstrap: str, redis_url: str, unique_prefix: str
) -> None:
    assert settings.kafka_bootstrap == kafka_bootstrap
    assert settings.redis_url == redis_url
    assert settings.topics.events == f"{unique_prefix}.events"
    assert settings.app_id == unique_prefix
    settings.validate()


def test_unique_prefixes_differ(unique_prefix: str) -> None:
    assert unique_prefix.startswith("t") and len(unique_prefix) == 11

"""A message id is only *seen* once Kafka has its events: a retry racing its original,
or one sent after the original's worker died between marking and producing, is never
answered "duplicate" for events that are not in Kafka."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
from redis import asyncio as aioredis

from agents.collector import FAULT_ENV
from devstack.workers import WorkerProcess
from streams.envelope import ENVELOPES, Envelope
from streams.settings import Settings
from tests.security.harness import AUTH, KEY, Live, read_all, track


async def _wait_pending(redis_url: str, key: str, timeout: float = 60) -> None:
    """Until ``key`` holds a pending mark (the request is between mark and produce)."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + timeout
        while not (await client.get(key) or b"").startswith(b"p:"):
            assert time.monotonic() < deadline, f"{key} never marked pending"
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()


async def test_a_retry_while_the_original_is_in_flight_is_503_not_duplicate(
    live: Live, redis_url: str
) -> None:
    batch = {"batch": [track(1), track(2), track(3)]}
    live.collector.inject_fault("delay_after_mark", delay=3.0)
    first = asyncio.ensure_future(live.send("/v1/batch", batch))
    await _wait_pending(redis_url, f"{live.settings.topic_prefix}:dedup:acme:m-1")

    racing = await live.send("/v1/batch", {"batch": [*batch["batch"], track(9)]})
    assert racing.status == 503, racing
    assert racing.headers["Retry-After"] == "1"
    answer = await first
    assert (answer.status, answer.body["accepted"]) == (200, 3), answer

    # The racing attempt released what it had marked (m-9), so its retry takes it.
    retry = await live.send("/v1/batch", {"batch": [*batch["batch"], track(9)]})
    assert (retry.status, retry.body["accepted"], retry.body["duplicates"]) == (200, 1, 3)
    ids = Counter(event.message_id for event in await live.events())
    assert ids == {"m-1": 1, "m-2": 1, "m-3": 1, "m-9": 1}


async def _post_until_accepted(url: str, body: bytes, timeout: float = 120
                               ) -> tuple[dict[str, Any], Counter[int]]:
    """What an SDK does: retry 503s (after Retry-After) until the batch is accepted."""
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            assert time.monotonic() < deadline, f"not accepted in {timeout} s: {statuses}"
            try:
                async with session.post(url + "/v1/batch", data=body, headers={
                        "Authorization": AUTH, "Content-Type": "application/json"}) as reply:
                    statuses[reply.status] += 1
                    if reply.status == 200:
                        return orjson.loads(await reply.read()), statuses
                    assert reply.status == 503, reply.status
                    await asyncio.sleep(float(reply.headers["Retry-After"]))
            except aiohttp.ClientConnectionError:
                statuses[0] += 1
                await asyncio.sleep(0.5)


async def test_a_worker_killed_between_mark_and_produce_loses_nothing(
    settings: Settings, start_worker: Callable[..., WorkerProcess], redis_url: str,
    kafka_bootstrap: str,
) -> None:
    # Pending marks outlive the restart, so the retry first meets the dead attempt's
    # marks (503) and is accepted once they expire.
    config = settings.replace(write_keys=f"{KEY}=acme", dedup_pending_seconds=30)
    doomed = start_worker(config, env={FAULT_ENV: "delay_after_mark:600"})
    batch = orjson.dumps({"batch": [track(i, user=f"u{i}") for i in range(5)]})
    url = doomed.url

    async def first_attempt() -> None:
        async with aiohttp.ClientSession() as session:
            await session.post(url + "/v1/batch", data=batch, headers={
                "Authorization": AUTH, "Content-Type": "application/json"})

    attempt = asyncio.ensure_future(first_attempt())
    await _wait_pending(redis_url, f"{config.topic_prefix}:dedup:acme:m-0")
    os.killpg(doomed.process.pid, signal.SIGKILL)
    try:
        await attempt
    except aiohttp.ClientError:
        pass  # the connection died with the worker: the SDK will retry
    else:
        raise AssertionError("the first attempt got an answer from a killed worker")

    start_worker(config)
    reply, statuses = await _post_until_accepted(url, batch)
    print(f"\nretries after the crash: {dict(statuses)}")
    assert (reply["accepted"], reply["duplicates"]) == (5, 0), (reply, statuses)
    again, _ = await _post_until_accepted(url, batch)
    assert (again["accepted"], again["duplicates"]) == (0, 5)

    ids: Counter[str] = Counter()
    for record in await read_all(kafka_bootstrap, config.topics.events):
        envelope = ENVELOPES.decode(record.value)
        if isinstance(envelope, Envelope) and envelope.workspace == "acme":
            ids.update(event.message_id for event in envelope.events)
    assert ids == {f"m-{i}": 1 for i in range(5)}

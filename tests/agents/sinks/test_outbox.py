"""A delivery interrupted by a dead worker is picked up by another one: the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from agents.notify import Notifier
from agents.sinks.dispatch import Job
from agents.sinks.outbox import Outbox
from agents.sinks.routing import NotificationConfig
from state.readmodel import ReadModel
from streams.settings import Settings
from tests.fakes.changes import make_change
from tests.fakes.http import RecordingServer

pytestmark = pytest.mark.integration


class Switch:
    """Answers 503 until turned on."""

    def __init__(self) -> None:
        self.up = False

    def __call__(self, request: Any) -> tuple[int, dict[str, str], bytes]:
        return (200, {}, b"ok") if self.up else (503, {}, b"down")


@pytest.fixture
async def hook() -> AsyncIterator[tuple[RecordingServer, Switch]]:
    switch = Switch()
    server = await RecordingServer(switch).start()
    yield server, switch
    await server.stop()


def notifier(redis_url: str, prefix: str, url: str, backoff: float,
             dead: list[dict[str, Any]] | None = None) -> Notifier:
    """A notifier webhooking every change to ``url``; its dead letters go to ``dead``."""
    settings = Settings(redis_url=redis_url, topic_prefix=prefix)
    config = NotificationConfig.from_dict({
        "webhooks": [{"name": "ops", "url": url, "secret": "s"}],
        "delivery": {"backoff_seconds": backoff, "max_backoff_seconds": backoff,
                     "max_attempts": 50},
    })
    dead = [] if dead is None else dead

    async def dead_letter(record: dict[str, Any]) -> None:
        dead.append(record)

    return Notifier(settings, config, ReadModel.from_settings(settings), dead_letter)


@pytest.fixture
async def pair(redis_url: str, unique_prefix: str, hook: tuple[RecordingServer, Switch]
               ) -> AsyncIterator[tuple[Notifier, Notifier]]:
    """Two notifiers webhooking to ``hook``: the first waits 30 s before each retry, so
    what it fails to deliver stays unfinished; the second retries at once."""
    server, _ = hook
    first = notifier(redis_url, unique_prefix, server.url, backoff=30.0)
    second = notifier(redis_url, unique_prefix, server.url, backoff=0.01)
    yield first, second
    for n in (second, first):
        await n.close()  # again, if the test stopped it itself: closing twice is cheap
    await cleanup(second, first)


async def cleanup(*notifiers: Notifier) -> None:
    first = notifiers[0]
    await first.readmodel.clear()
    keys = [k async for k in first.redis.scan_iter(match=f"{first.prefix}:notify:*")]
    if keys:
        await first.redis.delete(*keys)
    for n in notifiers:
        await n.readmodel.close()


async def test_claim_is_all_or_nothing(redis_url: str, unique_prefix: str) -> None:
    model = ReadModel.from_url(redis_url, unique_prefix)
    outbox = Outbox(model.redis, unique_prefix)
    job = Job("webhook:ops", "change", {"id": "c1"}, "c1")
    assert await outbox.claim(f"{unique_prefix}:notify:seen:c1", 60, [job])
    assert job.outbox_field is not None
    again = Job("webhook:ops", "change", {"id": "c1"}, "c1")
    assert not await outbox.claim(f"{unique_prefix}:notify:seen:c1", 60, [again])
    assert await model.redis.hlen(outbox.key) == 1
    await outbox.done(job)
    assert await model.redis.hlen(outbox.key) == 0
    await model.redis.delete(f"{unique_prefix}:notify:seen:c1",
                             outbox.owner_prefix + outbox.owner)
    await model.close()


async def test_a_dead_workers_deliveries_are_finished_by_another(
        hook: tuple[RecordingServer, Switch], pair: tuple[Notifier, Notifier]) -> None:
    server, switch = hook
    crashed, survivor = pair
    change = make_change()
    assert await crashed.handle(orjson.dumps(change)) == "notified"
    await server.wait_for(1, accepted=False)  # first attempt failed; now backing off
    # The survivor does not touch the work of a live notifier.
    assert await survivor.recover() == 0
    # The worker dies: its tasks stop and its heartbeat lapses.
    for task in crashed.dispatcher._workers.values():
        task.cancel()
    await crashed.redis.delete(crashed.outbox.owner_prefix + crashed.outbox.owner)
    switch.up = True
    assert await crashed.handle(orjson.dumps(change)) == "duplicate"  # Kafka redelivery
    assert await survivor.recover() == 1
    await server.wait_for(1)
    await survivor.dispatcher.drain(10)
    assert [r.headers["X-Telltale-Change-Id"] for r in server.accepted()] == [change["id"]]
    assert await survivor.redis.hlen(survivor.outbox.key) == 0
    assert await survivor.recover() == 0


async def test_a_clean_stop_hands_unfinished_deliveries_over_at_once(
        hook: tuple[RecordingServer, Switch], pair: tuple[Notifier, Notifier]) -> None:
    server, switch = hook
    stopping, other = pair
    changes = [make_change(account_id=f"a{i}") for i in range(3)]
    for change in changes:
        await stopping.handle(orjson.dumps(change))
    await server.wait_for(1, accepted=False)
    await asyncio.wait_for(stopping.close(), 15)
    switch.up = True
    assert await other.recover() == 3
    await server.wait_for(3)
    await other.dispatcher.drain(10)
    assert sorted(r.headers["X-Telltale-Change-Id"] for r in server.accepted()) == sorted(
        c["id"] for c in changes)


async def test_an_adopted_copy_that_no_longer_decodes_is_dead_lettered_not_sent(
        redis_url: str, unique_prefix: str, hook: tuple[RecordingServer, Switch]) -> None:
    """The durable copy comes back from Redis, which is trusted no more than Kafka: it is
    decoded again, and one that was tampered with reaches no receiver."""
    server, switch = hook
    switch.up = True
    dead: list[dict[str, Any]] = []
    survivor = notifier(redis_url, unique_prefix, server.url, backoff=0.01, dead=dead)
    gone = Outbox(survivor.redis, unique_prefix, owner="gone")
    forged = {**make_change(), "current": {"score": 101}}
    job = Job("webhook:ops", "change", forged, str(forged["id"]))
    try:
        assert await gone.claim(f"{unique_prefix}:notify:seen:{forged['id']}", 60, [job])
        await survivor.redis.delete(gone.owner_prefix + gone.owner)
        assert await survivor.recover() == 1
        await survivor.dispatcher.drain(10)
        assert server.requests == []
        (letter,) = dead
        assert letter["destination"] == "webhook:ops"
        assert "holds no valid health change" in letter["reason"]
    finally:
        await survivor.close()
        await cleanup(survivor)

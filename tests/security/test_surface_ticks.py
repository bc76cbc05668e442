"""Clock ticks on the by-account topic are validated as if anyone could write them: one
forged far in the future must not make a partition's accounts look inactive."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from typing import Any

import orjson

from agents.resolve import Resolver
from devstack.workers import WorkerProcess
from state.keyed import MemoryState
from streams.dlq import DEAD_LETTERS
from streams.envelope import (
    ENVELOPES,
    Envelope,
    KeyPartitions,
    Tick,
    kafka_key,
)
from streams.events import Event, EventType, Source
from streams.settings import Settings

WORKSPACE, ACCOUNT = "acme", "acc-1"
YEAR = 365 * 86400.0


def _events(now: float) -> list[Event]:
    group = Event(workspace=WORKSPACE, message_id="g1", type=EventType.GROUP, timestamp=now,
                  received_at=now, source=Source.KAFKA, user_id="dana", account_id=ACCOUNT,
                  traits={"name": "Acme", "seats": 3})
    active = [Event(workspace=WORKSPACE, message_id=f"t{i}", type=EventType.TRACK,
                    timestamp=now + i, received_at=now + i, source=Source.KAFKA,
                    name="Report Published", user_id="dana", account_id=ACCOUNT)
              for i in range(5)]
    return [group, *active]


def _dead_lettered(metrics_url: str, reason: str) -> float:
    with urllib.request.urlopen(metrics_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    prefix = f'telltale_events_dead_lettered_total{{reason="{reason}"}} '
    return sum(float(line.removeprefix(prefix)) for line in text.splitlines()
               if line.startswith(prefix))


def _changes_of_account(records: list[Any]) -> list[dict[str, Any]]:
    changes = [orjson.loads(r.value) for r in records]
    return [c for c in changes if c.get("account_id") == ACCOUNT]


async def test_a_forged_future_tick_changes_nothing_and_is_counted(
        settings: Settings, start_worker: Callable[..., WorkerProcess],
        produce: Any, consume_until: Any) -> None:
    live = settings.replace(replay=False)
    topics = live.topics
    worker = start_worker(live, "--module", "agents.score", "--module", "agents.lag")
    key = kafka_key(WORKSPACE, ACCOUNT)
    partition = KeyPartitions(live.partitions)(key)
    now = time.time()
    batch = ENVELOPES.encode(Envelope(WORKSPACE, ACCOUNT, _events(now)))
    await produce(topics.by_account, [(key, batch)], partition=partition)
    first = await consume_until(topics.health_changes,
                                lambda rs: bool(_changes_of_account(rs)), timeout=60)
    before = len(_changes_of_account(first))

    forged = now + YEAR
    await produce(topics.by_account, [(None, ENVELOPES.encode(Tick(forged, partition)))],
                  partition=partition)
    dead = await consume_until(
        topics.events_dlq,
        lambda rs: any(DEAD_LETTERS.decode(r.value)["reason"] == "tick_out_of_bounds"
                       for r in rs), timeout=60)
    (letter,) = [DEAD_LETTERS.decode(r.value) for r in dead
                 if DEAD_LETTERS.decode(r.value)["reason"] == "tick_out_of_bounds"]
    assert orjson.loads(letter["payload_text"])["now"] == forged
    assert _dead_lettered(worker.metrics_url, "tick_out_of_bounds") == 1.0

    # A year of silence would start inactivity signals and drop the band; the clamped tick
    # leaves the clock within the tolerance of the wall clock, so nothing changes. The
    # leader's own ticks keep coming meanwhile (every 0.5 s) and change nothing either.
    try:
        more = await consume_until(topics.health_changes,
                                   lambda rs: len(_changes_of_account(rs)) > before,
                                   timeout=10)
    except TimeoutError:
        return
    changed = _changes_of_account(more)[before:]
    raise AssertionError(f"the forged tick changed the account: {changed}")


def test_a_forged_tick_on_the_events_topic_expires_no_hold() -> None:
    settings = Settings(topic_prefix="t", partitions=2, write_keys="wk=acme",
                        resolve_hold_seconds=600.0)
    store = MemoryState()
    wall = 1_800_000_000.0
    resolver = Resolver(settings, store, now=lambda: wall)
    person = "dana"
    partition = resolver.owner_partition(WORKSPACE, person)
    held = Event(workspace=WORKSPACE, message_id="e1", type=EventType.TRACK, timestamp=wall,
                 received_at=wall, source=Source.SEGMENT, name="Logged In", user_id=person)
    assert resolver.process(kafka_key(WORKSPACE, person),
                            ENVELOPES.encode(Envelope(WORKSPACE, person, [held])), partition,
                            wall) == []

    out = resolver.process(None, ENVELOPES.encode(Tick(wall + YEAR, partition)), partition, wall)
    reasons = [DEAD_LETTERS.decode(o.value)["reason"] for o in out
               if o.topic == settings.topics.events_dlq]
    assert reasons == ["tick_out_of_bounds"], "counted, and the held event still waits"
    # The hold (600 s) is still released to the account its group call names.
    group = Event(workspace=WORKSPACE, message_id="g1", type=EventType.GROUP, timestamp=wall,
                  received_at=wall, source=Source.SEGMENT, user_id=person, account_id=ACCOUNT)
    out = resolver.process(kafka_key(WORKSPACE, person),
                           ENVELOPES.encode(Envelope(WORKSPACE, person, [group])), partition, wall)
    released = [orjson.loads(o.value) for o in out if o.topic == settings.topics.by_account]
    assert sorted(e["id"] for m in released for e in m["events"]) == ["e1", "g1"]

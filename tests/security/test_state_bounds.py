"""Every state record is bounded in bytes where it is written: an account with huge
traits or thousands of long-named users, or a person with many large held events, never
makes a changelog record Kafka would refuse (which would stop a partition every
workspace shares). What does not fit is shed or dead-lettered, and the partition goes on."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from typing import Any

import orjson

from devstack.workers import WorkerProcess
from state.aggregates import AccountState, UserSummary, shed_users
from streams.dlq import DEAD_LETTERS
from streams.envelope import ENVELOPES, Envelope, KeyPartitions, kafka_key
from streams.events import Event, EventType, Source
from streams.settings import Settings

WORKSPACE = "demo"
LIMIT = 64 * 1024
LONG = "Ximena-Alejandra " * 8  # 136 characters of a person's name


def test_shedding_drops_the_least_recently_active_users_deterministically() -> None:
    account = AccountState(WORKSPACE, "acc")
    for i in range(400):
        account.users[f"u{i:03d}"] = UserSummary(name=LONG, last_seen=1_000.0 + i % 50)
    shed = shed_users(account, 16 * 1024)
    assert len(account.to_bytes()) <= 16 * 1024
    assert shed and len(shed) + len(account.users) == 400
    kept_oldest = min((s.last_seen or 0.0, uid) for uid, s in account.users.items())
    assert all((1_000.0 + int(uid[1:]) % 50, uid) < kept_oldest for uid in shed)
    again = AccountState(WORKSPACE, "acc")
    for i in range(400):
        again.users[f"u{i:03d}"] = UserSummary(name=LONG, last_seen=1_000.0 + i % 50)
    assert shed_users(again, 16 * 1024) == shed, "replay and live shed the same users"


def _event(mid: str, account: str | None, user: str, ts: float, type_: EventType,
           **fields: Any) -> Event:
    return Event(workspace=WORKSPACE, message_id=mid, type=type_, timestamp=ts,
                 received_at=ts, source=Source.KAFKA, user_id=user, account_id=account,
                 **fields)


def _accounts_in(partition: int, partitions: int, count: int) -> list[str]:
    owner = KeyPartitions(partitions)
    found = [f"acc-{i}" for i in range(1000)
             if owner(kafka_key(WORKSPACE, f"acc-{i}")) == partition]
    return found[:count]


def _metric(metrics_url: str, sample: str) -> float:
    with urllib.request.urlopen(metrics_url + "/metrics", timeout=10) as response:
        lines = response.read().decode().splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(sample + " "))


async def test_oversized_state_is_shed_or_dead_lettered_and_the_partition_goes_on(
        settings: Settings, start_worker: Callable[..., WorkerProcess],
        produce: Any, consume_until: Any) -> None:
    bounded = settings.replace(state_record_max_bytes=LIMIT, replay=True)
    topics = bounded.topics
    worker = start_worker(bounded, "--module", "agents.resolve", "--module", "agents.score",
                          "--module", "agents.lag")
    crowd, huge, steady = _accounts_in(0, bounded.partitions, 3)
    t0 = 1_790_000_000.0

    # 2,000 users with long names, 50 to a message, as resolve would send them.
    crowd_messages = []
    for batch in range(40):
        events = []
        for i in range(batch * 50, batch * 50 + 50):
            user = f"user-{i:04d}@crowd.example"
            ts = t0 + i
            events.append(_event(f"c-i{i}", crowd, user, ts, EventType.IDENTIFY,
                                 traits={"name": LONG, "email": user}))
            events.append(_event(f"c-t{i}", crowd, user, ts, EventType.TRACK,
                                 name="Report Published"))
        crowd_messages.append((kafka_key(WORKSPACE, crowd),
                               ENVELOPES.encode(Envelope(WORKSPACE, crowd, events))))
    # An account whose traits alone are larger than a record may be.
    huge_traits = {"name": "A" * (LIMIT * 2), "seats": 10}
    huge_message = (kafka_key(WORKSPACE, huge), ENVELOPES.encode(Envelope(WORKSPACE, huge, [
        _event("h-g", huge, "hugo", t0 + 10, EventType.GROUP, traits=huge_traits)])))
    steady_message = (kafka_key(WORKSPACE, steady), ENVELOPES.encode(Envelope(WORKSPACE, steady, [
        _event("s-g", steady, "sam", t0 + 3000, EventType.GROUP,
               traits={"name": "Steady", "seats": 5}),
        _event("s-t", steady, "sam", t0 + 3001, EventType.TRACK, name="Report Published")])))
    await produce(topics.by_account, [*crowd_messages, huge_message, steady_message],
                  partition=0)

    # A person with no account yet, with large events held for them.
    ghost = "ghost@nowhere.example"
    blob = {"notes": "n" * 4000}
    held = [_event(f"g-{i:02d}", None, ghost, t0 + i, EventType.TRACK, name="Report Published",
                   properties=blob) for i in range(40)]
    for start in range(0, 40, 10):
        batch = Envelope(WORKSPACE, ghost, held[start:start + 10])
        await produce(topics.events, [(kafka_key(WORKSPACE, ghost), ENVELOPES.encode(batch))])

    changes = await consume_until(
        topics.health_changes,
        lambda rs: any(orjson.loads(r.value).get("account_id") == steady for r in rs),
        timeout=120)
    assert any(orjson.loads(r.value).get("account_id") == crowd for r in changes)

    def letters(records: list[Any]) -> list[dict[str, Any]]:
        return [d for d in map(DEAD_LETTERS.decode, (r.value for r in records))
                if d["reason"] == "state_record_too_large"]

    def complete(records: list[Any]) -> bool:
        found = letters(records)
        return (any(d.get("payload", {}).get("account_id") == huge for d in found)
                and any(str(d.get("message_id", "")).startswith("g-") for d in found))

    dead = letters(await consume_until(topics.events_dlq, complete, timeout=60))
    (refused,) = [d for d in dead if d.get("payload", {}).get("account_id") == huge]
    assert refused["payload"]["events"] == ["h-g"] and refused["workspace"] == WORKSPACE
    # A dead letter names its event's id whatever part of the event it could keep.
    shed_held = [d["message_id"] for d in dead if d.get("message_id", "").startswith("g-")]
    assert shed_held == sorted(shed_held) and shed_held[0] == "g-00", "the oldest go first"

    # The rest is released, within the bound, once the group call names the account.
    await produce(topics.events, [(kafka_key(WORKSPACE, ghost), ENVELOPES.encode(Envelope(
        WORKSPACE, ghost, [_event("g-group", steady, ghost, t0 + 50, EventType.GROUP)])))])

    def released(records: list[Any]) -> list[str]:
        ids = []
        for record in records:
            message = ENVELOPES.decode(record.value)
            ids += [e.message_id for e in getattr(message, "events", [])
                    if e.user_id == ghost]
        return ids

    out = await consume_until(topics.by_account, lambda rs: "g-group" in released(rs),
                              timeout=60)
    kept = [i for i in released(out) if i != "g-group"]
    assert kept and set(kept).isdisjoint(shed_held)
    # Shed as each batch arrived: read every dead letter written by now, not only the
    # first ones the wait above saw.
    wanted = {e.message_id for e in held} - set(kept)
    everything = letters(await consume_until(
        topics.events_dlq, lambda rs: wanted <= {str(d.get("message_id", ""))
                                                 for d in letters(rs)}, timeout=60))
    shed_held = [d["message_id"] for d in everything if d.get("message_id", "").startswith("g-")]
    assert set(kept).isdisjoint(shed_held)
    assert sorted(kept + shed_held) == [e.message_id for e in held]

    deadline = time.monotonic() + 30
    while _metric(worker.metrics_url, "telltale_state_users_shed_total") == 0:
        assert time.monotonic() < deadline, "no user summary was shed"
        time.sleep(0.5)
    assert _metric(worker.metrics_url, "telltale_state_users_shed_total") < 2000
    log = worker.log()
    assert "Traceback" not in log and "changelog write" not in log, log[-3000:]
    assert worker.process.alive

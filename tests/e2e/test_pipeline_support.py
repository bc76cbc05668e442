"""What the pipeline, crash, rebalance and local-state tests share: a known stream of
by-account messages, a producer that keeps each message in its partition, readers for the
health-change topic and the score table's changelog (the record of the state), a score
worker's run through the stream, the uninterrupted reference a disturbed run must equal,
and the kill -9 that disturbs it."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from state import tables
from state.tables import AccountRecord, PartitionClock
from streams.envelope import ENVELOPES, Envelope, Tick, kafka_key
from streams.events import Event, EventType, Source
from streams.settings import Settings

DAY = 86_400.0
#: Monday 2024-01-01 00:00 UTC: the scenario's day 0.
T0 = 1_704_067_200.0
#: Arguments of a worker that runs the score stage alone.
SCORE_WORKER = ("--module", "agents.score")


@dataclass(frozen=True, slots=True)
class Message:
    """One by-account record: an envelope (keyed by account) or a tick (explicit partition)."""

    key: bytes | None
    value: bytes
    partition: int | None = None


def state_key(workspace: str, account_id: str) -> bytes:
    """Kafka key of an account on the by-account topic."""
    return kafka_key(workspace, account_id)


def _event(workspace: str, account: str, user: str, name: str, ts: float, n: int,
           etype: EventType = EventType.TRACK, props: dict[str, Any] | None = None,
           traits: dict[str, Any] | None = None) -> Event:
    return Event(
        workspace=workspace, message_id=f"{account}-{user}-{n}", type=etype, timestamp=ts,
        received_at=ts, source=Source.KAFKA, name=name, user_id=user, account_id=account,
        properties=props or {}, traits=traits or {},
    )


def group_event(workspace: str, account: str, user: str, ts: float, n: int,
                traits: dict[str, Any]) -> Event:
    return _event(workspace, account, user, None, ts, n, EventType.GROUP,  # type: ignore[arg-type]
                  traits=traits)


ACTIVITY = ("Logged In", "Dashboard Viewed", "Report Published", "Workflow Completed",
            "Logged In", "Dashboard Viewed", "Export Created", "Logged In")


@dataclass
class Scenario:
    """A deterministic portfolio: ``accounts`` accounts with ``users`` users each, active
    for ``days`` days; every third account goes silent after ``silent_after`` days, so
    inactivity signals must fire from clock ticks alone. A tick per partition closes every
    day (``now`` = midnight after it)."""

    accounts: int = 12
    users: int = 3
    days: int = 40
    silent_after: int = 8
    events_per_day: int = 4
    workspace: str = "acme"
    seed: int = 7
    messages: list[Message] = field(default_factory=list)

    def build(self, partitions: int) -> list[Message]:
        rng = random.Random(self.seed)
        out: list[Message] = []
        n = 0
        for day in range(self.days):
            for a in range(self.accounts):
                account = f"acc-{a:03d}"
                if a % 3 == 0 and day >= self.silent_after:
                    continue
                base = T0 + day * DAY + 9 * 3600 + a * 60
                events: list[Event] = []
                if day == 0:
                    events.append(group_event(self.workspace, account, f"{account}-u0", base, n, {
                        "name": f"Account {a}", "seats": self.users + 2, "plan": "pro",
                        "arr": 12_000 + 1_000 * a, "created_at": "2024-01-01T00:00:00Z",
                        "renewal_date": "2024-12-31",
                    }))
                    n += 1
                for i in range(self.events_per_day):
                    user = f"{account}-u{rng.randrange(self.users)}"
                    name = ACTIVITY[rng.randrange(len(ACTIVITY))]
                    events.append(_event(self.workspace, account, user, name,
                                         base + i * 300, n))
                    n += 1
                out.append(Message(state_key(self.workspace, account),
                                   ENVELOPES.encode(Envelope(self.workspace, account, events))))
            midnight = T0 + (day + 1) * DAY
            out.extend(Message(None, ENVELOPES.encode(Tick(midnight, p)), p)
                       for p in range(partitions))
        self.messages = out
        return out


async def produce_messages(bootstrap: str, topic: str, messages: Sequence[Message],
                           spread_seconds: float = 0.0) -> None:
    """Send in order, acknowledged, each keyed message by key and each tick to its
    partition; with ``spread_seconds``, spread evenly over about that long (so a worker
    is busy with the stream for that long whatever its speed)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all",
                                enable_idempotence=True)
    await producer.start()
    chunk = 50
    pause = spread_seconds * chunk / max(1, len(messages))
    try:
        futures = []
        for i, m in enumerate(messages):
            futures.append(await producer.send(topic, m.value, key=m.key,
                                               partition=m.partition))
            if pause and i % chunk == chunk - 1:
                await asyncio.sleep(pause)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str, partitions: int) -> list[Any]:
    """Every record of ``topic`` up to its current end, in partition order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        pending = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            batches = await consumer.getmany(*pending, timeout_ms=500)
            for tp, recs in batches.items():
                records.extend(recs)
                if recs and recs[-1].offset >= ends[tp] - 1:
                    pending.discard(tp)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return records
    finally:
        await consumer.stop()


async def change_ids(bootstrap: str, settings: Settings) -> list[str]:
    """Ids of every health change on the topic (duplicates kept)."""
    records = await read_topic(bootstrap, settings.topics.health_changes, settings.partitions)
    return [orjson.loads(r.value)["id"] for r in records if r.value]


def changelog_topic(settings: Settings) -> str:
    return f"{settings.app_id}-{tables.STATE_TABLE}-changelog"


@dataclass
class FinalState:
    """The score table as its changelog records it (the record; local RocksDB is a copy)."""

    accounts: dict[bytes, AccountRecord]
    users: dict[bytes, bytes]
    due: set[bytes]
    clocks: dict[int, PartitionClock]

    def comparable(self) -> dict[str, Any]:
        """What must not depend on crashes: core states, users, due times, clock times.

        Not compared: bookkeeping that legitimately differs (applied offsets are equal
        anyway, outboxes are pruned by commit timing, stale due entries are removed
        lazily)."""
        return {
            "accounts": {k: (r.state, r.due, r.applied) for k, r in self.accounts.items()},
            "users": self.users,
            "due": {k: r.due for k, r in self.accounts.items() if r.due is not None},
            "clocks": {p: (c.now, c.offset) for p, c in self.clocks.items()},
        }


async def read_state(bootstrap: str, settings: Settings) -> FinalState:
    records = await read_topic(bootstrap, changelog_topic(settings), settings.partitions)
    latest: dict[bytes, bytes | None] = {}
    for record in records:
        latest[record.key] = record.value
    state = FinalState({}, {}, set(), {})
    for key, value in latest.items():
        if value is None:
            continue
        kind = tables.key_kind(key)
        if kind == tables.ACCOUNT:
            state.accounts[key] = AccountRecord.from_bytes(value)
        elif kind == tables.USER:
            state.users[key] = value
        elif kind == tables.DUE:
            state.due.add(key)
        elif kind == tables.CLOCK:
            state.clocks[int(key.split(tables.SEP)[1])] = PartitionClock.from_bytes(value)
    return state


async def last_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """Offset of the last record in each partition of ``topic`` (-1 when empty)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: ends[tp] - 1 for tp in tps}
    finally:
        await consumer.stop()


async def wait_processed(bootstrap: str, settings: Settings, timeout: float,
                         alive: Iterable[Any] = ()) -> FinalState:
    """Wait until every partition's clock (in the changelog) reached the last input offset."""
    targets = await last_offsets(bootstrap, settings.topics.by_account, settings.partitions)
    deadline = time.monotonic() + timeout
    while True:
        state = await read_state(bootstrap, settings)
        done = all(state.clocks.get(p, PartitionClock()).offset >= off
                   for p, off in targets.items() if off >= 0)
        if done:
            return state
        if time.monotonic() > deadline:
            got = {p: c.offset for p, c in state.clocks.items()}
            raise TimeoutError(f"not processed within {timeout:.0f} s: clocks {got}, "
                               f"input ends {targets}")
        for worker in alive:
            if not worker.process.alive:
                raise RuntimeError(f"worker died:\n{worker.log()[-3000:]}")
        await asyncio.sleep(0.5)


def namespaced(settings: Settings, tag: str, tmp_path: Any) -> Settings:
    """A copy of ``settings`` with its own topics, app id, data dir, web and metrics ports."""
    from devstack.process import free_port

    port = free_port()
    return settings.replace(
        topic_prefix=f"{settings.topic_prefix}{tag}", app_id=f"{settings.app_id}{tag}",
        data_dir=tmp_path / f"data-{tag}", web_port=port, metrics_port=free_port(),
        public_url=f"http://127.0.0.1:{port}",
    )


async def prepare(bootstrap: str, settings: Settings, messages: Sequence[Message]) -> None:
    from streams.kafka_admin import create_topics

    names = settings.topics
    await create_topics(bootstrap, [names.by_account, names.health_changes],
                        partitions=settings.partitions)
    await produce_messages(bootstrap, names.by_account, messages)


@dataclass
class RunResult:
    state: FinalState
    ids: list[str]

    @property
    def id_set(self) -> set[str]:
        return set(self.ids)


async def score_worker_run(bootstrap: str, settings: Settings, messages: Sequence[Message],
                           start_worker: Any, timeout: float = 150) -> tuple[Any, FinalState]:
    """``messages`` on the topics of ``settings`` (created first), through one score worker
    until every partition has processed them: the worker, still running, and the state."""
    await prepare(bootstrap, settings, messages)
    worker = start_worker(settings, *SCORE_WORKER)
    return worker, await wait_processed(bootstrap, settings, timeout=timeout, alive=[worker])


PrepareRun = Callable[..., Awaitable[tuple[list[Message], RunResult, Settings]]]
"""The ``against_reference`` fixture (tests/e2e/conftest.py)."""


async def reference_run(bootstrap: str, settings: Settings, messages: Sequence[Message],
                        start_worker: Any, tmp_path: Any) -> RunResult:
    """The run that a disturbed run on ``settings`` must equal: one score worker through
    the whole stream without interruption, on topics, an app id and a data dir of its own
    (tag ``r``)."""
    reference = namespaced(settings, "r", tmp_path)
    worker, state = await score_worker_run(bootstrap, reference, messages, start_worker)
    worker.stop()
    return await finished_run(bootstrap, reference, state)


async def finished_run(bootstrap: str, settings: Settings, state: FinalState) -> RunResult:
    """The final ``state`` of the run on ``settings`` with the health-change ids it emitted."""
    return RunResult(state, await change_ids(bootstrap, settings))


def assert_same_run(reference: RunResult, result: RunResult) -> None:
    """The same distinct health-change ids and the same final state as the reference."""
    assert result.id_set == reference.id_set
    assert result.state.comparable() == reference.state.comparable(), \
        describe_difference(reference.state, result.state)


async def kill_9(worker: Any) -> None:
    """``kill -9`` the worker and wait until its process is gone."""
    os.kill(worker.process.pid, signal.SIGKILL)
    while worker.process.alive:
        await asyncio.sleep(0.05)


async def wait_all_partitions_past(bootstrap: str, settings: Settings, offset: int) -> None:
    """Wait until every partition's clock (in the changelog) is past ``offset``: whoever
    holds a partition has worked on the stream."""
    while True:
        state = await read_state(bootstrap, settings)
        if len(state.clocks) == settings.partitions and all(
            c.offset > offset for c in state.clocks.values()
        ):
            return
        await asyncio.sleep(0.2)


def describe_difference(expected: FinalState, actual: FinalState, limit: int = 3) -> str:
    """Where two final states differ, field by field, for assertion messages."""
    from state.aggregates import AccountState

    lines: list[str] = []
    want, got = expected.comparable(), actual.comparable()
    for part in ("clocks", "due"):
        if want[part] != got[part]:
            lines.append(f"{part}: expected {want[part]} got {got[part]}")
    for key in sorted(set(want["accounts"]) | set(got["accounts"])):
        a, b = want["accounts"].get(key), got["accounts"].get(key)
        if a == b:
            continue
        if a is None or b is None:
            lines.append(f"{key!r}: only in {'actual' if a is None else 'expected'}")
        else:
            sa, sb = AccountState.from_bytes(a[0]), AccountState.from_bytes(b[0])
            fields = [f for f in sa.__dataclass_fields__
                      if getattr(sa, f) != getattr(sb, f)]
            lines.append(f"{key!r}: due/applied {a[1:]} vs {b[1:]}; state fields {fields}: "
                         + "; ".join(f"{f}: {_dict_diff(getattr(sa, f), getattr(sb, f))}"
                                     for f in fields[:2]))
        if len(lines) >= limit:
            break
    users = [k for k in set(want["users"]) | set(got["users"])
             if want["users"].get(k) != got["users"].get(k)]
    if users:
        lines.append(f"{len(users)} user records differ, e.g. {sorted(users)[:2]}")
    return "\n".join(lines)


def _dict_diff(a: Any, b: Any) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = [k for k in sorted(set(a) | set(b), key=str) if a.get(k) != b.get(k)]
        return repr({k: (a.get(k), b.get(k)) for k in keys[:6]})[:300]
    return f"{a!r:.150} vs {b!r:.150}"

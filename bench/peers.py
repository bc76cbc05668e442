"""The same scoring core on three shells, side by side, on the same data and broker.

The envelopes of ``bench/pipeline.py``'s generator are produced once on a by-account topic
of a real Kafka; then, each in its own process and consumer group, over that one topic:

  (a) Telltale's score agent (``telltale worker --module agents.score``, replay mode):
      RocksDB table with changelog, offsets kept in state, exactly-once effects;
  (b) a Quix Streams application (``pip install -c constraints.txt '.[bench]'``): RocksDB
      state with changelog topics and its exactly-once processing guarantee (Kafka
      transactions), the account record and the user records under each account's key;
  (c) a plain aiokafka consumer group, state in dicts of live objects, no durability.

All three run :func:`scoring.engine.step` with the same configuration and the same
partition logic (event-time clock per partition, due accounts re-evaluated in due order,
user summaries shed to the same byte budget), and send their health changes to a topic
of their own. The benchmark reads the three topics back and fails unless the change ids
are identical (same set, same count). It prints events/s, CPU per event (the process's
user + system time, all threads, from its first message to its last) and peak RSS, and
the ratios agent/bare and agent/quix.

    .venv/bin/python bench/peers.py                        # starts its own Kafka
    .venv/bin/python bench/peers.py --events 300000 --bootstrap 127.0.0.1:9092
    .venv/bin/python bench/peers.py --profile   # the score agent alone, under pyinstrument

The Quix peer keeps its due index in memory (its state API reads and writes one key of
the message's own key, with no range scan of a partition); every due time is also in its
account records, so it is the one thing a restart would have to rebuild. Quix connects
without TLS or SASL. The machine may be shared: compare ratios more than absolutes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import pipeline  # noqa: E402

from scoring.config import ScoringConfig, load_config  # noqa: E402
from scoring.driver import AccountKey, Driver, Loaded, MemoryDueIndex  # noqa: E402
from scoring.engine import StepResult  # noqa: E402
from state import tables  # noqa: E402
from state.aggregates import AccountState, UserState, encode_within  # noqa: E402
from state.tables import AccountRecord, PartitionClock  # noqa: E402
from streams.envelope import ENVELOPES, Envelope  # noqa: E402
from streams.events import Event  # noqa: E402
from streams.health_change import HEALTH_CHANGES  # noqa: E402
from streams.settings import Settings  # noqa: E402

#: Quix's own account-independent records live under this prefix (no account key is empty).
PARTITION_PREFIX = b""
CLOCK_KEY = b"clock"


# --------------------------------------------------------------------------- the shell


class Store(Protocol):
    """Where a peer keeps the account and user records of one partition's accounts."""

    def account(self, workspace: str, account_id: str) -> tuple[AccountState | None, int]:
        """The account's state and the last offset applied to it (-1: none)."""

    def users(self, workspace: str, account_id: str,
              user_ids: Iterable[str]) -> dict[str, UserState]:
        """The states of those of ``user_ids`` that exist."""

    def save(self, workspace: str, account_id: str, account: AccountState, state: bytes,
             applied: int, due: int | None, users: Mapping[str, UserState]) -> None:
        """Write the account record once (``state``: the account serialised, within its
        byte budget) and each changed user record once."""

    def clock(self, partition: int) -> PartitionClock: ...

    def save_clock(self, partition: int, clock: PartitionClock) -> None: ...


class Shell:
    """The score agent's logic for one message, minus what a peer's engine gives it
    (durability, exactly-once): the partition clock (replay mode: time from the events
    only), and the core through the driver every shell shares
    (:class:`scoring.driver.Driver`: the due accounts re-evaluated first, then the
    envelope's account)."""

    def __init__(self, config: ScoringConfig, record_max_bytes: int) -> None:
        self.config = config
        self.record_max_bytes = record_max_bytes
        self.due: dict[int, MemoryDueIndex] = {}

    def process(self, store: Store, partition: int, offset: int, raw: bytes) -> list[bytes]:
        """The encoded health changes of one by-account message."""
        message = ENVELOPES.decode(raw)
        if not isinstance(message, Envelope):
            raise ValueError("the benchmark's topic carries envelopes only")
        clock = store.clock(partition)
        if offset <= clock.offset:
            return []  # neither peer redelivers what it applied
        now = max(clock.now, max((e.timestamp for e in message.events), default=clock.now))
        index = self.due.setdefault(partition, MemoryDueIndex())
        accounts = _Accounts(store, index, offset, self.record_max_bytes)
        arrivals = {}
        if message.key:
            arrivals[(message.workspace, message.key)] = [
                e for e in message.events if e.workspace == message.workspace]
        Driver(accounts, index, lambda _workspace: self.config).advance(now, arrivals)
        newest = max(clock.newest_event, max((e.timestamp for e in message.events),
                                             default=0.0))
        store.save_clock(partition, PartitionClock(now, offset, [], newest))
        return accounts.changes


@dataclass
class _Accounts:
    """A peer's :class:`Store` as the driver's accounts, for one message at ``offset``."""

    store: Store
    index: MemoryDueIndex
    offset: int
    record_max_bytes: int
    changes: list[bytes] = field(default_factory=list)

    def load(self, key: AccountKey, user_ids: Sequence[str]) -> Loaded | None:
        account, applied = self.store.account(*key)
        if applied >= self.offset:
            return None
        return Loaded(account, self.store.users(*key, user_ids))

    def save(self, key: AccountKey, loaded: Loaded, result: StepResult, due: int | None,
             events: Sequence[Event]) -> None:
        state, _shed = encode_within(result.account, self.record_max_bytes // 2)
        self.store.save(*key, result.account, state, self.offset, due, result.users)
        self.index.set(key, due)
        self.changes.extend(HEALTH_CHANGES.encode(change) for change in result.changes)

    def failed(self, key: AccountKey, error: Exception) -> None:
        raise error


def shell_from_settings() -> Shell:
    settings = Settings.from_env()
    return Shell(load_config(settings.scoring_config), settings.state_record_max_bytes)


# --------------------------------------------------------------------------- (c) bare


class MemoryStore:
    """Live objects in dicts: no serialisation, no durability."""

    def __init__(self) -> None:
        self.accounts: dict[tuple[str, str], tuple[AccountState, int]] = {}
        self.user_states: dict[tuple[str, str, str], UserState] = {}
        self.clocks: dict[int, PartitionClock] = {}

    def account(self, workspace: str, account_id: str) -> tuple[AccountState | None, int]:
        return self.accounts.get((workspace, account_id), (None, -1))

    def users(self, workspace: str, account_id: str,
              user_ids: Iterable[str]) -> dict[str, UserState]:
        found = {}
        for user_id in user_ids:
            user = self.user_states.get((workspace, account_id, user_id))
            if user is not None:
                found[user_id] = user
        return found

    def save(self, workspace: str, account_id: str, account: AccountState, state: bytes,
             applied: int, due: int | None, users: Mapping[str, UserState]) -> None:
        self.accounts[(workspace, account_id)] = (account, applied)
        for user_id, user in users.items():
            self.user_states[(workspace, account_id, user_id)] = user

    def clock(self, partition: int) -> PartitionClock:
        return self.clocks.get(partition) or PartitionClock()

    def save_clock(self, partition: int, clock: PartitionClock) -> None:
        self.clocks[partition] = clock


async def phase_bare(bootstrap: str, topic: str, out_topic: str,
                     expected: int) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    shell = shell_from_settings()
    store = MemoryStore()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                group_id=f"bare-{uuid.uuid4().hex[:8]}",
                                auto_offset_reset="earliest", enable_auto_commit=True,
                                max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20,
                                **pipeline.client_options())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                max_batch_size=512 * 1024, **pipeline.client_options())
    await consumer.start()
    await producer.start()
    count = 0
    started: tuple[float, float] | None = None
    try:
        while count < expected:
            for tp, records in (await consumer.getmany(timeout_ms=1000,
                                                       max_records=5_000)).items():
                if started is None:
                    started = (time.perf_counter(), pipeline.cpu_seconds())
                for record in records:
                    for change in shell.process(store, tp.partition, record.offset,
                                                record.value):
                        # Fire and forget: the producer batches; stop() flushes.
                        await producer.send(out_topic, change, key=record.key)
                    count += 1
        await producer.flush()
    finally:
        await producer.stop()
        await consumer.stop()
    return measured(count, started)


def measured(messages: int, started: tuple[float, float] | None) -> dict[str, Any]:
    """A peer's JSON result line: wall and CPU seconds since its first message."""
    wall, cpu = started or (time.perf_counter(), pipeline.cpu_seconds())
    return {"events": 0, "messages": messages, "seconds": time.perf_counter() - wall,
            "cpu_s": pipeline.cpu_seconds() - cpu,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# --------------------------------------------------------------------------- (b) Quix


class QuixStore:
    """The Quix transaction of the current checkpoint: each account's records under its
    Kafka key as prefix (``a`` the account record, ``u<user id>`` each user record, the
    agent's bytes), the partition clock under :data:`PARTITION_PREFIX`."""

    def __init__(self, transaction: Any, key_of: Callable[[str, str], bytes]) -> None:
        self.transaction = transaction
        self.key_of = key_of

    def account(self, workspace: str, account_id: str) -> tuple[AccountState | None, int]:
        raw = self.transaction.get_bytes(b"a", prefix=self.key_of(workspace, account_id))
        if raw is None:
            return None, -1
        record = AccountRecord.from_bytes(raw)
        return AccountState.from_bytes(record.state), record.applied

    def users(self, workspace: str, account_id: str,
              user_ids: Iterable[str]) -> dict[str, UserState]:
        prefix = self.key_of(workspace, account_id)
        found = {}
        for user_id in user_ids:
            raw = self.transaction.get_bytes(b"u" + user_id.encode(), prefix=prefix)
            if raw is not None:
                found[user_id] = UserState.from_bytes(raw)
        return found

    def save(self, workspace: str, account_id: str, account: AccountState, state: bytes,
             applied: int, due: int | None, users: Mapping[str, UserState]) -> None:
        prefix = self.key_of(workspace, account_id)
        record = AccountRecord(state=state, applied=applied, due=due)
        self.transaction.set_bytes(b"a", record.to_bytes(), prefix=prefix)
        for user_id, user in users.items():
            self.transaction.set_bytes(b"u" + user_id.encode(), user.to_bytes(), prefix=prefix)

    def clock(self, partition: int) -> PartitionClock:
        raw = self.transaction.get_bytes(CLOCK_KEY, prefix=PARTITION_PREFIX)
        return PartitionClock.from_bytes(raw) if raw is not None else PartitionClock()

    def save_clock(self, partition: int, clock: PartitionClock) -> None:
        self.transaction.set_bytes(CLOCK_KEY, clock.to_bytes(), prefix=PARTITION_PREFIX)


def phase_quix(bootstrap: str, topic: str, out_topic: str, expected: int,
               state_dir: str) -> dict[str, Any]:
    from quixstreams import Application, message_context
    from quixstreams.state.rocksdb import RocksDBOptions

    from streams.envelope import kafka_key

    shell = shell_from_settings()
    settings = Settings.from_env()
    mib = 1 << 20
    app = Application(
        broker_address=bootstrap,
        consumer_group=f"quix-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        state_dir=state_dir,
        # The agent's RocksDB sizes, not Quix's 1 GiB cache; no fsync, as Faust's driver.
        rocksdb_options=RocksDBOptions(
            block_cache_size=settings.rocksdb_block_cache_mb * mib,
            write_buffer_size=settings.rocksdb_write_buffer_mb * mib,
            max_write_buffer_number=tables.WRITE_BUFFERS_PER_DB, use_fsync=False),
        loglevel="WARNING",
    )
    source = app.topic(topic, key_deserializer="bytes", value_deserializer="bytes")
    sink = app.topic(out_topic, key_serializer="bytes", value_serializer="bytes")
    progress: dict[str, Any] = {"count": 0, "started": None}

    def process(value: bytes, state: Any) -> list[bytes]:
        if progress["started"] is None:
            progress["started"] = (time.perf_counter(), pipeline.cpu_seconds())
        context = message_context()
        # The state handed in is scoped to the message's key; a due account's records
        # sit under its own key in the same partition transaction.
        store = QuixStore(state._transaction, kafka_key)
        changes = shell.process(store, context.partition, context.offset, value)
        progress["count"] += 1
        if progress["count"] >= expected:
            app.stop()
        return changes

    sdf = app.dataframe(source)
    sdf = sdf.apply(process, stateful=True, expand=True)
    sdf.to_topic(sink)
    app.run()
    return measured(progress["count"], progress["started"])


# --------------------------------------------------------------------------- profile

#: Where the score agent's time goes, first match wins: (category, function names any
#: frame of the stack may have, with the file fragment it must be in ("" for any)).
#: Startup, rebalance and shutdown, and waiting in epoll, are set apart from per-event work.
PROFILE_CATEGORIES: tuple[tuple[str, frozenset[str], str], ...] = (
    ("waiting (epoll)", frozenset({"poll", "epoll.poll", "select"}), ""),
    ("startup, rebalance, shutdown", frozenset({
        "build_app", "build_parser", "stop_and_shutdown", "on_partitions_assigned",
        "on_partitions_revoked", "_find_and_load", "_shutdown_loop"}), ""),
    ("account size check (encode_within)", frozenset({"encode_within", "shed_users"}),
     "aggregates"),
    ("Kafka produce requests on the wire (changelog, health changes)",
     frozenset({"_send_produce_req"}), "aiokafka/producer"),
    ("RocksDB write batch", frozenset({"Rdict.write", "WriteBatch.put",
                                       "WriteBatch.delete"}), ""),
    ("changelog records (queue to producer, persisted offset)",
     frozenset({"flush", "seal", "_persisted"}), "state/keyed.py"),
    ("health change encoding", frozenset({"encode"}), "health_change"),
    ("state (de)serialisation", frozenset({"to_bytes", "from_bytes"}), "state/"),
    ("scoring core (step)", frozenset({"step"}), "scoring/engine.py"),
    ("envelope decode and validation", frozenset({"ENVELOPES.decode"}), "envelope"),
    ("health change send", frozenset({"send"}), "faust/"),
    ("state keys (built and checked per key)", frozenset({"make_key", "due_key"}),
     "state/"),
    ("shell: state reads, due index, clock, records", frozenset({"_process_one"}),
     "agents/score.py"),
    ("Faust and aiokafka per message (consume, stream, ack, commit)", frozenset(), ""),
)


def categorise(stack: list[tuple[str, str]]) -> str:
    """The :data:`PROFILE_CATEGORIES` entry of one sampled stack ((function, file) from
    the root); a leaf frame outside the message path lands in the last one."""
    for name, functions, where in PROFILE_CATEGORIES[:-1]:
        for function, path in stack:
            if function in functions and where in path:
                return name
    return PROFILE_CATEGORIES[-1][0]


def profile_seconds(session_path: Path) -> dict[str, float]:
    """Seconds of a pyinstrument session per category (self time of every frame)."""
    from pyinstrument.session import Session

    totals: dict[str, float] = {}
    pending: list[tuple[Any, list[tuple[str, str]]]] = [
        (Session.load(str(session_path)).root_frame(), [])]
    while pending:
        frame, above = pending.pop()
        if frame is None:
            continue
        stack = [*above, (frame.function, frame.file_path or "")]
        own = frame.time - sum(child.time for child in frame.children)
        if own > 0:
            name = categorise(stack)
            totals[name] = totals.get(name, 0.0) + own
        pending.extend((child, stack) for child in frame.children)
    return totals


async def profile_agent(bootstrap: str, messages: int, events: int, settings: Settings,
                        session: Path, work: Path) -> None:
    """The score agent under pyinstrument: its time per event, by category; the
    pyinstrument session is left at ``session``."""
    profiler = ["-m", "pyinstrument", "-r", "session", "-o", str(session), "-i", "0.0005"]
    seconds, _peak, cpu = await pipeline.drain_score_worker(bootstrap, settings, messages,
                                                            work, profiler)
    totals = profile_seconds(session)
    setup = {PROFILE_CATEGORIES[0][0], PROFILE_CATEGORIES[1][0]}
    per_event = {name: t for name, t in totals.items() if name not in setup}
    busy = sum(per_event.values())
    print(f"profile of the score agent ({events:,} events, {messages:,} envelopes; under "
          f"the profiler {events / seconds:,.0f} events/s, {cpu * 1e6 / events:.0f} µs CPU "
          f"per event):")
    print(f"  {'category':<62} {'µs/event':>9} {'share':>6}")
    for name, *_ in PROFILE_CATEGORIES:
        if name in per_event:
            print(f"  {name:<62} {per_event[name] * 1e6 / events:>9.1f} "
                  f"{per_event[name] / busy:>6.1%}")
    print(f"  {'total per event':<62} {busy * 1e6 / events:>9.1f}")
    for name in sorted(setup & totals.keys()):
        print(f"  (not per event) {name}: {totals[name]:.2f} s")


# --------------------------------------------------------------------------- main


@dataclass
class Peer:
    name: str
    events: int
    seconds: float
    cpu_s: float
    peak_rss_mib: float
    change_ids: Counter[str]

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_s * 1e6 / self.events if self.events else 0.0

    def line(self) -> str:
        return (f"  {self.name:<34} {self.rate:>9,.0f} {self.cpu_us_per_event:>9.1f} "
                f"{self.peak_rss_mib:>9,.0f} {sum(self.change_ids.values()):>9,}")


async def change_ids(bootstrap: str, topic: str) -> Counter[str]:
    """Every health change id on ``topic``, with how often it is there."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                isolation_level="read_committed",
                                **pipeline.client_options())
    await consumer.start()
    ids: Counter[str] = Counter()
    try:
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(topic, p)
                      for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while any([await consumer.position(tp) < end for tp, end in ends.items()]):
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                ids.update(orjson.loads(record.value)["id"] for record in records)
    finally:
        await consumer.stop()
    return ids


async def main(opts: argparse.Namespace) -> None:
    with pipeline.kafka(opts.bootstrap, opts.partitions) as bootstrap:
        work = Path(tempfile.mkdtemp(prefix="telltale-peers-"))
        try:
            slices = pipeline.generate(opts.events, opts.accounts, opts.users, opts.days)
            events = sum(len(b) for _, b in slices)
            prefix = f"bp{uuid.uuid4().hex[:8]}"
            settings = pipeline.worker_settings(bootstrap, prefix, opts.partitions,
                                                work / prefix, replay=True)
            topic = settings.topics.by_account
            messages = await pipeline.produce(bootstrap, topic,
                                              pipeline.envelope_messages(slices), opts.partitions)
            print(f"data: {events:,} events in {messages:,} envelopes on {topic} "
                  f"({opts.accounts:,} accounts x {opts.users} users, {opts.days} days, "
                  f"{opts.partitions} partitions)", flush=True)

            if opts.profile:
                session = Path(opts.session or work / "agent.pyisession").resolve()
                await profile_agent(bootstrap, messages, events, settings, session, work)
                return
            seconds, peak, cpu = await pipeline.drain_score_worker(bootstrap, settings,
                                                                   messages, work)
            peers = [Peer("(a) Telltale score agent", events, seconds, cpu, peak,
                          await change_ids(bootstrap, settings.topics.health_changes))]
            for phase, name in (("quix", "(b) Quix Streams, exactly-once"),
                                ("bare", "(c) bare aiokafka, dict state")):
                out_topic = f"{prefix}.{phase}.health-changes"
                result = pipeline.run_phase(
                    ["--phase", phase, "--bootstrap", bootstrap, "--topic", topic,
                     "--out-topic", out_topic, "--expected", str(messages),
                     "--state-dir", str(work / phase)], script=__file__)
                peers.append(Peer(name, events, result["seconds"], result["cpu_s"],
                                  result["peak_rss_mib"], await change_ids(bootstrap, out_topic)))

            print(f"  {'':<34} {'events/s':>9} {'CPU µs/ev':>9} {'peak MiB':>9} {'changes':>9}")
            for peer in peers:
                print(peer.line())
            agent, quix, bare = peers
            print(f"  agent/bare = {agent.rate / bare.rate:.2f}   "
                  f"agent/quix = {agent.rate / quix.rate:.2f}   (events/s; CPU per event: "
                  f"agent/bare {agent.cpu_us_per_event / bare.cpu_us_per_event:.2f}, "
                  f"agent/quix {agent.cpu_us_per_event / quix.cpu_us_per_event:.2f})")
            same = all(peer.change_ids == agent.change_ids for peer in peers)
            print(f"health changes: {sum(agent.change_ids.values()):,} "
                  f"({len(agent.change_ids):,} distinct ids); identical across the three: "
                  f"{'yes' if same else 'NO'}", flush=True)
            if not same:
                for peer in peers[1:]:
                    print(f"  {peer.name}: missing {len(agent.change_ids - peer.change_ids)}, "
                          f"extra {len(peer.change_ids - agent.change_ids)}")
                raise SystemExit("the peers emitted different health changes")
        finally:
            shutil.rmtree(work, ignore_errors=True)


def cli() -> None:
    parser = pipeline.parser_with_broker(__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--accounts", type=int, default=150)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--profile", action="store_true",
                        help="run only the score agent, under pyinstrument, and print "
                             "where its time per event goes")
    parser.add_argument("--session", help="with --profile: keep the pyinstrument session "
                                          "here (open it with pyinstrument --load)")
    parser.add_argument("--phase", choices=["quix", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--out-topic", help=argparse.SUPPRESS)
    parser.add_argument("--expected", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--state-dir", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.phase == "bare":
        result = asyncio.run(phase_bare(opts.bootstrap, opts.topic, opts.out_topic,
                                        opts.expected))
        print(orjson.dumps(result).decode())
    elif opts.phase == "quix":
        os.makedirs(opts.state_dir, exist_ok=True)
        result = phase_quix(opts.bootstrap, opts.topic, opts.out_topic, opts.expected,
                            opts.state_dir)
        print(orjson.dumps(result).decode())
    else:
        asyncio.run(main(opts))


if __name__ == "__main__":
    cli()

"""Failover of the score workers against the real broker. Prints figures; asserts nothing
about timings.

Starts Kafka (``devstack``), then for each worker count of ``--workers``: that many
``telltale worker --module agents.score`` processes in one group (standby replicas on),
``--accounts`` accounts of state loaded through them, and, once every standby has caught
up with the changelog, ``--trials`` times:

  kill -9 one worker (its process group) while envelopes for fresh accounts keep
  arriving on every partition; for each partition the killed worker served, the seconds
  from the kill to the first health change a survivor produced for it (the change's
  record timestamp, stamped by the survivor's producer); then restart the killed worker
  on its own RocksDB directory and let it catch up again.

It prints, per trial, the moved partitions' max and median seconds, and what the
survivor's log shows of the way there: when it heard of the rebalance, when it had its
new assignment, and when it was ready (its tables recovered), all in seconds since the
kill, with the changelog records it replayed into its new active partitions. Last, the
path of last resort: every worker stopped, one started again on an empty directory with
no standby, which rebuilds all the state from the changelog (seconds to ready and to the
first change per partition).

``--quick`` (2,000 accounts, two workers, one trial) also runs the same messages through
one uninterrupted worker and compares the health-change ids: none missing, none extra, no
id carrying two different changes (the topic may hold a re-sent copy of a change, by
design: docs/guarantees.md). ``tests/e2e/test_failover.py`` runs it in the suite.

    .venv/bin/python bench/failover.py                              # 2 and 3 workers, 100k
    .venv/bin/python bench/failover.py --workers 2 --accounts 20000 --trials 1
    .venv/bin/python bench/failover.py --quick
    TELLTALE_KAFKA_SESSION_TIMEOUT_SECONDS=6 TELLTALE_KAFKA_HEARTBEAT_INTERVAL_SECONDS=1 \\
        .venv/bin/python bench/failover.py              # workers inherit TELLTALE_* settings

The machine may be shared: the figures print next to the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import math
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.worker import READY_MARKER  # noqa: E402
from bench.pipeline import kafka, parser_with_broker  # noqa: E402
from devstack.process import free_port  # noqa: E402
from devstack.workers import WorkerProcess, start_worker  # noqa: E402
from state import tables  # noqa: E402
from streams.envelope import ENVELOPES, Envelope, kafka_key  # noqa: E402
from streams.events import Event, EventType, Source  # noqa: E402
from streams.settings import Settings  # noqa: E402

T0 = 1_704_067_200.0  # 2024-01-01 UTC
WORKSPACE = "bench"
ACTIVITY = ("Logged In", "Dashboard Viewed", "Report Published", "Workflow Completed",
            "Logged In", "Export Created", "Teammate Invited")
WORKER_ARGS = ("--module", "agents.score")


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class Plan:
    """What every run produces, message for message: the same plan gives the same
    by-account stream (per partition, in order), so runs can be compared."""

    accounts: int
    users: int
    trials: int
    partitions: int
    #: Fresh-account envelopes sent per second during a trial (spread over partitions).
    rate: float = 100.0
    #: Longest a trial waits for every moved partition to produce again, seconds.
    trial_timeout: float = 180.0


def _event(account: str, user: str, name: str, ts: float, n: int) -> Event:
    return Event(workspace=WORKSPACE, message_id=f"{account}-{n}", type=EventType.TRACK,
                 timestamp=ts, received_at=ts, source=Source.KAFKA, name=name, user_id=user,
                 account_id=account)


def envelope(account: str, users: int, ts: float) -> tuple[bytes, bytes]:
    """One envelope for ``account``: one event for each of its ``users`` users."""
    events = [_event(account, f"{account}-u{u}", ACTIVITY[u % len(ACTIVITY)], ts + u * 60, u)
              for u in range(users)]
    return kafka_key(WORKSPACE, account), ENVELOPES.encode(Envelope(WORKSPACE, account, events))


def state_messages(plan: Plan) -> Iterator[tuple[bytes, bytes]]:
    """The state: every account once, with its users (day 0)."""
    for a in range(plan.accounts):
        yield envelope(f"acc-{a:07d}", plan.users, T0 + 9 * 3600 + a % 3600)


def trial_account(block: int, n: int) -> str:
    return f"t{block}-{n:06d}"


def trial_message(plan: Plan, block: int, n: int) -> tuple[bytes, bytes]:
    """The ``n``-th fresh account of traffic ``block`` (trial ``k`` sends block ``2k``
    around the kill and ``2k + 1`` around the restart): its first assessment is a health
    change, so every envelope shows whether its partition is served.

    Its events stay on the state's day (0): a partition clock crossing midnight would
    make every account of the partition due for re-evaluation in one message, and a
    kill during that sweep times the sweep, not the failover."""
    return envelope(trial_account(block, n), 2, T0 + 12 * 3600 + block * 1800 + n * 0.25)


def trial_total(plan: Plan) -> int:
    """Envelopes every traffic block sends, whatever its timing, so that runs stay
    comparable."""
    return int(plan.rate * plan.trial_timeout / 3)


# --------------------------------------------------------------------------- Kafka


def client_options() -> dict[str, Any]:
    """aiokafka options of every client here, from the ``TELLTALE_KAFKA_*`` variables."""
    return Settings.from_env().kafka_security.aiokafka_options()


async def create_topics(settings: Settings) -> None:
    from streams.kafka_admin import create_topics as create

    await create(settings.kafka_bootstrap,
                 [settings.topics.by_account, settings.topics.health_changes],
                 partitions=settings.partitions, security=settings.kafka_security)


class Producer:
    """Sends by-account envelopes, remembering each account's partition."""

    def __init__(self, bootstrap: str) -> None:
        from aiokafka import AIOKafkaProducer

        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5,
                                          acks="all", enable_idempotence=True,
                                          max_batch_size=512 * 1024, **client_options())
        self.partition_of: dict[str, int] = {}

    async def __aenter__(self) -> Producer:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def send_all(self, topic: str, messages: Iterator[tuple[bytes, bytes]]) -> int:
        pending: list[Any] = []
        count = 0
        for key, value in messages:
            pending.append(await self._producer.send(topic, value, key=key))
            count += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return count

    async def send(self, topic: str, account: str, key: bytes, value: bytes) -> None:
        metadata = await (await self._producer.send(topic, value, key=key))
        self.partition_of[account] = metadata.partition

    async def send_accounts(self, topic: str,
                            messages: Iterator[tuple[str, bytes, bytes]]) -> None:
        """Send (account, key, value) messages without waiting for each one."""
        pending: list[tuple[str, Any]] = []
        for account, key, value in messages:
            pending.append((account, await self._producer.send(topic, value, key=key)))
        for account, future in pending:
            self.partition_of[account] = (await future).partition


@dataclass(frozen=True)
class Change:
    id: str
    account_id: str
    partition: int
    timestamp: float  # the record's timestamp (set by the worker's producer), epoch s
    value: bytes


class ChangeReader:
    """Reads the health-change topic from a given point on, in the background."""

    def __init__(self, bootstrap: str, topic: str, partitions: int,
                 decode: bool = True) -> None:
        """With ``decode=False`` (any other topic) only the first record timestamp seen
        per partition is kept, in :attr:`first_seen`."""
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.decode = decode
        self.changes: list[Change] = []
        self.first_seen: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._consumer: Any = None

    async def start(self, from_beginning: bool = False) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap,
                                          enable_auto_commit=False,
                                          auto_offset_reset="earliest",
                                          max_partition_fetch_bytes=8 << 20,
                                          **client_options())
        await self._consumer.start()
        tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        self._consumer.assign(tps)
        if from_beginning:
            await self._consumer.seek_to_beginning(*tps)
        else:
            await self._consumer.seek_to_end(*tps)
            for tp in tps:  # pin the position now, not at the first fetch
                await self._consumer.position(tp)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=10_000)
            for tp, records in batches.items():
                if records and tp.partition not in self.first_seen:
                    self.first_seen[tp.partition] = records[0].timestamp / 1000.0
                if not self.decode:
                    continue
                for record in records:
                    if not record.value:
                        continue
                    body = orjson.loads(record.value)
                    self.changes.append(Change(str(body["id"]), str(body["account_id"]),
                                               tp.partition, record.timestamp / 1000.0,
                                               record.value))

    async def caught_up(self) -> bool:
        from aiokafka import TopicPartition

        tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        ends = await self._consumer.end_offsets(tps)
        for tp in tps:
            if await self._consumer.position(tp) < ends[tp]:
                return False
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


async def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                **client_options())
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: end for tp, end in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False, **client_options())
    await consumer.start()
    try:
        return {p: (await consumer.committed(TopicPartition(topic, p))) or 0
                for p in range(partitions)}
    finally:
        await consumer.stop()


async def wait_committed(settings: Settings, workers: Sequence[WorkerProcess],
                         timeout: float) -> float:
    """Wait until the group committed the end of every by-account partition; seconds."""
    bootstrap = settings.kafka_bootstrap
    topic = settings.topics.by_account
    ends = await end_offsets(bootstrap, topic, settings.partitions)
    started = time.monotonic()
    while True:
        done = await committed(bootstrap, settings.app_id, topic, settings.partitions)
        if all(done[p] >= ends[p] for p in ends):
            return time.monotonic() - started
        for worker in workers:
            if not worker.process.alive:
                raise RuntimeError(f"a worker died:\n{worker.log()[-3000:]}")
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"not committed within {timeout:.0f} s: {done} of {ends}")
        await asyncio.sleep(0.5)


# --------------------------------------------------------------------------- workers


def changelog_topic(settings: Settings) -> str:
    return f"{settings.app_id}-{tables.STATE_TABLE}-changelog"


def bench_settings(bootstrap: str, prefix: str, plan: Plan, standby_replicas: int) -> Settings:
    """The workers' settings: this process's ``TELLTALE_*`` variables (the broker and
    recovery settings under test, the Kafka login) with the bench's topics and state."""
    return Settings.from_env(
        broker=",".join(f"kafka://{server}" for server in bootstrap.split(",")),
        topic_prefix=prefix, app_id=prefix, partitions=plan.partitions, replay=True,
        standby_replicas=standby_replicas, rocksdb_block_cache_mb=16,
        rocksdb_write_buffer_mb=8)


def worker_settings(base: Settings, index: int, work: Path) -> Settings:
    port = free_port()
    return base.replace(data_dir=work / f"{base.app_id}-w{index}", web_port=port,
                        metrics_port=free_port(), public_url=f"http://127.0.0.1:{port}")


def start(settings: Settings, log: Path) -> WorkerProcess:
    return start_worker(settings, WORKER_ARGS, log_path=log, wait=False)


def kill_group(worker: WorkerProcess) -> float:
    """kill -9 the worker's process group; returns the time of the kill (epoch s)."""
    killed_at = time.time()
    os.killpg(worker.process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while worker.process.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.process.stop(timeout=1)  # reaps it and forgets it
    return killed_at


_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]", re.M)
#: A row of aiokafka's assignment table: "| topic | {0, 2, 4-6} |".
_SET_ROW = re.compile(r"^\|\s*(\S+)\s*\|\s*\{([0-9, -]*)\}\s*\|", re.M)


def _stamp(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _partition_set(text: str) -> set[int]:
    """``"0, 2, 4-6"`` → {0, 2, 4, 5, 6}."""
    out: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if "-" in part:
            low, high = part.split("-")
            out.update(range(int(low), int(high) + 1))
        elif part:
            out.add(int(part))
    return out


def assignments(log: str) -> list[tuple[float, dict[str, set[int]]]]:
    """Every assignment the worker logged: (time, {topic: partitions})."""
    out = []
    for match in re.finditer(r"^\[([^]]+)\].*Setting newly assigned partitions", log, re.M):
        block = log[match.end():match.end() + 3000]
        block = block[:block.find(" for group")]
        out.append((_stamp(match.group(1)), {topic: _partition_set(parts)
                                             for topic, parts in _SET_ROW.findall(block)}))
    return out


def actives(worker: WorkerProcess, topic: str) -> set[int]:
    """The by-account partitions the worker was last assigned (from its log)."""
    found = assignments(worker.log())
    return found[-1][1].get(topic, set()) if found else set()


def log_events(log: str, since: float) -> list[tuple[float, str]]:
    """(epoch s, line) of every time-stamped line logged at or after ``since``."""
    out = []
    for match in _STAMP.finditer(log):
        t = _stamp(match.group(1))
        if t >= since:
            line_end = log.find("\n", match.start())
            out.append((t, log[match.start():line_end if line_end >= 0 else None]))
    return out


def first_after(events: list[tuple[float, str]], pattern: str) -> float | None:
    for t, line in events:
        if re.search(pattern, line):
            return t
    return None


def replayed_records(log: str, since: float, moved: set[int]) -> int | None:
    """Changelog records the survivor had to read into the moved partitions after the
    kill (highwater minus its starting offset), from Faust's recovery tables."""
    tail = log[_offset_of(log, since):]
    starts = _table_values(tail, "active offsets at start of reading")
    highs = _table_values(tail, "Highwater for active changelog partitions")
    if not highs:
        return None
    return sum(max(0, highs[p] - starts.get(p, -1)) for p in moved if p in highs)


def _offset_of(log: str, since: float) -> int:
    for match in _STAMP.finditer(log):
        if _stamp(match.group(1)) >= since:
            return match.start()
    return len(log)


def _table_values(log: str, title: str) -> dict[int, int]:
    """``partition → value`` rows of the first Faust table after ``title`` in ``log``
    (Faust writes 〃 for a repeated topic name)."""
    at = log.find(title)
    if at < 0:
        return {}
    block = log[at:]
    block = block[:block.find("\n[", 1) if "\n[" in block[1:] else len(block)]
    rows = re.findall(r"^\|\s*\S+\s*\|\s*(\d+)\s*\|\s*(-?\d+)\s*\|", block, re.M)
    return {int(p): int(v) for p, v in rows}


# --------------------------------------------------------------------------- standbys


def standby_offsets(worker: WorkerProcess, settings: Settings) -> dict[int, int]:
    """Changelog offset each partition DB of the worker holds, read from a read-only
    open of its RocksDB (Faust's persisted offset; none while a DB cannot be opened)."""
    from rocksdict import AccessType, Options, Rdict

    found: dict[int, int] = {}
    for path in sorted(worker.settings.data_dir.glob(f"**/{tables.STATE_TABLE}-*.db")):
        partition = int(path.name.rsplit("-", 1)[1].removesuffix(".db"))
        try:
            db = Rdict(str(path), Options(raw_mode=True),
                       access_type=AccessType.read_only())
        except Exception:  # compaction swapping files, or a DB half created
            continue
        try:
            value = db.get(b"__faust\0offset__")
        finally:
            db.close()
        if value is not None:
            found[partition] = int(value)
    return found


def standbys(worker: WorkerProcess, settings: Settings) -> set[int]:
    """The partitions the worker holds as standby (from its last assignment in its log:
    changelog partitions it was given, less the by-account partitions it owns)."""
    found = assignments(worker.log())
    if not found:
        return set()
    assigned = found[-1][1]
    return assigned.get(changelog_topic(settings), set()) - assigned.get(
        settings.topics.by_account, set())


async def wait_standbys(settings: Settings, workers: Sequence[WorkerProcess],
                        timeout: float) -> tuple[float, int]:
    """Wait until every standby copy (every partition each worker was assigned as a
    standby) is at most a standby buffer behind the changelog's end. Returns seconds
    waited and the largest lag left (records)."""
    changelog = changelog_topic(settings)
    started = time.monotonic()
    worst = -1
    while time.monotonic() - started < timeout:
        ends = await end_offsets(settings.kafka_bootstrap, changelog, settings.partitions)
        lags = [0]
        for worker in workers:
            held = standby_offsets(worker, settings)
            lags.extend(ends[p] - 1 - held.get(p, -1) for p in standbys(worker, settings))
        worst = max(lags)
        # Faust applies standby records in buffers of a table's standby_buffer_size
        # (1,000) and flushes the rest when a rebalance starts.
        if worst <= 1_000:
            break
        await asyncio.sleep(1.0)
    return time.monotonic() - started, worst


# --------------------------------------------------------------------------- a trial


@dataclass
class Trial:
    workers: int
    accounts: int
    trial: int
    moved: list[int]
    to_first_change: dict[int, float]  # partition → seconds from the kill
    #: partition → seconds from the kill to a survivor's first write to its changelog
    #: (the first message it processed there).
    to_first_write: dict[int, float] = field(default_factory=dict)
    heard: float | None = None  # a taking survivor logged the rebalance, s after the kill
    assigned: float | None = None  # survivor had its new assignment
    ready: float | None = None  # the last taking survivor recovered its tables and resumed
    replayed: int | None = None
    #: Partitions the killed worker got back when it restarted, and the seconds from its
    #: assignment to its first change for each (it keeps its local state and replays only
    #: the changelog written after it).
    back: list[int] = field(default_factory=list)
    back_first_change: dict[int, float] = field(default_factory=dict)
    load: str = ""
    note: str = ""

    def line(self) -> str:
        values = [self.to_first_change[p] for p in self.moved if p in self.to_first_change]
        missing = [p for p in self.moved if p not in self.to_first_change]
        worst = f"{max(values):6.1f}" if values else "     -"
        median = f"{statistics.median(values):6.1f}" if values else "     -"

        def s(x: float | None) -> str:
            return "   -" if x is None else f"{x:4.1f}"

        writes = [self.to_first_write[p] for p in self.moved if p in self.to_first_write]
        write = f"{max(writes):5.1f}" if writes else "    -"
        return (f"  {self.workers:>7} {self.accounts:>9,} {self.trial:>5}  "
                f"{','.join(map(str, self.moved)):<12} {worst} {median} {write}   "
                f"{s(self.heard)} {s(self.assigned)} {s(self.ready)} "
                f"{'-' if self.replayed is None else f'{self.replayed:,}':>9}  {self.load}"
                + (f"  missing {missing}" if missing else "") + self.note
                + "\n    per partition: " + ", ".join(
                    f"{p}: {self.to_first_change[p]:.1f} s" for p in self.moved
                    if p in self.to_first_change))

    def back_line(self) -> str:
        values = [self.back_first_change[p] for p in self.back if p in self.back_first_change]
        if not self.back:
            return "    restarted worker took no partitions back"
        return (f"    restarted worker took back {','.join(map(str, self.back))}: first change "
                f"after its assignment max {max(values) if values else math.nan:.1f} s, "
                f"median {statistics.median(values) if values else math.nan:.1f} s"
                + ("" if len(values) == len(self.back) else
                   f" ({len(self.back) - len(values)} silent)"))


HEADER = ("  workers  accounts trial  moved        max s  med s write   heard asgn ready"
          "  replayed  load (1, 5 min)")


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} {five:.2f}"


async def timed_traffic(plan: Plan, settings: Settings, producer: Producer, block: int,
                        act: Callable[[], Awaitable[None]],
                        done: Callable[[list[Change]], bool]) -> list[Change]:
    """Send ``block``'s envelopes at ``plan.rate``; after one second, ``act()`` (the kill,
    the restart); go on until ``done(changes since the start)`` holds for 3 s, then send
    the rest of the block at once (every run sends the same stream) and wait for
    ``done`` up to ``plan.trial_timeout``. Returns the changes seen."""
    topic = settings.topics.by_account
    reader = ChangeReader(settings.kafka_bootstrap, settings.topics.health_changes,
                          settings.partitions)
    await reader.start()
    total = trial_total(plan)
    interval = 1.0 / plan.rate
    began = time.monotonic()
    acted_at = finished_at = 0.0
    sent = 0
    try:
        while sent < total:
            if sent == int(plan.rate):
                await act()
                acted_at = time.monotonic()
            key, value = trial_message(plan, block, sent)
            await producer.send(topic, trial_account(block, sent), key, value)
            sent += 1
            if acted_at:
                if not finished_at and done(reader.changes):
                    finished_at = time.monotonic()
                if finished_at and time.monotonic() - finished_at > 3:
                    break
            delay = began + sent * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await producer.send_accounts(topic, ((trial_account(block, n),
                                              *trial_message(plan, block, n))
                                             for n in range(sent, total)))
        while not done(reader.changes) and time.monotonic() - acted_at < plan.trial_timeout:
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)
        return list(reader.changes)
    finally:
        await reader.stop()


def first_change(changes: Sequence[Change], partition_of: dict[str, int],
                 partitions: set[int], since: float) -> dict[int, float]:
    """Seconds from ``since`` to the first change at or after it, per partition."""
    first: dict[int, float] = {}
    for change in changes:
        p = partition_of.get(change.account_id)
        if p in partitions and change.timestamp >= since:
            first[p] = min(first.get(p, math.inf), change.timestamp - since)
    return first


async def run_trial(plan: Plan, settings: Settings, workers: list[WorkerProcess],
                    victim: int, trial: int, producer: Producer,
                    restart: Callable[[], WorkerProcess]) -> Trial:
    """Kill ``workers[victim]`` while fresh accounts arrive and time each moved partition;
    then restart it and time the partitions it takes back."""
    topic = settings.topics.by_account
    moved = set(actives(workers[victim], topic))
    survivors = [w for i, w in enumerate(workers) if i != victim]
    # The changelog shows when a survivor processed its first message of a partition.
    writes = ChangeReader(settings.kafka_bootstrap, changelog_topic(settings),
                          settings.partitions, decode=False)
    load = load_average()
    killed_at = 0.0

    async def kill() -> None:
        nonlocal killed_at
        killed_at = kill_group(workers[victim])
        await writes.start()  # from the changelog's end at the kill

    def all_moved_answered(changes: list[Change]) -> bool:
        return len(first_change(changes, producer.partition_of, moved, killed_at)) == len(moved)

    try:
        changes = await timed_traffic(plan, settings, producer, 2 * trial, kill,
                                      all_moved_answered)
    finally:
        await writes.stop()
    result = Trial(len(workers), plan.accounts, trial + 1, sorted(moved),
                   first_change(changes, producer.partition_of, moved, killed_at), load=load)
    result.to_first_write = {p: max(0.0, t - killed_at) for p, t in writes.first_seen.items()
                             if p in moved}
    # The survivors that took moved partitions tell the story: the first to hear of the
    # rebalance and to be assigned, the last to be ready, and all they replayed.
    takers = [w for w in survivors if actives(w, topic) & moved]
    for name, pattern, pick in (
            ("heard", r"Heartbeat failed .* rebalancing|Revoking previously", min),
            ("assigned", r"Setting newly assigned partitions", min),
            ("ready", r"Worker ready", max)):
        times = [first_after(log_events(w.log(), killed_at - 0.001), pattern) for w in takers]
        found = [t - killed_at for t in times if t is not None]
        setattr(result, name, pick(found) if found else None)
    replayed = [replayed_records(w.log(), killed_at, actives(w, topic) & moved)
                for w in takers]
    result.replayed = sum(r for r in replayed if r is not None) if takers else None

    # The killed worker comes back: the partitions it is given are out of service from
    # its assignment until it produces their changes.
    returned: list[WorkerProcess] = []

    async def start_again() -> None:
        returned.append(restart())

    def taken_back() -> tuple[set[int], float]:
        if not returned or READY_MARKER not in returned[0].log():
            return set(), 0.0
        found = assignments(returned[0].log())
        return found[-1][1].get(topic, set()), found[0][0]

    def back_answered(changes: list[Change]) -> bool:
        parts, since = taken_back()
        return bool(parts) and len(first_change(changes, producer.partition_of, parts,
                                                since)) == len(parts)

    changes = await timed_traffic(plan, settings, producer, 2 * trial + 1, start_again,
                                  back_answered)
    workers[victim] = returned[0]
    parts, since = taken_back()
    result.back = sorted(parts)
    result.back_first_change = first_change(changes, producer.partition_of, parts, since)
    return result


# --------------------------------------------------------------------------- a run


@dataclass
class Run:
    settings: Settings
    trials: list[Trial] = field(default_factory=list)
    load_seconds: float = 0.0
    standby_wait: list[tuple[float, int]] = field(default_factory=list)
    rebuild_ready: float | None = None
    rebuild_first_change: dict[int, float] = field(default_factory=dict)
    rebuild_load: str = ""


async def failover_run(bootstrap: str, plan: Plan, workers: int, work: Path,
                       standby_replicas: int = 1, rebuild: bool = True,
                       tag: str = "f") -> Run:
    """``workers`` score workers over ``plan``: load, ``plan.trials`` kill -9 trials, then
    (with ``rebuild``) the full rebuild of all state by one worker on an empty directory."""
    prefix = f"fo{tag}{os.getpid() % 10_000}"
    base = bench_settings(bootstrap, prefix, plan, standby_replicas)
    run = Run(base)
    await create_topics(base)
    configs = [worker_settings(base, i, work) for i in range(workers)]
    procs = [start(s, work / f"{prefix}-w{i}.log") for i, s in enumerate(configs)]
    try:
        for proc in procs:
            proc.wait_ready(timeout=180)
        async with Producer(bootstrap) as producer:
            t = time.monotonic()
            await producer.send_all(base.topics.by_account, state_messages(plan))
            await wait_committed(base, procs, timeout=3600)
            run.load_seconds = time.monotonic() - t
            print(f"  {workers} workers: {plan.accounts:,} accounts x {plan.users} users "
                  f"loaded in {run.load_seconds:.0f} s", flush=True)
            for trial in range(plan.trials):
                run.standby_wait.append(await wait_standbys(base, procs, timeout=600))
                waited, lag = run.standby_wait[-1]
                print(f"    standbys within {lag:,} records of the changelog after "
                      f"{waited:.0f} s", flush=True)
                victim = trial % workers
                restart = functools.partial(start, configs[victim],
                                            work / f"{prefix}-w{victim}-{trial + 1}.log")
                result = await run_trial(plan, base, procs, victim, trial, producer, restart)
                run.trials.append(result)
                if trial == 0:
                    print(HEADER)
                print(result.line(), result.back_line(), sep="\n", flush=True)
                procs[victim].wait_ready(timeout=600)
                await wait_committed(base, procs, timeout=600)
            if rebuild:
                await full_rebuild(run, plan, base, procs, configs[0], work, producer)
    finally:
        for proc in procs:
            proc.stop(timeout=30)
    return run


async def full_rebuild(run: Run, plan: Plan, base: Settings, procs: list[WorkerProcess],
                       config: Settings, work: Path, producer: Producer) -> None:
    """Every worker stopped; one started on an empty directory with no standby: it
    rebuilds every partition from the changelog before it serves any."""
    for proc in procs:
        proc.stop(timeout=30)
    shutil.rmtree(config.data_dir, ignore_errors=True)
    alone = config.replace(standby_replicas=0)
    reader = ChangeReader(base.kafka_bootstrap, base.topics.health_changes, base.partitions)
    await reader.start()
    run.rebuild_load = load_average()
    block = 2 * plan.trials
    try:
        started = time.time()
        procs[0] = start(alone, work / f"{base.app_id}-rebuild.log")
        n = 0
        first: dict[int, float] = {}
        while len(first) < plan.partitions and time.time() - started < 1800:
            key, value = trial_message(plan, block, n)
            await producer.send(base.topics.by_account, trial_account(block, n), key, value)
            n += 1
            for change in reader.changes:
                p = producer.partition_of.get(change.account_id)
                if p is not None and p not in first:
                    first[p] = change.timestamp - started
            if run.rebuild_ready is None and "telltale worker ready:" in procs[0].log():
                run.rebuild_ready = time.time() - started
            if not procs[0].process.alive:
                raise RuntimeError(f"rebuilding worker died:\n{procs[0].log()[-3000:]}")
            await asyncio.sleep(1.0 / plan.rate)
        run.rebuild_first_change = first
    finally:
        await reader.stop()


# --------------------------------------------------------------------------- comparison


@dataclass
class Comparison:
    reference: int  # distinct ids of the uninterrupted run
    distinct: int  # distinct ids of the failover run
    copies: int  # records beyond the first per id (re-sent copies)
    missing: list[str]
    extra: list[str]
    conflicting: list[str]  # ids carried by two different changes

    @property
    def same(self) -> bool:
        return not (self.missing or self.extra or self.conflicting)


async def all_changes(bootstrap: str, settings: Settings) -> list[Change]:
    reader = ChangeReader(bootstrap, settings.topics.health_changes, settings.partitions)
    await reader.start(from_beginning=True)
    try:
        deadline = time.monotonic() + 120
        while not await reader.caught_up() and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
        await asyncio.sleep(0.5)
        return list(reader.changes)
    finally:
        await reader.stop()


def compare(reference: list[Change], actual: list[Change]) -> Comparison:
    want: dict[str, bytes] = {c.id: c.value for c in reference}
    got: dict[str, set[bytes]] = {}
    for c in actual:
        got.setdefault(c.id, set()).add(c.value)
    return Comparison(
        reference=len(want), distinct=len(got), copies=len(actual) - len(got),
        missing=sorted(set(want) - set(got)), extra=sorted(set(got) - set(want)),
        conflicting=sorted(i for i, values in got.items()
                           if len(values) > 1 or (i in want and want[i] not in values)),
    )


async def reference_run(bootstrap: str, plan: Plan, work: Path) -> Settings:
    """The same messages through one worker, uninterrupted (no kill, no standby)."""
    settings = bench_settings(bootstrap, f"forf{os.getpid() % 10_000}", plan, 0)
    prefix = settings.app_id
    await create_topics(settings)
    worker = start(worker_settings(settings, 0, work), work / f"{prefix}.log")
    try:
        worker.wait_ready(timeout=180)
        async with Producer(bootstrap) as producer:
            await producer.send_all(settings.topics.by_account, state_messages(plan))
            for block in range(2 * plan.trials):
                await producer.send_all(settings.topics.by_account,
                                        (trial_message(plan, block, n)
                                         for n in range(trial_total(plan))))
        await wait_committed(settings, [worker], timeout=600)
    finally:
        worker.stop(timeout=30)
    return settings


QUICK = Plan(accounts=2_000, users=3, trials=1, partitions=4, rate=50.0, trial_timeout=60.0)


@dataclass
class QuickResult:
    run: Run  # two workers, one killed
    reference: Settings  # the uninterrupted worker's topics and changelog
    comparison: Comparison


async def quick_check(bootstrap: str, work: Path) -> QuickResult:
    """Two workers, one kill -9; the changes against one uninterrupted worker's."""
    run = await failover_run(bootstrap, QUICK, 2, work, rebuild=False, tag="q")
    reference = await reference_run(bootstrap, QUICK, work)
    comparison = compare(await all_changes(bootstrap, reference),
                         await all_changes(bootstrap, run.settings))
    return QuickResult(run, reference, comparison)


# --------------------------------------------------------------------------- main


def print_settings(settings: Settings, standby_replicas: int) -> None:
    print(f"settings: session timeout {settings.kafka_session_timeout_seconds:g} s, "
          f"heartbeat {settings.kafka_heartbeat_interval_seconds:g} s, rebalance timeout "
          f"{settings.kafka_rebalance_timeout_seconds:g} s, {standby_replicas} standby "
          f"replica(s), {settings.partitions} partitions", flush=True)


async def main(opts: argparse.Namespace) -> int:
    with kafka(opts.bootstrap, opts.partitions) as bootstrap:
        work = Path(opts.keep) if opts.keep else Path(tempfile.mkdtemp(prefix="telltale-failover-"))
        work.mkdir(parents=True, exist_ok=True)
        try:
            print_settings(Settings.from_env(partitions=opts.partitions),
                           1 if opts.quick else opts.standby_replicas)
            if opts.quick:
                result = (await quick_check(bootstrap, work)).comparison
                print(f"quick: {result.reference} changes in the uninterrupted run; after the "
                      f"kill {result.distinct} distinct ids ({result.copies} re-sent copies), "
                      f"missing {len(result.missing)}, extra {len(result.extra)}, "
                      f"conflicting {len(result.conflicting)}", flush=True)
                return 0 if result.same else 1
            plan = Plan(accounts=opts.accounts, users=opts.users, trials=opts.trials,
                        partitions=opts.partitions, rate=opts.rate)
            print(f"plan: {plan.accounts:,} accounts x {plan.users} users, {plan.trials} "
                  f"trials per worker count, {plan.rate:g} fresh-account envelopes/s during "
                  f"a trial", flush=True)
            runs = []
            counts = [int(n) for n in opts.workers.split(",")]
            for i, count in enumerate(counts):
                runs.append(await failover_run(bootstrap, plan, count, work,
                                               standby_replicas=opts.standby_replicas,
                                               rebuild=opts.rebuild and i == len(counts) - 1,
                                               tag=str(count)))
            print("\nkill -9 → first health change from a survivor, per moved partition "
                  "(heard/asgn/ready: the survivor's log, s after the kill)")
            print(HEADER)
            for run in runs:
                for trial in run.trials:
                    print(trial.line())
                    print(trial.back_line())
            for run in runs:
                if run.rebuild_ready is not None or run.rebuild_first_change:
                    values = sorted(run.rebuild_first_change.values())
                    print(f"\nfull rebuild (one worker, empty directory, no standby, "
                          f"{plan.accounts:,} accounts): ready after "
                          f"{run.rebuild_ready or float('nan'):.1f} s; first change per "
                          f"partition max {max(values) if values else float('nan'):.1f} s, "
                          f"median {statistics.median(values) if values else float('nan'):.1f}"
                          f" s (load {run.rebuild_load})")
            return 0
        finally:
            if not opts.keep:
                shutil.rmtree(work, ignore_errors=True)


def cli() -> None:
    parser = parser_with_broker(__doc__)
    parser.add_argument("--workers", default="2,3", help="worker counts, comma-separated")
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--rate", type=float, default=100.0,
                        help="fresh-account envelopes per second during a trial")
    parser.add_argument("--standby-replicas", type=int, default=1,
                        help="standby replicas of each table partition (default 1)")
    parser.add_argument("--no-rebuild", dest="rebuild", action="store_false",
                        help="skip the full rebuild from the changelog")
    parser.add_argument("--quick", action="store_true",
                        help="2,000 accounts, 2 workers, 1 trial, checked against an "
                             "uninterrupted run (exit 1 on a difference)")
    parser.add_argument("--keep", metavar="DIR",
                        help="work in DIR and keep it (worker logs, state) afterwards")
    opts = parser.parse_args()
    sys.exit(asyncio.run(main(opts)))


if __name__ == "__main__":
    cli()

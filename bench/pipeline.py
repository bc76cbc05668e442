"""Benchmark of the score pipeline against the real broker. Prints figures; asserts nothing.

On the same generated events, each consumer in its own process:

  (a) raw aiokafka ``getmany`` + ``orjson.loads``, one event per message: the practical
      ceiling of a Python consumer here;
  (b) a naive, idiomatic Faust agent: one event per message, one JSON table update per
      event (run on a prefix of the data: it is slow);
  (c) Telltale's score agent (``telltale worker --module agents.score``, replay mode) on
      batch envelopes of the same events, through the real scoring core.

For each: events/s and peak RSS ((c) over the span from its first to its last account
record write, from the changelog's timestamps); then c/a and c/b; then the latency from
producing an envelope to its health change at half of (c)'s rate (live mode); then state
size and RSS for many accounts/users, and the time to rebuild that state from the
changelog after the local RocksDB directory is deleted.

    .venv/bin/python bench/pipeline.py                      # starts its own Kafka
    .venv/bin/python bench/pipeline.py --bootstrap 127.0.0.1:9092 --state-accounts 20000
    .venv/bin/python bench/pipeline.py --sasl    # every client logs in with SCRAM-SHA-512

Every client connects with the TLS and SASL of the ``TELLTALE_KAFKA_*`` variables (for a
``--bootstrap`` broker that wants them); ``--sasl`` starts a broker with a SASL_PLAINTEXT
listener and sets those variables for this process and its children.

The machine is shared: compare the ratios more than the absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack.workers import settings_env  # noqa: E402
from state import tables  # noqa: E402
from streams.envelope import ENVELOPES, Envelope, kafka_key  # noqa: E402
from streams.events import Event, EventType, Source  # noqa: E402
from streams.settings import Settings  # noqa: E402

DAY = 86_400.0
T0 = 1_704_067_200.0  # 2024-01-01 UTC
WORKSPACE = "bench"
ACTIVITY = ("Logged In", "Dashboard Viewed", "Report Published", "Workflow Completed",
            "Logged In", "Dashboard Viewed", "Export Created", "Logged In", "Teammate Invited")


# --------------------------------------------------------------------------- data


def _event(account: str, user: str, name: str, ts: float, n: int, rx: float) -> Event:
    return Event(workspace=WORKSPACE, message_id=f"e{n}", type=EventType.TRACK, timestamp=ts,
                 received_at=rx, source=Source.KAFKA, name=name, user_id=user,
                 account_id=account)


def generate(events: int, accounts: int, users: int, days: int,
             seed: int = 1) -> list[tuple[str, list[Event]]]:
    """``events`` events over ``days`` days, as (account, one day of its events) slices
    in time order: each slice becomes one envelope for (c) and that many messages for
    (a) and (b)."""
    rng = random.Random(seed)
    per_slice = max(1, events // (accounts * days))
    slices: list[tuple[str, list[Event]]] = []
    n = 0
    for day in range(days):
        for a in range(accounts):
            account = f"acc-{a:06d}"
            base = T0 + day * DAY + 8 * 3600
            batch = [
                _event(account, f"{account}-u{rng.randrange(users)}",
                       ACTIVITY[rng.randrange(len(ACTIVITY))], base + i * 7.0, n + i, base)
                for i in range(per_slice)
            ]
            n += per_slice
            slices.append((account, batch))
    return slices


def client_options() -> dict[str, Any]:
    """aiokafka options of every client here, from the ``TELLTALE_KAFKA_*`` variables."""
    return Settings.from_env().kafka_security.aiokafka_options()


async def produce(bootstrap: str, topic: str, messages: Iterator[tuple[bytes, bytes]],
                  partitions: int) -> int:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                max_batch_size=512 * 1024, compression_type=None,
                                **client_options())
    await producer.start()
    count = 0
    try:
        pending = []
        for key, value in messages:
            pending.append(await producer.send(topic, value, key=key))
            count += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count


def single_event_messages(slices: Sequence[tuple[str, list[Event]]],
                          limit: int | None = None) -> Iterator[tuple[bytes, bytes]]:
    n = 0
    for account, batch in slices:
        for event in batch:
            if limit is not None and n >= limit:
                return
            yield kafka_key(WORKSPACE, account), orjson.dumps(event.to_wire())
            n += 1


def envelope_messages(
    slices: Sequence[tuple[str, list[Event]]],
) -> Iterator[tuple[bytes, bytes]]:
    for account, batch in slices:
        yield kafka_key(WORKSPACE, account), ENVELOPES.encode(Envelope(WORKSPACE, account, batch))


# --------------------------------------------------------------------------- helpers


def peak_rss_mib(pid: int | None = None) -> float:
    """VmHWM (peak resident set) of a process, MiB."""
    status = Path(f"/proc/{pid or 'self'}/status").read_text()
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def dir_mib(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, name))
    return total / 2**20


@dataclass
class Figure:
    name: str
    events: int
    seconds: float
    peak_rss_mib: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (f"  {self.name:<46} {self.rate:>10,.0f} events/s   "
                f"({self.events:,} events in {self.seconds:.2f} s, peak RSS "
                f"{self.peak_rss_mib:,.0f} MiB)")


def cpu_seconds(pid: int | None = None) -> float:
    """User plus system CPU time of a process and all its threads so far, seconds."""
    fields = Path(f"/proc/{pid or 'self'}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_phase(args: list[str], script: str = __file__) -> dict[str, Any]:
    """Run ``script`` (this one by default) in a child process for one phase; it prints
    one JSON line."""
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                         cwd=ROOT, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"phase {args[:2]} failed:\n{out.stderr[-3000:]}")
    # Faust's console spinner may put escape codes in front of the line.
    lines = [line[line.index('{"events"'):] for line in out.stdout.splitlines()
             if '{"events"' in line]
    if not lines:
        raise RuntimeError(f"phase {args[:2]} printed no result:\n{out.stdout[-2000:]}")
    result: dict[str, Any] = orjson.loads(lines[-1])
    return result


# --------------------------------------------------------------------------- (a) raw


async def phase_raw(bootstrap: str, topic: str, expected: int) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 2**20, fetch_max_bytes=64 * 2**20,
                                **client_options())
    await consumer.start()
    count = 0
    started: float | None = None
    try:
        while count < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=20_000)
            for records in batches.values():
                if started is None:
                    started = time.perf_counter()
                for record in records:
                    orjson.loads(record.value)
                    count += 1
    finally:
        await consumer.stop()
    elapsed = time.perf_counter() - (started or time.perf_counter())
    return {"events": count, "seconds": elapsed, "peak_rss_mib": peak_rss_mib()}


# --------------------------------------------------------------------------- (b) naive


def phase_naive(bootstrap: str, topic: str, expected: int, data_dir: str) -> None:
    """One event per message, one table update per event, as Faust's docs teach it."""
    import faust

    app = faust.App(f"naive-{uuid.uuid4().hex[:8]}", broker=f"kafka://{bootstrap}",
                    broker_credentials=Settings.from_env().kafka_security.faust_credentials(),
                    store="rocksdb://", datadir=data_dir, autodiscover=False,
                    web_enabled=False, consumer_auto_offset_reset="earliest",
                    topic_partitions=4)
    source = app.topic(topic, value_type=bytes, value_serializer="raw")
    accounts = app.Table("naive-accounts", default=dict, partitions=4,
                         options={"block_cache_size": 8 * 2**20,
                                  "write_buffer_size": 8 * 2**20})
    state: dict[str, Any] = {"count": 0, "started": None}

    @app.agent(source)
    async def count(stream: Any) -> None:
        async for value in stream:
            if state["started"] is None:
                state["started"] = time.perf_counter()
            event = orjson.loads(value)
            account = event["acc"]
            record = accounts[account]
            day = str(int(event["ts"] // DAY))
            days = record.setdefault("days", {})
            days[day] = days.get(day, 0) + 1
            record["events"] = record.get("events", 0) + 1
            record["last_seen"] = max(record.get("last_seen", 0), event["ts"])
            accounts[account] = record
            state["count"] += 1
            if state["count"] >= expected:
                elapsed = time.perf_counter() - state["started"]
                print(orjson.dumps({"events": state["count"], "seconds": elapsed,
                                    "peak_rss_mib": peak_rss_mib()}).decode(), flush=True)
                os.kill(os.getpid(), signal.SIGTERM)

    worker = faust.Worker(app, loglevel="error", quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


# --------------------------------------------------------------------------- (c) score


def worker_settings(bootstrap: str, prefix: str, partitions: int, data_dir: Path,
                    replay: bool) -> Settings:
    from devstack.process import free_port

    port = free_port()
    return Settings(topic_prefix=prefix, app_id=prefix,
                    partitions=partitions, data_dir=data_dir, web_port=port,
                    public_url=f"http://127.0.0.1:{port}", replay=replay,
                    standby_replicas=0, tick_interval=1.0,
                    ).with_kafka(bootstrap, Settings.from_env().kafka_security)


class ScoreWorker:
    """``telltale worker --module agents.score`` in a child process."""

    def __init__(self, settings: Settings, log_path: Path,
                 python_args: Sequence[str] = ()) -> None:
        """``python_args`` go before ``-m agents.cli`` (a profiler's, say)."""
        from devstack.workers import settings_env

        env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1"}
        self.settings = settings
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, *python_args, "-m", "agents.cli", "worker", "--module",
             "agents.score"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.started = time.perf_counter()

    def wait_ready(self, timeout: float = 600) -> float:
        deadline = time.monotonic() + timeout
        while "Worker]: Ready" not in self.log_path.read_text(errors="replace"):
            if self.process.poll() is not None:
                raise RuntimeError("worker exited:\n" + self.log_path.read_text()[-3000:])
            if time.monotonic() > deadline:
                raise TimeoutError("worker not ready")
            time.sleep(0.05)
        return time.perf_counter() - self.started

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


async def committed_total(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False, **client_options())
    await consumer.start()
    try:
        total = 0
        for p in range(partitions):
            offset = await consumer.committed(TopicPartition(topic, p))
            total += offset or 0
        return total
    finally:
        await consumer.stop()


async def account_write_span(bootstrap: str, changelog: str) -> float:
    """Seconds from the first to the last account record the score agent wrote (every
    by-account message writes its account's record once), from the changelog's record
    timestamps: when processing began and ended, without guessing from commits."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest",
                                max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20,
                                **client_options())
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(changelog, p)
                      for p in consumer.partitions_for_topic(changelog) or ()]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        first = last = None

        async def behind() -> bool:
            for tp, end in ends.items():
                if await consumer.position(tp) < end:
                    return True
            return False

        while await behind():
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    if record.key is not None and record.key.startswith(tables.ACCOUNT):
                        t = record.timestamp
                        first = t if first is None else min(first, t)
                        last = t if last is None else max(last, t)
        if first is None or last is None:
            raise RuntimeError(f"no account records in {changelog}")
        return max((last - first) / 1000.0, 1e-3)
    finally:
        await consumer.stop()


async def score_throughput(bootstrap: str, slices: Sequence[tuple[str, list[Event]]],
                           partitions: int, work: Path) -> tuple[Figure, float]:
    prefix = f"bc{uuid.uuid4().hex[:8]}"
    settings = worker_settings(bootstrap, prefix, partitions, work / prefix, replay=True)
    messages = await produce(bootstrap, settings.topics.by_account, envelope_messages(slices),
                             partitions)
    events = sum(len(b) for _, b in slices)
    elapsed, peak, _cpu = await drain_score_worker(bootstrap, settings, messages, work)
    return Figure("(c) score agent, batch envelopes", events, elapsed, peak), \
        events / messages


async def drain_score_worker(bootstrap: str, settings: Settings, messages: int,
                             work: Path, python_args: Sequence[str] = ()
                             ) -> tuple[float, float, float]:
    """Run the score worker over its by-account topic until it has committed ``messages``
    messages. Returns the span of its account record writes (s), its peak RSS (MiB) and
    the CPU it spent from ready to done (s)."""
    worker = ScoreWorker(settings, work / f"{settings.app_id}.log", python_args)
    try:
        worker.wait_ready()
        cpu_at_ready = cpu_seconds(worker.process.pid)
        peak = 0.0
        # Only the group's committed offsets are polled while the worker runs (cheap);
        # the span is read afterwards from the changelog.
        while await committed_total(bootstrap, settings.app_id, settings.topics.by_account,
                                    settings.partitions) < messages:
            peak = max(peak, peak_rss_mib(worker.process.pid))
            if worker.process.poll() is not None:
                raise RuntimeError("score worker died")
            await asyncio.sleep(0.2)
        cpu = cpu_seconds(worker.process.pid) - cpu_at_ready
        peak = max(peak, peak_rss_mib(worker.process.pid))
    finally:
        worker.stop()
    changelog = f"{settings.app_id}-{tables.STATE_TABLE}-changelog"
    return await account_write_span(bootstrap, changelog), peak, cpu


async def score_latency(bootstrap: str, rate: float, partitions: int, work: Path,
                        per_envelope: int, seconds: float) -> list[float]:
    """Envelopes for fresh accounts at ``rate`` events/s in live mode; each account's
    first assessment is a health change: latency = change received - envelope produced."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    prefix = f"bl{uuid.uuid4().hex[:8]}"
    settings = worker_settings(bootstrap, prefix, partitions, work / prefix, replay=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options())
    await admin.start()
    await admin.create_topics([NewTopic(settings.topics.by_account, partitions, 1),
                               NewTopic(settings.topics.health_changes, partitions, 1)])
    await admin.close()
    worker = ScoreWorker(settings, work / f"{prefix}.log")
    sent: dict[str, float] = {}
    latencies: list[float] = []
    try:
        worker.wait_ready()
        consumer = AIOKafkaConsumer(settings.topics.health_changes, bootstrap_servers=bootstrap,
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    **client_options())
        await consumer.start()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1,
                                    **client_options())
        await producer.start()

        async def collect() -> None:
            while True:
                batches = await consumer.getmany(timeout_ms=200)
                now = time.time()
                for records in batches.values():
                    for record in records:
                        account = orjson.loads(record.value)["account_id"]
                        if account in sent and account not in seen:
                            seen.add(account)
                            latencies.append(now - sent[account])

        seen: set[str] = set()
        collector = asyncio.create_task(collect())
        interval = per_envelope / rate
        n = 0
        start = time.time()
        while time.time() - start < seconds:
            account = f"lat-{n:07d}"
            now = time.time()
            batch = [_event(account, f"{account}-u{i % 20}", ACTIVITY[i % len(ACTIVITY)],
                            now - 1, i, now) for i in range(per_envelope)]
            sent[account] = now
            await producer.send(settings.topics.by_account,
                                ENVELOPES.encode(Envelope(WORKSPACE, account, batch)),
                                key=kafka_key(WORKSPACE, account))
            n += 1
            delay = start + n * interval - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
        await producer.flush()
        deadline = time.time() + 30
        while len(seen) < n and time.time() < deadline:
            await asyncio.sleep(0.2)
        collector.cancel()
        await producer.stop()
        await consumer.stop()
    finally:
        worker.stop()
    return latencies


async def state_size(bootstrap: str, accounts: int, users: int, partitions: int,
                     work: Path) -> dict[str, float]:
    """``accounts`` accounts with ``users`` users each, one event per user; then the
    worker's state on disk and RSS, and a rebuild from the changelog."""
    prefix = f"bs{uuid.uuid4().hex[:8]}"
    settings = worker_settings(bootstrap, prefix, partitions, work / prefix, replay=True)

    def messages() -> Iterator[tuple[bytes, bytes]]:
        for a in range(accounts):
            account = f"acc-{a:07d}"
            batch = [_event(account, f"{account}-u{u}", ACTIVITY[u % len(ACTIVITY)],
                            T0 + u * 60, u, T0) for u in range(users)]
            yield kafka_key(WORKSPACE, account), ENVELOPES.encode(
                Envelope(WORKSPACE, account, batch))

    t = time.perf_counter()
    count = await produce(bootstrap, settings.topics.by_account, messages(), partitions)
    produce_s = time.perf_counter() - t
    worker = ScoreWorker(settings, work / f"{prefix}.log")
    try:
        worker.wait_ready()
        t = time.perf_counter()
        while await committed_total(bootstrap, prefix, settings.topics.by_account,
                                    partitions) < count:
            if worker.process.poll() is not None:
                raise RuntimeError("score worker died")
            await asyncio.sleep(1.0)
        process_s = time.perf_counter() - t
        await asyncio.sleep(3)  # let the last changelog writes land
        rss = rss_mib(worker.process.pid)
        peak = peak_rss_mib(worker.process.pid)
    finally:
        worker.stop()
    disk = dir_mib(settings.data_dir)
    shutil.rmtree(settings.data_dir)
    rebuilt = ScoreWorker(settings, work / f"{prefix}-rebuild.log")
    try:
        recovery_s = rebuilt.wait_ready(timeout=1200)
        recovered_rss = rss_mib(rebuilt.process.pid)
    finally:
        rebuilt.stop()
    return {"produce_s": produce_s, "process_s": process_s, "rss_mib": rss,
            "peak_rss_mib": peak, "disk_mib": disk, "recovery_s": recovery_s,
            "recovered_rss_mib": recovered_rss, "recovered_disk_mib": dir_mib(settings.data_dir),
            "messages": count}


# --------------------------------------------------------------------------- main


@contextlib.contextmanager
def kafka(bootstrap: str | None, partitions: int, sasl: bool = False) -> Iterator[str]:
    """The ``--bootstrap`` broker, or one started for the run (``partitions`` partitions
    a topic) and stopped after it. ``sasl`` starts one whose clients all log in with
    SCRAM-SHA-512, whatever ``bootstrap`` says, and sets the ``TELLTALE_KAFKA_*``
    variables of that login for this process and its children."""
    broker = None
    if sasl:
        from devstack.kafka import start_kafka_with_login

        broker, bootstrap, security = start_kafka_with_login(partitions=partitions)
        # The phases and workers run in child processes: they inherit the login this way.
        os.environ.update({name: value for name, value in
                           settings_env(Settings().with_kafka(bootstrap, security)).items()
                           if name.startswith("TELLTALE_KAFKA_")})
    elif not bootstrap:
        from devstack.kafka import start_kafka

        broker = start_kafka(partitions=partitions)
        bootstrap = broker.bootstrap
    try:
        yield bootstrap
    finally:
        if broker is not None:
            broker.stop()


def parser_with_broker(doc: str) -> argparse.ArgumentParser:
    """A bench's command line: described by the first paragraph of ``doc``, with
    ``--bootstrap`` (see :func:`kafka`)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="host:port of a running broker (else start one)")
    return parser


async def main(opts: argparse.Namespace) -> None:
    with kafka(opts.bootstrap, opts.partitions, sasl=opts.sasl) as bootstrap:
        work = Path(tempfile.mkdtemp(prefix="telltale-bench-"))
        try:
            slices = generate(opts.events, opts.accounts, opts.users, opts.days)
            events = sum(len(b) for _, b in slices)
            print(f"data: {events:,} events, {opts.accounts:,} accounts x {opts.users} users, "
                  f"{opts.days} days, {opts.partitions} partitions; envelopes of "
                  f"{events // len(slices)} events (one account-day each)", flush=True)

            raw_topic = f"br{uuid.uuid4().hex[:8]}.events"
            await produce(bootstrap, raw_topic, single_event_messages(slices), opts.partitions)
            a = Figure("(a) raw aiokafka getmany + orjson", **run_phase(
                ["--phase", "raw", "--bootstrap", bootstrap, "--topic", raw_topic,
                 "--expected", str(events)]))
            print(a.line(), flush=True)

            naive_events = min(opts.naive_events, events)
            naive_topic = f"bn{uuid.uuid4().hex[:8]}.events"
            await produce(bootstrap, naive_topic, single_event_messages(slices, naive_events),
                          opts.partitions)
            b = Figure(f"(b) naive Faust agent, 1 update/event ({naive_events:,})", **run_phase(
                ["--phase", "naive", "--bootstrap", bootstrap, "--topic", naive_topic,
                 "--expected", str(naive_events), "--data-dir", str(work / "naive")]))
            print(b.line(), flush=True)

            c, _per_message = await score_throughput(bootstrap, slices, opts.partitions, work)
            print(c.line(), flush=True)
            print(f"  c/a = {c.rate / a.rate:.2f}   c/b = {c.rate / b.rate:.1f}x", flush=True)

            half = c.rate / 2
            per_envelope = events // len(slices)  # the envelope size (c) was measured with
            latencies = await score_latency(bootstrap, half, opts.partitions, work,
                                            per_envelope, opts.latency_seconds)
            if latencies:
                qs = statistics.quantiles(latencies, n=100)
                print(f"latency at {half:,.0f} events/s (half of c; envelopes of "
                      f"{per_envelope}, live mode, {len(latencies):,} changes): "
                      f"p50 {qs[49] * 1000:.0f} ms, p99 {qs[98] * 1000:.0f} ms", flush=True)

            if opts.state_accounts:
                s = await state_size(bootstrap, opts.state_accounts, opts.state_users,
                                     opts.partitions, work)
                n_users = opts.state_accounts * opts.state_users
                print(f"state: {opts.state_accounts:,} accounts / {n_users:,} users "
                      f"({s['messages']:,.0f} envelopes, produced in {s['produce_s']:.0f} s, "
                      f"processed in {s['process_s']:.0f} s)", flush=True)
                print(f"  RocksDB on disk {s['disk_mib']:,.0f} MiB, worker RSS "
                      f"{s['rss_mib']:,.0f} MiB (peak {s['peak_rss_mib']:,.0f} MiB)")
                print(f"  rebuild from the changelog after deleting the local state: "
                      f"{s['recovery_s']:.1f} s to ready, RSS {s['recovered_rss_mib']:,.0f} MiB, "
                      f"disk {s['recovered_disk_mib']:,.0f} MiB", flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def cli() -> None:
    parser = parser_with_broker(__doc__)
    parser.add_argument("--sasl", action="store_true",
                        help="start a broker whose clients all log in with SCRAM-SHA-512")
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--accounts", type=int, default=150)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--naive-events", type=int, default=20_000)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--state-accounts", type=int, default=100_000)
    parser.add_argument("--state-users", type=int, default=10)
    parser.add_argument("--phase", choices=["raw", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--expected", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.phase == "raw":
        result = asyncio.run(phase_raw(opts.bootstrap, opts.topic, opts.expected))
        print(orjson.dumps(result).decode())
    elif opts.phase == "naive":
        phase_naive(opts.bootstrap, opts.topic, opts.expected, opts.data_dir)
    else:
        asyncio.run(main(opts))


if __name__ == "__main__":
    cli()

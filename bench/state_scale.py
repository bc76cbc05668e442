"""How one score worker's state grows: disk, memory and recovery time against the number
of accounts (ten users each by default), against the real broker. Prints figures;
asserts nothing.

For each size of ``--accounts`` (a growth curve, smallest first), on one broker:

  one ``telltale worker --module agents.score`` on an empty directory, no standby; every
  account sent once with its users (one envelope per account, one event per user); once
  the group has committed the end of the by-account topic:
    load     envelopes/s and events/s while the state was built
    rss      the worker's resident memory now and its peak (VmRSS, VmHWM)
    disk     the worker's RocksDB directory, and the state changelog on the broker
  then the worker is stopped (SIGTERM) and started again twice:
    restart  on its own directory (a clean stop leaves the local state trusted):
             seconds to ready, and its peak memory
    rebuild  on an empty directory: every record replayed from the changelog, the path
             of last resort: seconds to ready, records/s, and its peak memory

and last, each figure per 10,000 accounts, so the curve shows what grows linearly.

    .venv/bin/python bench/state_scale.py                      # 10k, 30k, 100k, 300k
    .venv/bin/python bench/state_scale.py --accounts 1000000 --users 10
    .venv/bin/python bench/state_scale.py --accounts 2000 --users 3   # a quick look

The machine may be shared: the figures print next to the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.failover import (  # noqa: E402
    Plan,
    Producer,
    bench_settings,
    changelog_topic,
    create_topics,
    load_average,
    start,
    state_messages,
    wait_committed,
    worker_settings,
)
from bench.pipeline import peak_rss_mib, rss_mib  # noqa: E402
from devstack.workers import WorkerProcess  # noqa: E402
from streams.settings import Settings  # noqa: E402

MIB = 1024 * 1024


@dataclass
class Size:
    """The figures of one size of the curve."""

    accounts: int
    users: int
    load_seconds: float = 0.0
    rss_mib: float = 0.0
    peak_mib: float = 0.0
    rocksdb_mib: float = 0.0
    changelog_mib: float = 0.0
    changelog_records: int = 0
    restart_seconds: float = 0.0
    restart_peak_mib: float = 0.0
    rebuild_seconds: float = 0.0
    rebuild_peak_mib: float = 0.0
    load: str = ""

    @property
    def events(self) -> int:
        return self.accounts * self.users


def memory_mib(pid: int) -> tuple[float, float]:
    """(resident, peak resident) memory of process ``pid`` in MiB."""
    return rss_mib(pid), peak_rss_mib(pid)


def directory_mib(path: Path, prefix: str = "", suffix: str = "") -> float:
    """Bytes of the files under ``path`` whose names end with ``suffix`` (only top-level
    entries whose name starts with ``prefix``), in MiB."""
    total = 0
    if not path.exists():
        return 0.0
    for entry in path.iterdir():
        if not entry.name.startswith(prefix):
            continue
        files: Iterator[Path] = entry.rglob("*") if entry.is_dir() else iter([entry])
        total += sum(f.stat().st_size for f in files
                     if f.is_file() and f.name.endswith(suffix))
    return total / MIB


async def changelog_records(settings: Settings) -> int:
    """Records in the state changelog (end minus start offsets: before compaction)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap,
                                **settings.kafka_security.aiokafka_options())
    await consumer.start()
    try:
        topic = changelog_topic(settings)
        parts = [TopicPartition(topic, p) for p in range(settings.partitions)]
        ends = await consumer.end_offsets(parts)
        starts = await consumer.beginning_offsets(parts)
        return sum(ends[p] - starts[p] for p in parts)
    finally:
        await consumer.stop()


def ready_after(worker: WorkerProcess, timeout: float) -> tuple[float, float]:
    """Seconds from now until ``worker`` is ready, and its peak memory then (MiB)."""
    started = time.monotonic()
    worker.wait_ready(timeout=timeout)
    took = time.monotonic() - started
    return took, memory_mib(worker.process.pid)[1]


async def measure(bootstrap: str, broker_data: Path, accounts: int, users: int,
                  partitions: int, work: Path) -> Size:
    plan = Plan(accounts=accounts, users=users, trials=0, partitions=partitions)
    prefix = f"ss{os.getpid() % 10_000}x{accounts}"
    base = bench_settings(bootstrap, prefix, plan, standby_replicas=0)
    await create_topics(base)
    config = worker_settings(base, 0, work)
    size = Size(accounts, users, load=load_average())
    worker = start(config, work / f"{prefix}-load.log")
    try:
        worker.wait_ready(timeout=180)
        async with Producer(bootstrap) as producer:
            started = time.monotonic()
            await producer.send_all(base.topics.by_account, state_messages(plan))
            await wait_committed(base, [worker], timeout=4 * 3600)
            size.load_seconds = time.monotonic() - started
        size.rss_mib, size.peak_mib = memory_mib(worker.process.pid)
    finally:
        worker.stop(timeout=120)
    size.rocksdb_mib = directory_mib(config.data_dir)
    # Segments only: the broker preallocates its index files.
    size.changelog_mib = directory_mib(broker_data, changelog_topic(base) + "-", ".log")
    size.changelog_records = await changelog_records(base)

    worker = start(config, work / f"{prefix}-restart.log")
    try:
        size.restart_seconds, size.restart_peak_mib = ready_after(worker, 3600)
    finally:
        worker.stop(timeout=120)
    shutil.rmtree(config.data_dir, ignore_errors=True)
    worker = start(config, work / f"{prefix}-rebuild.log")
    try:
        size.rebuild_seconds, size.rebuild_peak_mib = ready_after(worker, 4 * 3600)
    finally:
        worker.stop(timeout=120)
    shutil.rmtree(config.data_dir, ignore_errors=True)
    return size


def print_size(s: Size) -> None:
    rate = s.changelog_records / s.rebuild_seconds if s.rebuild_seconds else float("nan")
    print(f"{s.accounts:>9,} accounts {s.events:>10,} users | load {s.load_seconds:6.0f} s "
          f"({s.events / s.load_seconds:7,.0f} events/s) | rss {s.rss_mib:6.0f} MiB, peak "
          f"{s.peak_mib:6.0f} | rocksdb {s.rocksdb_mib:7.0f} MiB, changelog "
          f"{s.changelog_mib:7.0f} MiB ({s.changelog_records:,} records) | restart "
          f"{s.restart_seconds:5.1f} s (peak {s.restart_peak_mib:.0f} MiB) | rebuild "
          f"{s.rebuild_seconds:6.1f} s ({rate:,.0f} records/s, peak "
          f"{s.rebuild_peak_mib:.0f} MiB) | load average {s.load}", flush=True)


def print_growth(sizes: list[Size]) -> None:
    """Each figure's growth per 10,000 more accounts between one size and the next
    (the first row: per 10,000 accounts from nothing, fixed costs included)."""
    print("\nper 10,000 more accounts than the size before (a steady column: linear growth)")
    print(f"{'accounts':>10} | {'rss MiB':>8} | {'peak MiB':>8} | {'rocksdb MiB':>11} | "
          f"{'changelog MiB':>13} | {'rebuild s':>9} | {'restart s':>9} | {'load s':>7}")
    before = Size(0, sizes[0].users) if sizes else None
    for s in sizes:
        assert before is not None
        step = (s.accounts - before.accounts) / 10_000

        def grew(name: str, s: Size = s, b: Size = before, step: float = step) -> float:
            return float(getattr(s, name) - getattr(b, name)) / step

        print(f"{s.accounts:>10,} | {grew('rss_mib'):8.1f} | {grew('peak_mib'):8.1f} | "
              f"{grew('rocksdb_mib'):11.1f} | {grew('changelog_mib'):13.1f} | "
              f"{grew('rebuild_seconds'):9.2f} | {grew('restart_seconds'):9.2f} | "
              f"{grew('load_seconds'):7.2f}")
        before = s


async def main(opts: argparse.Namespace) -> int:
    from devstack.kafka import start_kafka

    broker = start_kafka(partitions=opts.partitions)
    work = Path(tempfile.mkdtemp(prefix="telltale-state-scale-"))
    try:
        print(f"one worker, {opts.partitions} partitions, {opts.users} users per account, "
              f"no standby", flush=True)
        sizes = []
        for accounts in (int(n) for n in opts.accounts.split(",")):
            sizes.append(await measure(broker.bootstrap, broker.work_dir / "data", accounts,
                                       opts.users, opts.partitions, work))
            print_size(sizes[-1])
        print_growth(sizes)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
        broker.stop()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", default="10000,30000,100000,300000",
                        help="sizes of the curve, comma-separated")
    parser.add_argument("--users", type=int, default=10, help="users per account")
    parser.add_argument("--partitions", type=int, default=8)
    sys.exit(asyncio.run(main(parser.parse_args())))


if __name__ == "__main__":
    cli()

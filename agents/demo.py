"""``telltale demo``: the whole loop on this machine, started and stopped by one command.

Steps (each its own function, so the demo grows with the product):

1. :func:`start_services` - reuse the services of ``telltale dev up`` if they are up,
   otherwise start a private Kafka and Redis that stop with the demo.
2. :func:`demo_settings` - settings pointing at them, with a fresh topic prefix and data dir.
3. :func:`start_demo_worker` - ``telltale worker`` (the pipeline, or the walking skeleton
   while no pipeline module is registered).
4. :func:`feed` - produce a simulated portfolio's recent history (``history.simulate``)
   into the events topic, as a direct Segment-spec producer would.
5. :func:`show_changes` - print health changes as they arrive, until Ctrl-C or
   ``--duration`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from agents.app import MODULES, SKELETON_MODULES
from agents.settings import Settings
from devstack.process import free_port
from devstack.stack import LocalStack
from devstack.topics import Record, consume_until, produce
from devstack.workers import WorkerProcess, start_worker


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo", help="run Kafka, Redis, a worker and sample traffic on this machine",
        description="Start local Kafka and Redis (or reuse `telltale dev up`), a worker, "
                    "and sample traffic; print health changes until Ctrl-C.",
    )
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many seconds (default: run until Ctrl-C)")
    parser.add_argument("--accounts", type=int, default=20, help="simulated accounts to feed")
    parser.add_argument("--days", type=int, default=30,
                        help="days of simulated history, ending now, to feed")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the simulation")
    parser.add_argument("--web-port", type=int, default=None,
                        help="HTTP port of the worker (default: 6066 if free, else any)")
    return parser


def run(args: argparse.Namespace) -> int:
    return run_demo(args)


@dataclass
class DemoContext:
    args: argparse.Namespace
    settings: Settings
    worker: WorkerProcess
    work_dir: Path


def run_demo(args: argparse.Namespace) -> int:
    with start_services() as addresses, _work_dir() as work_dir:
        settings = demo_settings(addresses, work_dir, args.web_port)
        say(f"Kafka {settings.kafka_bootstrap}, Redis {settings.redis_url}")
        say("starting the worker...")
        worker = start_demo_worker(settings, work_dir)
        try:
            context = DemoContext(args, settings, worker, work_dir)
            say(f"worker ready: {worker.url}  (metrics: {worker.url}/metrics, "
                f"log: {worker.log_path})")
            sent = asyncio.run(feed(context))
            say(f"sent {sent} sample events to {settings.topics.events}")
            show_changes(context)
        finally:
            say("stopping the worker...")
            worker.stop()
    say("demo stopped")
    return 0


def say(message: str) -> None:
    print(f"[demo] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def start_services() -> Iterator[dict[str, str]]:
    """Addresses of a running Kafka and Redis: ``telltale dev up``'s, or private ones."""
    shared = LocalStack()
    addresses = shared.addresses()
    if {"kafka", "redis"} <= addresses.keys():
        say("using the services of `telltale dev up`")
        yield addresses
        return
    say("starting Kafka and Redis (the first run downloads the Kafka jars)...")
    with tempfile.TemporaryDirectory(prefix="telltale-demo-stack-") as run_dir:
        stack = LocalStack(Path(run_dir))
        try:
            yield stack.up(detached=False)
        finally:
            say("stopping Kafka and Redis...")
            stack.down()


@contextlib.contextmanager
def _work_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="telltale-demo-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def demo_settings(addresses: dict[str, str], work_dir: Path,
                  web_port: int | None = None) -> Settings:
    """Settings from the environment, pointed at the demo's services and folders."""
    port = web_port or (6066 if _port_free(6066) else free_port())
    prefix = f"demo-{uuid.uuid4().hex[:6]}"
    return Settings.from_env(
        broker=f"kafka://{addresses['kafka']}",
        redis_url=addresses["redis"],
        topic_prefix=prefix,
        app_id=prefix,
        data_dir=work_dir / "data",
        web_port=port,
        public_url=f"http://127.0.0.1:{port}",
        standby_replicas=0,
    )


def _port_free(port: int) -> bool:
    from devstack.process import port_is_free

    return port_is_free(port)


def start_demo_worker(settings: Settings, work_dir: Path) -> WorkerProcess:
    args = [] if MODULES else [f"--module={name}" for name in SKELETON_MODULES]
    return start_worker(settings, args, log_path=work_dir / "worker.log",
                        env={"TELLTALE_SKELETON_THRESHOLD": "5"})


async def feed(context: DemoContext) -> int:
    """The last ``--days`` days of a simulated portfolio, in time order, keyed by person."""
    from history.simulate import simulate_recent

    _, events = simulate_recent(time.time(), days=context.args.days,
                                accounts=context.args.accounts, seed=context.args.seed)
    messages = ((event.get("userId") or event.get("anonymousId"), event) for event in events)
    return await produce(context.settings.kafka_bootstrap, context.settings.topics.events,
                         messages)


def describe_change(change: dict[str, Any]) -> str:
    """One line per health change; anything else (the skeleton's counts) as JSON."""
    current = change.get("current")
    if not isinstance(current, dict):
        return orjson.dumps(change).decode()
    name = change.get("account_name") or change.get("account_id")
    return (f"{name}: {current.get('score')} {current.get('band')} "
            f"[{', '.join(change.get('reasons') or [])}] {change.get('explanation', '')}")


def show_changes(context: DemoContext) -> None:
    """Print each health change as it arrives, until Ctrl-C or ``--duration``."""
    duration = context.args.duration
    printed = 0

    def report(records: list[Record]) -> bool:
        nonlocal printed
        for record in records[printed:]:
            print(describe_change(orjson.loads(record.value) if record.value else {}),
                  flush=True)
        printed = len(records)
        return False  # only the timeout (--duration) or Ctrl-C ends the demo

    say("health changes (Ctrl-C to stop):")
    with contextlib.suppress(KeyboardInterrupt, TimeoutError):
        asyncio.run(consume_until(context.settings.kafka_bootstrap,
                                  context.settings.topics.health_changes, report,
                                  timeout=duration if duration is not None else 10**9))

"""``telltale demo``: the whole loop on this machine, started and stopped by one command.

Steps (each its own function, so the demo grows with the product):

1. :func:`start_services` - reuse the services of ``telltale dev up`` if they are up,
   otherwise start a private Kafka and Redis that stop with the demo.
2. :func:`demo_settings` - settings pointing at them, with a fresh topic prefix and data
   dir, in replay mode: the demo backfills a month of history in seconds, so time must
   come from the events (a live clock would find everybody a month quiet at first).
3. :func:`start_demo_worker` - ``telltale worker``: collector, resolve, score, notify,
   API and page in one process.
4. :func:`feed` - post a simulated portfolio's recent history (``history.simulate``) to
   the worker's HTTP collector in Segment batches of 100, as an SDK would.
5. :func:`tail_changes` - print health changes as they arrive; once the stream settles,
   :func:`print_attention` prints each owner's worklist from the API (every account with
   the reasons that put it there, in words) and the address of the CSM page. Runs until
   Ctrl-C or ``--duration``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
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
from devstack.process import free_port
from devstack.stack import LocalStack
from devstack.workers import WorkerProcess, start_worker
from streams.health_change import HEALTH_CHANGES, HealthChangeError, HealthChangeRecord
from streams.settings import Settings


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
    parser.add_argument("--once", action="store_true",
                        help="stop once the feed has settled and the summary is printed")
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
            say(f"worker ready: {worker.url}  (metrics: {worker.metrics_url}/metrics, "
                f"log: {worker.log_path})")
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(_run(context))
        finally:
            say("stopping the worker...")
            worker.stop()
    say("demo stopped")
    return 0


async def _run(context: DemoContext) -> None:
    fed = asyncio.Event()

    async def feeding() -> None:
        try:
            sent = await feed(context)
            say(f"posted {sent} simulated events to the collector at {context.worker.url}")
        finally:
            fed.set()

    feeder = asyncio.create_task(feeding())
    try:
        await tail_changes(context, fed)
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
        if feeder.done() and not feeder.cancelled() and feeder.exception() is not None:
            raise feeder.exception()  # type: ignore[misc]


def say(message: str) -> None:
    print(f"[demo] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def start_services() -> Iterator[dict[str, str]]:
    """Addresses of a running Kafka and Redis: the ones ``TELLTALE_BROKER`` and
    ``TELLTALE_REDIS_URL`` name when both are set, ``telltale dev up``'s, or private ones."""
    if {"TELLTALE_BROKER", "TELLTALE_REDIS_URL"} <= os.environ.keys():
        say("using the Kafka and Redis of TELLTALE_BROKER and TELLTALE_REDIS_URL")
        yield {"kafka": os.environ["TELLTALE_BROKER"].removeprefix("kafka://"),
               "redis": os.environ["TELLTALE_REDIS_URL"]}
        return
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
    metrics_port = Settings().metrics_port
    metrics_port = metrics_port if _port_free(metrics_port) else free_port()
    prefix = f"demo-{uuid.uuid4().hex[:6]}"
    return Settings.from_env(
        broker=f"kafka://{addresses['kafka']}",
        redis_url=addresses["redis"],
        topic_prefix=prefix,
        app_id=prefix,
        data_dir=work_dir / "data",
        web_port=port,
        metrics_port=metrics_port,
        public_url=f"http://127.0.0.1:{port}",
        standby_replicas=0,
        replay=True,
    )


def _port_free(port: int) -> bool:
    from devstack.process import port_is_free

    return port_is_free(port)


def start_demo_worker(settings: Settings, work_dir: Path) -> WorkerProcess:
    args = [] if MODULES else [f"--module={name}" for name in SKELETON_MODULES]
    return start_worker(settings, args, log_path=work_dir / "worker.log",
                        env={"TELLTALE_SKELETON_THRESHOLD": "5"})


#: Segment's own batch size; each request is acknowledged by Kafka before the next.
BATCH_SIZE = 100
#: Requests in flight at once, like a handful of SDK clients.
CONCURRENT_POSTS = 4
#: Seconds without a new health change after the feed that count as "settled".
SETTLED_AFTER = 6.0


async def feed(context: DemoContext) -> int:
    """Post the last ``--days`` days of a simulated portfolio to the collector, in time
    order, in Segment batches; returns the number of events accepted."""
    import aiohttp

    from history.simulate import simulate_recent

    _, events = simulate_recent(time.time(), days=context.args.days,
                                accounts=context.args.accounts, seed=context.args.seed)
    write_key = next(iter(Settings.parse_pairs(context.settings.write_keys)))
    url = f"{context.worker.url}/v1/batch"
    auth = aiohttp.BasicAuth(write_key, "")
    batches: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue(CONCURRENT_POSTS * 2)
    accepted = 0

    async def poster(session: aiohttp.ClientSession) -> None:
        nonlocal accepted
        while (batch := await batches.get()) is not None:
            posted = await _post(session, url, auth, batch)  # add after the await, not across it
            accepted += posted

    async with aiohttp.ClientSession() as session:
        posters = [asyncio.create_task(poster(session)) for _ in range(CONCURRENT_POSTS)]
        batch: list[dict[str, Any]] = []
        for event in events:
            batch.append(event)
            if len(batch) == BATCH_SIZE:
                await batches.put(batch)
                batch = []
        if batch:
            await batches.put(batch)
        for _ in posters:
            await batches.put(None)
        await asyncio.gather(*posters)
    return accepted


async def _post(session: Any, url: str, auth: Any, batch: list[dict[str, Any]]) -> int:
    """One Segment batch; waits and resends on 429/503 as the SDKs do."""
    body = orjson.dumps({"batch": batch, "sentAt": _iso_now()})
    for _attempt in range(20):
        async with session.post(url, data=body, auth=auth,
                                headers={"Content-Type": "application/json"}) as response:
            if response.status == 200:
                return len(batch)
            if response.status in (429, 503):
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            raise RuntimeError(f"collector answered {response.status}: {await response.text()}")
    raise RuntimeError("collector stayed busy; giving up on the demo feed")


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def describe_change(change: HealthChangeRecord) -> str:
    """One line per health change."""
    current = change.current
    return (f"{change.account_name or change.account_id}: {current.score} {current.band} "
            f"[{', '.join(change.reasons)}] {change.explanation}")


def describe_message(raw: bytes | None) -> str | None:
    """The line of a message on the health-changes topic: a health change's (None when it
    is not an alert, which stays on the topic for downstream consumers), or anything else
    (the skeleton's counts) as its text."""
    try:
        change = HEALTH_CHANGES.decode(raw or b"")
    except HealthChangeError:
        return (raw or b"").decode("utf-8", "replace")
    return describe_change(change) if change.alert else None


async def tail_changes(context: DemoContext, fed: asyncio.Event) -> None:
    """Print each health change as it arrives. Once the feed is done and the stream has
    been quiet for a few seconds, print the accounts needing attention; then go on until
    Ctrl-C or ``--duration`` seconds."""
    from aiokafka import AIOKafkaConsumer

    duration = context.args.duration
    deadline = None if duration is None else time.monotonic() + duration
    consumer = AIOKafkaConsumer(
        context.settings.topics.health_changes,
        bootstrap_servers=context.settings.kafka_bootstrap,
        auto_offset_reset="earliest", enable_auto_commit=False,
        **context.settings.kafka_security.aiokafka_options(),
    )
    await consumer.start()
    say("alerts as they happen (Ctrl-C to stop); changes that only update the record are "
        "counted, not printed:")
    last_change = time.monotonic()
    summarised = False
    quiet = 0
    try:
        while deadline is None or time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    last_change = time.monotonic()
                    line = describe_message(record.value)
                    if line is None:
                        quiet += 1
                        continue
                    print(line, flush=True)
            settled = fed.is_set() and time.monotonic() - last_change >= SETTLED_AFTER
            if settled and not summarised:
                summarised = True
                say(f"{quiet} other changes only updated the record (no one is alerted)")
                await print_attention(context)
                if context.args.once:
                    return
    finally:
        await consumer.stop()
    if not summarised:
        await print_attention(context)


async def print_attention(context: DemoContext) -> None:
    """Each owner's worklist for today, from the API: every account with the reasons that
    put it there, in words, and its open playbook step."""
    import aiohttp

    settings = context.settings
    token, identity = next(iter(settings.api_identities().items()))
    url = f"{context.worker.url}/api/v1/workspaces/{identity.workspace}/worklist"
    async with aiohttp.ClientSession() as session, session.get(
        url, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        lists = (await response.json())["owners"] if response.status == 200 else []
    total = sum(len(owner["items"]) for owner in lists)
    print(flush=True)
    print(f"Accounts needing attention today ({total}):", flush=True)
    for owner in lists:
        items = owner["items"]
        print(f"  {owner['owner'] or 'no owner'} ({len(items)}):", flush=True)
        for item in items:
            name = item.get("account_name") or item.get("account_id")
            print(f"    {name}: {item.get('score')} ({item.get('band')})", flush=True)
            for reason in item["reasons"]:
                new = " (new)" if reason["new"] else ""
                print(f"      • {reason['text']}{new}", flush=True)
            for step in item["open_steps"]:
                print(f"      → next: {step['title']} (due {step['due_date']})", flush=True)
    print(f"\nThe CSM page: {settings.public_url}/today (sign in with the API token "
          f"{token})", flush=True)
    print(flush=True)

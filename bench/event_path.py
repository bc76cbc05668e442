"""Which of Telltale's files run code while one event goes from the HTTP collector to a
Slack message in a real worker, set against the README's walk of one event. Prints
figures; asserts nothing about them.

Starts Kafka and Redis (devstack; ``--bootstrap`` uses a running broker instead), a local
HTTP server that plays Slack's incoming webhook, and the production worker
(``python -m agents.cli worker``, every module) with its alerts sent there and
``bench/call_recorder.py`` loaded as its ``sitecustomize``. Then:

1. warm-up: a whole path for another account (Globex: identify, group, a login and a
   report, then one ``Payment Failed`` track, through to its Slack alert), then the same
   identify, group, login and report for the traced account (Acme Corp), so that the
   event changes an account already assessed; after each step, the bench waits until the
   worker has committed the end of every topic it reads and Slack has been quiet for two
   seconds;
2. the event: a recording window opens in the worker (``sys.setprofile`` and
   ``threading.setprofile``), the Segment SDK posts one batch of one ``Payment Failed``
   track for Acme's user, and the window closes ``--tail-seconds`` after Acme's Slack
   payload has arrived;
3. idle: once the worker has settled again, a window of the same length with no event.
   Functions that ran in it are not counted: what the worker does on its own clock.

Start-up is not counted: the windows open long after it. Clock ticks and the metrics
samplers are set an hour apart, so they stay out of both windows. Faust's offset commits
(every second), the delivery outbox's heartbeat (20 s) and the digest check (60 s) still
run: one that falls in the event window and not in the idle one is counted, so the total
of functions may move by one or two between runs (``state/faust_adapter.py``'s
``committed_offsets`` is the usual one).

It prints the files of the product (not ``tests/``, ``bench/`` or ``devstack/``) that ran
code for the event, by top-level folder, each with the functions it ran and its lines
(as ``wc -l`` counts them); the totals; which of those files the walk in README.md ("To
follow one event, read these files in order:") names and which it does not (a folder it
names covers the files below it); and what of the walk did not run.

Exits 0 once it has printed (the figure is not a test), 1 when no Slack payload arrived
for the event.

    .venv/bin/python bench/event_path.py
    .venv/bin/python bench/event_path.py --bootstrap 127.0.0.1:9092 --keep /tmp/event-path
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from segment.analytics import Client as SegmentClient  # noqa: E402

from bench import call_recorder  # noqa: E402
from bench.failover import committed, end_offsets  # noqa: E402
from bench.pipeline import kafka, parser_with_broker  # noqa: E402
from bench.simulated import machine_line  # noqa: E402
from devstack.process import free_port  # noqa: E402
from devstack.redis import start_redis  # noqa: E402
from devstack.workers import WorkerProcess, start_worker  # noqa: E402
from streams.settings import Settings  # noqa: E402
from tests.fakes.http import Recorded, RecordingServer  # noqa: E402

WRITE_KEY = "bench-write-key"
WORKSPACE = "bench"
PARTITIONS = 2
HOUR = 3600.0
#: Top-level folders whose files are not the product: they never count.
NOT_PRODUCT = frozenset({"tests", "bench", "devstack"})
#: The line of README.md that opens its walk of one event (a bullet list of files).
WALK_HEADING = "To follow one event, read these files in order:"


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    user: str
    owner_slack_id: str


WARM_UP = Account("globex", "Globex Inc", "lee", "U0GLOBEX1")
TRACED = Account("acme", "Acme Corp", "dana", "U024BE7LH")


# --------------------------------------------------------------------------- the worker


def worker_settings(bootstrap: str, redis_url: str, slack_url: str, work: Path) -> Settings:
    """Every module of the worker on fresh topics, alerts to ``slack_url``; clock ticks and
    metrics samples an hour apart; the Kafka login of the ``TELLTALE_KAFKA_*`` variables."""
    port = free_port()
    prefix = f"ep{uuid.uuid4().hex[:8]}"
    return Settings(
        redis_url=redis_url, topic_prefix=prefix, app_id=prefix, partitions=PARTITIONS,
        data_dir=work / "data", web_port=port, metrics_port=free_port(),
        public_url=f"http://127.0.0.1:{port}", write_keys=f"{WRITE_KEY}={WORKSPACE}",
        slack_webhook_url=f"{slack_url}/services/T0/B0/BENCH", tick_interval=HOUR,
        metrics_interval=HOUR, standby_replicas=0, rocksdb_block_cache_mb=8,
        rocksdb_write_buffer_mb=4,
    ).with_kafka(bootstrap, Settings.from_env().kafka_security)


async def settle(settings: Settings, slack: RecordingServer, quiet: float = 2.0,
                 timeout: float = 120.0) -> None:
    """Wait until the worker has committed the end of the events, by-account and
    health-change topics and no Slack payload has arrived for ``quiet`` seconds."""
    bootstrap, topics = settings.kafka_bootstrap, settings.topics
    deadline = time.monotonic() + timeout
    seen, since = len(slack.requests), time.monotonic()
    while True:
        done = True
        for topic in (topics.events, topics.by_account, topics.health_changes):
            ends = await end_offsets(bootstrap, topic, settings.partitions)
            read = await committed(bootstrap, settings.app_id, topic, settings.partitions)
            done = done and all(read[p] >= end for p, end in ends.items())
        if len(slack.requests) != seen:
            seen, since = len(slack.requests), time.monotonic()
        if done and time.monotonic() - since >= quiet:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the worker did not settle within {timeout:.0f} s")
        await asyncio.sleep(0.3)


async def slack_payload(slack: RecordingServer, account: Account, after: int,
                        timeout: float) -> Recorded | None:
    """The first Slack payload naming ``account`` among those after the ``after``-th, or
    None when none arrives within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for request in slack.requests[after:]:
            if account.name in request.body.decode(errors="replace"):
                return request
        await asyncio.sleep(0.01)
    return None


# --------------------------------------------------------------------------- the SDK


def introduce(client: Any, account: Account, when: datetime) -> None:
    """The account's user, the account and some use of it, as an app calls identify,
    group and track: enough for the account's first assessment, so that the event after
    it changes an account already assessed (the everyday case)."""
    client.identify(account.user, {"name": account.user.title(),
                                   "email": f"{account.user}@{account.id}.example",
                                   "role": "admin"}, timestamp=when)
    client.group(account.user, account.id, {
        "name": account.name, "seats": 30, "plan": "team", "arr": 42_000,
        "owner": "Riley Chen", "owner_slack_id": account.owner_slack_id,
        "renewal_date": (when + timedelta(days=75)).date().isoformat(),
        "created_at": (when - timedelta(days=400)).isoformat(),
    }, timestamp=when)
    client.track(account.user, "Logged In", {}, timestamp=when)
    client.track(account.user, "Report Published", {"report": "weekly"}, timestamp=when)


def payment_failed(client: Any, account: Account, when: datetime) -> None:
    client.track(account.user, "Payment Failed", {"amount": 1200}, timestamp=when)


async def send(client: Any, calls: Callable[[Any, Account, datetime], None],
               account: Account, when: datetime) -> None:
    """Make the SDK ``calls`` (synchronous mode: one posted batch per call, answered
    before it returns) off the event loop, which serves the Slack webhook."""
    await asyncio.to_thread(calls, client, account, when)


# --------------------------------------------------------------------------- recording


@dataclass(frozen=True)
class Function:
    path: str  # relative to the repository
    name: str  # qualified name
    line: int  # first line


@dataclass(frozen=True)
class Window:
    seconds: float
    functions: frozenset[Function]
    #: Files whose module code ran (an import during the window).
    modules: frozenset[str]

    @classmethod
    def load(cls, path: Path) -> Window:
        """A window file of ``bench/call_recorder.py``, kept to the product's files;
        comprehension and generator-expression scopes are not functions."""
        data = json.loads(path.read_text())
        functions: set[Function] = set()
        modules: set[str] = set()
        for filename, qualname, name, line in data["calls"]:
            where = product_file(filename)
            if where is None:
                continue
            if name == "<module>":
                modules.add(where)
            elif not name.startswith("<") or name == "<lambda>":
                functions.add(Function(where, qualname, line))
        return cls(float(data["seconds"]), frozenset(functions), frozenset(modules))


@functools.cache
def product_file(filename: str) -> str | None:
    """``filename`` relative to the repository when it is one of the product's files,
    else None (the standard library, packages, tests, benches, the devstack)."""
    if not filename.endswith(".py"):
        return None
    try:
        relative = Path(filename).resolve().relative_to(ROOT)
    except ValueError:
        return None
    top = relative.parts[0]
    return None if top in NOT_PRODUCT or top.startswith(".") else relative.as_posix()


class Recorder:
    """The worker's call recorder, from this side: the folder it is loaded from, the
    variables that turn it on, the signals that open and close a window."""

    def __init__(self, work: Path) -> None:
        self.folder = work / "recorder"
        self.folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(call_recorder.__file__), self.folder / "sitecustomize.py")
        self.prefix = str(work / "calls")
        self.pid = 0
        self.windows = 0

    def env(self) -> dict[str, str]:
        path = [str(self.folder), *filter(None, [os.environ.get("PYTHONPATH")])]
        return {call_recorder.ENVIRONMENT_VARIABLE: self.prefix,
                "PYTHONPATH": os.pathsep.join(path)}

    def attach(self, pid: int) -> None:
        """Record in process ``pid``, once its recorder is known to be in place (a signal
        it has no handler for would end it)."""
        if not Path(call_recorder.ready_path(self.prefix, pid)).exists():
            raise RuntimeError("the worker did not load the call recorder (another "
                               "sitecustomize ahead of it on its path?)")
        self.pid = pid

    def start(self) -> None:
        os.kill(self.pid, call_recorder.START)

    async def stop(self, timeout: float = 10.0) -> Window:
        os.kill(self.pid, call_recorder.STOP)
        path = Path(call_recorder.window_path(self.prefix, self.pid, self.windows))
        self.windows += 1
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the worker wrote no {path.name} within {timeout:.0f} s")
            await asyncio.sleep(0.05)
        return Window.load(path)


# --------------------------------------------------------------------------- the walk


def walk_paths(readme: str) -> list[str]:
    """The files and folders the README's walk of one event names, in order: backticked
    paths in the bullet list under :data:`WALK_HEADING` (``streams/events.py:Event``
    names ``streams/events.py``); a folder ends with ``/``. Empty without the walk."""
    if WALK_HEADING not in readme:
        return []
    block = readme.split(WALK_HEADING, 1)[1].strip("\n").split("\n\n", 1)[0]
    paths = []
    for path in re.findall(r"`([\w.-]+/[\w./-]*)(?::[\w.]+)?`", block):
        if (ROOT / path).is_dir():
            path = path.rstrip("/") + "/"
        paths.append(path)
    return list(dict.fromkeys(paths))


def named_by(path: str, walk: Sequence[str]) -> str | None:
    """The walk's path that names file ``path``: itself, or a folder above it."""
    return next((named for named in walk
                 if path == named or (named.endswith("/") and path.startswith(named))), None)


# --------------------------------------------------------------------------- the figure


@dataclass(frozen=True)
class FileFigure:
    path: str
    functions: int  # run for the event and not in the idle window
    lines: int  # newlines, as wc -l counts them
    named: str | None  # the walk's path that names it

    @property
    def folder(self) -> str:
        return self.path.split("/", 1)[0] + "/" if "/" in self.path else "./"


def file_figures(event: Window, idle: Window, walk: Sequence[str]) -> list[FileFigure]:
    """One figure per file with at least one function that ran for the event only."""
    ran = sorted(event.functions - idle.functions, key=lambda f: f.path)
    return [FileFigure(path, len(list(functions)),
                       (ROOT / path).read_bytes().count(b"\n"), named_by(path, walk))
            for path, functions in groupby(ran, key=lambda f: f.path)]


def row(label: str, files: int | None, lines: int, functions: int) -> str:
    counted = "" if files is None else str(files)
    return f"{label:<44}{counted:>6}{lines:>9,}{functions:>11}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def totals(label: str, figures: Sequence[FileFigure]) -> str:
    return row(label, len(figures), sum(f.lines for f in figures),
               sum(f.functions for f in figures))


def print_files(figures: Sequence[FileFigure]) -> None:
    print("files that ran code for the event, by top-level folder: lines (as wc -l counts "
          "them) and\nfunctions called, less those that also ran in the idle window; "
          "* = named by the README's walk")
    print()
    print(f"{'':<44}{'files':>6}{'lines':>9}{'functions':>11}")
    by_folder = sorted(figures, key=lambda f: (f.folder, f.path))
    for folder, grouped in groupby(by_folder, key=lambda f: f.folder):
        files = list(grouped)
        print()
        print(totals(folder, files))
        for f in files:
            print(row(f"  {'*' if f.named else ' '} {f.path}", None, f.lines, f.functions))
    named = [f for f in figures if f.named]
    print()
    print(totals("total", figures))
    print(totals("  named by the README's walk", named))
    print(totals("  not named by it", [f for f in figures if not f.named]))


def print_walk(figures: Sequence[FileFigure], walk: Sequence[str]) -> None:
    if not walk:
        print(f"README.md has no walk of one event ({WALK_HEADING!r})")
        return
    print(f"the README's walk of one event, path by path ({len(walk)} paths):")
    for named in walk:
        files = [f for f in figures if f.named == named]
        functions = sum(f.functions for f in files)
        if not files:
            what = "did not run"
        elif named.endswith("/"):
            what = f"ran: {plural(functions, 'function')} in {plural(len(files), 'file')}"
        else:
            what = f"ran: {plural(functions, 'function')}"
        print(f"  {named:<44}{what}")


def print_event(payloads: Sequence[Recorded], posted: float, arrived: float,
                event: Window, idle: Window) -> None:
    print(f"one event: a Segment batch of one `Payment Failed` track for {TRACED.user} of "
          f"{TRACED.name}, posted to the collector of `python -m agents.cli worker`")
    print(f"  the collector answered after {posted:.2f} s, the Slack payload arrived after "
          f"{arrived:.2f} s; recorded {event.seconds:.2f} s, then {idle.seconds:.2f} s idle")
    print(f"  {machine_line()}")
    for payload in payloads:
        text = payload.json().get("text", "")
        print(f"  Slack payload: {text}")
    if len(payloads) != 1:
        print(f"  note: {len(payloads)} Slack payloads arrived in the window, not one")
    if event.modules:
        print(f"  note: module code ran during the event (an import on the path): "
              f"{', '.join(sorted(event.modules))}")


def report(payloads: Sequence[Recorded], posted: float, arrived: float, event: Window,
           idle: Window, walk: Sequence[str]) -> None:
    figures = file_figures(event, idle, walk)
    print_event(payloads, posted, arrived, event, idle)
    print()
    print_files(figures)
    subtracted = event.functions & idle.functions
    print(f"({len(subtracted)} functions of the product ran in the idle window too and "
          f"are not counted)")
    print()
    print_walk(figures, walk)


# --------------------------------------------------------------------------- a run


async def measure(opts: argparse.Namespace, bootstrap: str, redis_url: str,
                  slack: RecordingServer, work: Path) -> int:
    settings = worker_settings(bootstrap, redis_url, slack.url, work)
    recorder = Recorder(work)
    print(f"starting the worker (log: {work / 'worker.log'}) ...", flush=True)
    # Spawned from the main thread: a worker dies with the thread that started it.
    worker: WorkerProcess = start_worker(settings, [], log_path=work / "worker.log",
                                         env=recorder.env(), wait=False)
    try:
        await asyncio.to_thread(worker.wait_ready, 180.0)
        recorder.attach(worker.process.pid)
        client = SegmentClient(WRITE_KEY, host=worker.url, sync_mode=True, timeout=10,
                               max_retries=3)
        when = datetime.now(UTC) - timedelta(minutes=5)

        print("warming up ...", flush=True)
        await send(client, introduce, WARM_UP, when)
        await settle(settings, slack)
        before = len(slack.requests)
        await send(client, payment_failed, WARM_UP, when)
        if await slack_payload(slack, WARM_UP, before, opts.timeout) is None:
            print(f"no Slack payload for {WARM_UP.name} within {opts.timeout:.0f} s")
            return 1
        await settle(settings, slack)
        await send(client, introduce, TRACED, when)
        await settle(settings, slack)

        print("recording one event ...", flush=True)
        before = len(slack.requests)
        recorder.start()
        started = time.monotonic()
        await send(client, payment_failed, TRACED, when)
        posted = time.monotonic() - started
        alert = await slack_payload(slack, TRACED, before, opts.timeout)
        arrived = time.monotonic() - started
        if alert is None:
            print(f"no Slack payload for {TRACED.name} within {opts.timeout:.0f} s: the "
                  f"path did not complete (worker log: {worker.log_path})")
            return 1
        await asyncio.sleep(opts.tail_seconds)
        event = await recorder.stop()
        payloads = slack.requests[before:]

        await settle(settings, slack)
        recorder.start()
        await asyncio.sleep(event.seconds)
        idle = await recorder.stop()
    finally:
        worker.stop()
    print()
    report(payloads, posted, arrived, event, idle, walk_paths((ROOT / "README.md").read_text()))
    return 0


async def main(opts: argparse.Namespace) -> int:
    work = Path(opts.keep) if opts.keep else Path(tempfile.mkdtemp(prefix="telltale-path-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        print("starting Kafka and Redis ...", flush=True)
        with kafka(opts.bootstrap, PARTITIONS) as bootstrap, \
                start_redis(install=True) as redis:
            slack = await RecordingServer().start()
            try:
                return await measure(opts, bootstrap, redis.url, slack, work)
            finally:
                await slack.stop()
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)


def cli() -> None:
    parser = parser_with_broker(__doc__)
    parser.add_argument("--tail-seconds", type=float, default=0.5,
                        help="how long the window stays open after the Slack payload")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for each Slack payload")
    parser.add_argument("--keep", metavar="DIR",
                        help="work in DIR and keep it (worker log, recorded windows)")
    try:
        sys.exit(asyncio.run(main(parser.parse_args())))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    cli()

"""``telltale worker``: one Faust worker for the app built from the environment."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import faust

from agents.app import MODULES, SKELETON_MODULES, build_app
from agents.metrics import MetricsServer
from agents.workspaces import Workspaces, WorkspacesConfigError
from streams.kafka_admin import create_topics, session_timeout_limits
from streams.kafka_security import check_access
from streams.settings import Settings, SettingsError

#: Printed once the worker's partitions are assigned and tables recovered; the demo and
#: the tests wait for this line.
READY_MARKER = "telltale worker ready:"


class _Worker(faust.Worker):
    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        _settle_garbage_collector()
        if not self._shutdown_immediately:
            # One line that tools (the demo, the tests) wait for, at any log level.
            print(f"{READY_MARKER} {self.app.conf.id} {self.app.conf.web_port}", flush=True)


def _settle_garbage_collector() -> None:
    """Keep the cyclic garbage collector off what start-up built, and let it wait for
    20,000 new objects instead of 700.

    Every message makes thousands of short-lived objects (events, records, changes),
    freed by reference counting; at the default threshold the collector ran every few
    events and re-examined the app, the tables' caches and everything else alive. This
    gives the score agent about 5% more events per second (bench/pipeline.py)."""
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def shared_topics(settings: Settings) -> list[str]:
    names = settings.topics
    return [names.events, names.events_dlq, names.by_account, names.health_changes,
            names.deliveries_dlq]


#: The actions topic is the worklist's audit log and what a rebuild replays them from:
#: kept for ever, and never compacted (every action counts, not only the last per key).
ACTIONS_TOPIC_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1",
                        "cleanup.policy": "delete"}


async def ensure_topics(settings: Settings, timeout: float = 60.0) -> None:
    """Create the shared topics with ``settings.partitions`` partitions if missing, once
    the broker has accepted this worker's credentials (else ``KafkaAccessError``)."""
    await check_access(settings.kafka_bootstrap, settings.kafka_security)
    await check_session_timeout(settings)
    await create_topics(settings.kafka_bootstrap, shared_topics(settings),
                        partitions=settings.partitions,
                        replication_factor=settings.replication_factor, timeout=timeout,
                        security=settings.kafka_security)
    await create_topics(settings.kafka_bootstrap, [settings.topics.actions],
                        partitions=settings.partitions,
                        replication_factor=settings.replication_factor,
                        config=ACTIONS_TOPIC_CONFIG, timeout=timeout,
                        security=settings.kafka_security)


async def check_session_timeout(settings: Settings) -> None:
    """Refuse a session timeout the brokers would refuse (``SettingsError``).

    A group member asking for a session timeout outside the brokers'
    ``group.min.session.timeout.ms``..``group.max.session.timeout.ms`` is turned away at
    every join, and Faust keeps rejoining: the worker would never become ready and never
    say why. When the brokers will not describe their configuration, the join decides."""
    limits = await session_timeout_limits(settings.kafka_bootstrap,
                                          security=settings.kafka_security)
    wanted = settings.kafka_session_timeout_seconds
    if limits is not None and not limits[0] <= wanted <= limits[1]:
        low, high = limits
        raise SettingsError(
            f"kafka_session_timeout_seconds is {wanted:g} but the brokers accept "
            f"{low:g} to {high:g} (group.min.session.timeout.ms, "
            "group.max.session.timeout.ms)")


def run_worker(settings: Settings, modules: Sequence[str] | None = None) -> NoReturn:
    """Run the worker until SIGTERM/SIGINT; ``modules`` defaults to ``agents.app.MODULES``.

    Logs at ``settings.log_level``; prints :data:`READY_MARKER` once partitions are
    assigned and tables recovered, whatever the level.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # Faust creates only its own internal topics; a source topic missing at start-up is
    # ignored until the next rebalance, so the shared topics are created first.
    loop.run_until_complete(ensure_topics(settings))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = build_app(settings, modules)
    worker = _Worker(
        app,
        # Started before the app, so that recovery progress can be scraped.
        MetricsServer(settings, loop=loop),
        loop=loop,
        loglevel=settings.log_level.lower(),
        redirect_stdouts=False,
        workdir=str(settings.data_dir),
    )
    # Faust's terminal spinner, used at levels above info, sets the root logger to DEBUG
    # (about 25% of throughput) and replaces the "Ready" log line that tools wait for.
    worker.spinner = None
    worker.execute_from_commandline()


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "worker", help="run a Faust worker (settings from TELLTALE_* variables)",
        description="Run one Telltale worker: the agents, tables, timers and web views of "
                    "every registered module. Settings come from TELLTALE_* variables "
                    "(`telltale settings` lists them).",
    )
    parser.add_argument(
        "--module", action="append", dest="modules", metavar="MODULE",
        help="register only this module (repeatable), e.g. agents.skeleton",
    )
    parser.add_argument("--skeleton", action="store_true",
                        help="run the walking skeleton instead of the pipeline")
    return parser


def run(args: argparse.Namespace) -> int:
    modules: list[str] | None = list(args.modules) if args.modules else None
    if args.skeleton:
        modules = [*SKELETON_MODULES, *(modules or [])]
    if not (MODULES if modules is None else modules):
        print("telltale worker: no modules registered (agents.app.MODULES is empty); "
              "run with --skeleton or --module NAME", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
        # The scoring, notifications and per-workspace files, every problem of every
        # file at once, before anything connects to Kafka.
        Workspaces.from_settings(settings)
    except (SettingsError, WorkspacesConfigError) as exc:
        # One line, so that a container's status or a supervisor's log shows why.
        print(f"telltale worker: refusing to start: {'; '.join(exc.problems)}",
              file=sys.stderr)
        return 2
    try:
        run_worker(settings, modules)
    except SettingsError as exc:  # a setting only the brokers can judge
        print(f"telltale worker: refusing to start: {'; '.join(exc.problems)}",
              file=sys.stderr)
        return 2

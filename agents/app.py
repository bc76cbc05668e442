"""Assembling the Faust application.

``build_app(settings)`` creates one ``faust.App`` from :class:`Settings` and then lets each
module in :data:`MODULES` declare its topics, tables, agents, timers and web views through
``register(app, settings)``. There is no module-level app: tests build many apps with
unique ids side by side, and the worker builds its own from the environment.

RocksDB sizes are per table in Faust 0.15 (``app.Table(..., options=...)``; there is no
app-wide setting), so every table passes ``state.tables.rocksdb_options(settings)``.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Coroutine, Sequence
from datetime import timedelta
from typing import Any, Protocol, cast

import faust

from streams.settings import Settings

#: Modules whose ``register(app, settings)`` builds the production pipeline, in order.
#: To plug a module in, add one line here.
MODULES: list[str] = [
    "agents.lag",  # the lag, table, recovery and portfolio samplers
    "agents.health",  # /healthz and /readyz for probes
    "agents.intake",  # HTTP collector and sources: SDK posts, billing, support → events topic
    "agents.resolve",  # events → identity map → by-account envelopes
    "agents.score",  # by-account envelopes + ticks → RocksDB state → health changes
    "agents.notify",  # health changes → read model, Slack, webhooks, CRM; daily digest
    "agents.actions",  # acknowledge, snooze, assign, note, step done → read model
    "agents.api",  # /api/v1 over the read model, /openapi.json
    "agents.page",  # the CSM page: /today, /accounts/{id}
]

#: The walking skeleton (events → per-account counter → health-changes); used on its own.
SKELETON_MODULES: list[str] = ["agents.skeleton"]


class Register(Protocol):
    def __call__(self, app: faust.App, settings: Settings) -> None: ...


def build_app(settings: Settings, modules: Sequence[str] | None = None) -> faust.App:
    """A Faust app configured from ``settings``, with ``modules`` registered on it.

    ``modules`` defaults to :data:`MODULES`; each name is imported and its
    ``register(app, settings)`` called once, in order.
    """
    app = faust.App(
        settings.app_id,
        broker=settings.broker,
        # Faust hands these to every client it makes: consumers, producers, topic admin.
        broker_credentials=settings.kafka_security.faust_credentials(),
        store="rocksdb://",
        datadir=str(settings.data_dir),
        autodiscover=False,
        # Bytes in, bytes out: every module decodes its own wire format explicitly.
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        table_standby_replicas=settings.standby_replicas,
        processing_guarantee="at_least_once",
        # Failover (docs/deploy.md): a killed worker's partitions move once the
        # coordinator has missed its heartbeats for the session timeout; the survivors
        # hear of the rebalance on their next heartbeat. Faust's 60 s rebalance timeout
        # can hold the first assignment for tens of seconds; a single-digit group of
        # workers needs far less.
        broker_rebalance_timeout=timedelta(seconds=settings.kafka_rebalance_timeout_seconds),
        broker_session_timeout=timedelta(seconds=settings.kafka_session_timeout_seconds),
        broker_heartbeat_interval=timedelta(seconds=settings.kafka_heartbeat_interval_seconds),
        broker_commit_interval=timedelta(seconds=1),
        consumer_auto_offset_reset="earliest",
        # Per-partition fetch size. With Faust's 1 MiB default an agent reading batch
        # envelopes waits on fetch round trips; 8 MiB measured 2.3x the messages/s of a
        # pass-through agent here (bench/ingest.py), at ≤ 8 MiB buffered per partition.
        consumer_max_fetch_size=8 * 1024 * 1024,
        producer_acks=-1,
        producer_linger=timedelta(milliseconds=5),
        # Batch envelopes are kilobytes each: with Faust's 16 KiB batches a stage
        # sends a produce request every few messages and waits on its round trip.
        producer_max_batch_size=512 * 1024,
        # Faust waits 3 s before starting recovery by default; nothing is gained by it.
        stream_recovery_delay=timedelta(seconds=0),
        # On revocation and shutdown, let the message in flight finish and be committed
        # first: otherwise its table writes can reach the changelog after those of the
        # partition's new owner (the score agent's exactly-once effects rely on this).
        stream_wait_empty=True,
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        canonical_url=settings.public_url,
        # Faust's own views (/router/, /table/, /graph/, /stats/, /performance/) show
        # the topology, table keys and values to anyone who reaches the public port.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
    )
    for name in MODULES if modules is None else modules:
        load_register(name)(app, settings)
    return app


def load_register(module_name: str) -> Register:
    """The ``register`` function of ``module_name`` (a clear error when it has none)."""
    module = importlib.import_module(module_name)
    register = getattr(module, "register", None)
    if not callable(register):
        raise TypeError(f"{module_name} has no register(app, settings) function")
    return cast(Register, register)


async def finish_even_if_cancelled(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` to the end even when the agent is cancelled meanwhile (shutdown).

    Faust acks the message being processed when its agent is cancelled, and commits on
    the way out: a message cut off halfway would be committed without all its writes.
    So a cancellation waits for the message to finish, then goes on.
    """
    task = asyncio.ensure_future(work)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise

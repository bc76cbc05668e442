"""Timers that sample what a worker cannot count inline: consumer lag, table sizes,
changelog recovery, and the portfolio snapshot behind the portfolio gauges.

Samples are written into the gauges of :mod:`agents.metrics`; a scrape of ``/metrics``
therefore never touches Kafka, RocksDB iteration or Redis, it reads the last sample.

Portfolio gauges and several workers: every worker reads the same Redis read model, so if
each exported the portfolio, ``sum()`` across workers would count every account N times.
Only the Faust leader (exactly one worker per consumer group, see ``app.is_leader()``)
publishes a snapshot; the others clear theirs and export the gauges without samples.
During a leader change two workers may briefly both publish, which is why dashboards and
rules aggregate portfolio gauges with ``max by (workspace, ...)`` and never ``sum``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import faust

from agents import metrics
from state.faust_adapter import active_partition_dbs, committed_offsets, recovery_remaining
from streams.settings import Settings

log = logging.getLogger(__name__)


def sample_consumer_lag(app: faust.App) -> dict[tuple[str, int], int]:
    """Set ``telltale_consumer_lag_messages`` for every source-topic partition assigned.

    Lag is the partition's high-water mark minus the offset this worker last committed
    (both as Faust tracks them, so no broker round trip). Changelog partitions are left
    out: their progress is recovery (``telltale_recovery_remaining_messages``), and the
    leader-election topic carries no work. Series of revoked partitions are removed.
    """
    consumer = app.consumer
    skip = set(app.tables.changelog_topics)
    committed = committed_offsets(consumer)
    lags: dict[tuple[str, int], int] = {}
    for tp in consumer.assignment():
        if tp.topic in skip or tp.topic.endswith("__assignor-__leader"):
            continue
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # partition not fetched yet or consumer restarting
            continue
        if highwater is None:
            continue
        offset = committed.get(tp)
        lags[(tp.topic, tp.partition)] = max(0, highwater - (offset or 0))
    metrics.CONSUMER_LAG.clear()
    for (topic, partition), lag in lags.items():
        metrics.CONSUMER_LAG.labels(topic=topic, partition=str(partition)).set(lag)
    return lags


def sample_table_keys(app: faust.App) -> dict[str, int]:
    """Set ``telltale_table_keys`` for every table, counting this worker's active partitions.

    RocksDB stores report the engine's ``rocksdb.estimate-num-keys`` (cheap, approximate)
    instead of iterating keys; in-memory stores report their exact length.
    """
    sizes: dict[str, int] = {}
    for name, table in app.tables.items():
        sizes[name] = _table_keys(table)
    for name, size in sizes.items():
        metrics.TABLE_KEYS.labels(table=name).set(size)
    return sizes


def _table_keys(table: Any) -> int:
    dbs = active_partition_dbs(table)
    if dbs is None:
        return len(table.data)
    total = 0
    for db in dbs:
        estimate = db.property_int_value("rocksdb.estimate-num-keys")
        # Every partition DB also holds one bookkeeping key with the persisted offset.
        total += max(0, (estimate or 0) - 1)
    return total


def sample_recovery(app: faust.App) -> int:
    """Set ``telltale_recovery_remaining_messages``: changelog records still to replay
    into this worker's active table partitions (0 once recovery completed)."""
    remaining = recovery_remaining(app)
    metrics.RECOVERY_REMAINING.set(remaining)
    return remaining


def workspaces_of(settings: Settings) -> list[str]:
    """The workspaces this deployment knows: every one named by a write key or API token."""
    names = set(Settings.parse_pairs(settings.write_keys).values())
    names.update(identity.workspace for identity in settings.api_identities().values())
    return sorted(names)


class PortfolioSource(Protocol):
    """What the portfolio refresh needs from the read model (``state.readmodel.ReadModel``)."""

    async def workspaces(self) -> list[str]: ...

    async def portfolio(self, workspace: str) -> Mapping[str, Any]: ...


async def refresh_portfolio(
    source: PortfolioSource,
    configured: Iterable[str],
    *,
    is_leader: bool,
    snapshot: metrics.PortfolioSnapshot = metrics.SNAPSHOT,
) -> bool:
    """Replace the portfolio snapshot with fresh figures, or clear it on non-leaders.

    Workspaces are the configured ones plus any the read model holds (the read model only
    gets workspaces from health changes, which only come from configured write keys, so
    the ``workspace`` label stays bounded by configuration). A failing read model keeps
    the previous snapshot (its timestamp shows the age) and counts
    ``telltale_portfolio_refreshes_total{outcome="failed"}``; it never raises.
    """
    if not is_leader:
        snapshot.clear()
        metrics.PORTFOLIO_REFRESHES.labels(outcome="skipped").inc()
        return False
    fresh: dict[str, Mapping[str, Any]] = {}
    try:
        names = set(configured) | set(await source.workspaces())
        for workspace in sorted(names):
            fresh[workspace] = await source.portfolio(workspace)
    except Exception:
        log.warning("portfolio refresh from the read model failed", exc_info=True)
        metrics.PORTFOLIO_REFRESHES.labels(outcome="failed").inc()
        return False
    snapshot.replace(fresh)
    metrics.PORTFOLIO_REFRESHES.labels(outcome="ok").inc()
    return True


def register(app: faust.App, settings: Settings,
             source: PortfolioSource | None = None) -> None:
    """Declare the sampling timers on ``app``, both every ``settings.metrics_interval``
    seconds; ``source`` defaults to the Redis read model of ``settings`` (opened on the
    first refresh)."""

    @app.timer(interval=settings.metrics_interval, name="telltale.sample_lag")
    async def sample_worker_state() -> None:
        try:
            sample_consumer_lag(app)
            sample_table_keys(app)
            sample_recovery(app)
        except Exception:  # a sampling hiccup must never stop the worker
            log.warning("sampling worker metrics failed", exc_info=True)

    configured = workspaces_of(settings)
    sources: list[PortfolioSource] = [source] if source is not None else []

    @app.timer(interval=settings.metrics_interval, name="telltale.refresh_portfolio")
    async def refresh_portfolio_snapshot() -> None:
        if not sources:
            from state.readmodel import ReadModel  # Redis is only needed for this gauge

            sources.append(ReadModel.of_app(app, settings))
        await refresh_portfolio(sources[0], configured, is_leader=app.is_leader())

"""Every Prometheus metric Telltale exports, in one place.

Agents, web views and sinks import the metric objects from here and only ever call
``.labels(...).inc()`` / ``.observe()`` on them; ``/metrics`` serves :func:`exposition`
on its own address (:class:`MetricsServer`), never on the public port.

Conventions (Prometheus naming): counters end in ``_total``, durations are in seconds,
money in US dollars, every metric has HELP text, and no label ever carries an account
or user id, so the number of series stays bounded however many customers there are.

Telltale keeps its own :data:`REGISTRY` rather than prometheus-client's global one, so
that nothing else in the process (Faust's optional Prometheus sensor registers on the
global registry) can clash with these names, and so that tests see exactly what a worker
exports. Faust's sensor is deliberately not used: it reports latencies in milliseconds
under unit-less names, labels series per stream, and serves its own ``/metrics``. What we
need from Faust (high-water marks, committed offsets, recovery progress, store sizes) is
sampled from its consumer and table manager instead (``agents/lag.py``).

Portfolio gauges (accounts per band, stage, ARR, active signals) are not updated inline:
they are computed from a :class:`PortfolioSnapshot` that a timer refreshes from the Redis
read model (``agents/lag.py``). A scrape only reads the cached snapshot and never waits on
Redis. Only the Faust leader worker publishes a snapshot (every other worker's is empty),
so summing across workers does not double count; dashboards aggregate with ``max by``
so a brief overlap during a leader change cannot double count either.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web
from mode import Service
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from streams.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "ACTIVE_SIGNALS_NAME",
    "CONSUMER_LAG",
    "CONTENT_TYPE",
    "CRM_READS",
    "CRM_READ_LAST_SUCCESS",
    "DELIVERIES",
    "DELIVERY_LATENCY",
    "EVENTS_ACCEPTED",
    "EVENTS_DEAD_LETTERED",
    "EVENTS_DEDUPLICATED",
    "EVENTS_MOVED",
    "EVENTS_PROCESSED",
    "EVENTS_RECEIVED",
    "EVENT_TO_CHANGE_LATENCY",
    "HEALTH_CHANGES",
    "HTTP_REQUESTS",
    "LATENCY_BUCKETS_SECONDS",
    "MESSAGES_PROCESSED",
    "PORTFOLIO",
    "PORTFOLIO_REFRESHES",
    "RECOVERY_REMAINING",
    "REGISTRY",
    "SNAPSHOT",
    "SOURCE_EVENTS",
    "STATE_USERS_SHED",
    "TABLE_KEYS",
    "WORKSPACE_CONFIG_CHANGES",
    "WORKSPACE_CONFIG_INFO",
    "WORKSPACE_CONFIG_REFUSED",
    "MetricsServer",
    "PortfolioCollector",
    "PortfolioSnapshot",
    "exposition",
    "metric_names",
]

# The `_created` series double the number of series and the text format Prometheus scrapes
# has no use for them (rate() handles counter resets on its own).
disable_created_metrics()

REGISTRY = CollectorRegistry(auto_describe=True)
"""Telltale's registry; :func:`exposition` renders it. Includes process and GC metrics."""

ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Content-Type of a ``/metrics`` response: the classic text format that
``generate_latest`` writes (newer clients label it 1.0.0, which Prometheus 2 and
promtool do not all know)."""

# Event time → health change spans a network hop, Kafka, two agents and a table write:
# milliseconds when idle, seconds under backlog, a minute means something is wrong.
LATENCY_BUCKETS_SECONDS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)

# ---------------------------------------------------------------- ingestion (collector, resolve)

EVENTS_RECEIVED = Counter(
    "telltale_events_received_total",
    "Events received, by source (segment, rudderstack, posthog, kafka) and call type "
    "(track, identify, group, page, screen, alias).",
    ["source", "type"],
    registry=REGISTRY,
)
EVENTS_ACCEPTED = Counter(
    "telltale_events_accepted_total",
    "Events that passed validation and were forwarded for scoring, by source.",
    ["source"],
    registry=REGISTRY,
)
EVENTS_DEDUPLICATED = Counter(
    "telltale_events_deduplicated_total",
    "Events dropped because their message id was already seen, by source.",
    ["source"],
    registry=REGISTRY,
)
SOURCE_EVENTS = Counter(
    "telltale_source_events_total",
    "Billing, support and destination webhooks received, by source (stripe, chargebee, "
    "zendesk, intercom, freshdesk, segment, rudderstack) and outcome (accepted, duplicate, "
    "ignored, dead_lettered, unauthorized).",
    ["source", "outcome"],
    registry=REGISTRY,
)
CRM_READS = Counter(
    "telltale_crm_reads_total",
    "Account records read from a CRM on a schedule (hubspot, salesforce), by outcome "
    "(accepted, duplicate meaning unchanged since the last read, dead_lettered) and polls "
    "that failed (failed).",
    ["crm", "outcome"],
    registry=REGISTRY,
)
CRM_READ_LAST_SUCCESS = Gauge(
    "telltale_crm_read_last_success_timestamp_seconds",
    "When each workspace's CRM was last read completely (Unix time): alert when it is "
    "older than a few intervals.",
    ["workspace", "crm"],
    registry=REGISTRY,
)
EVENTS_DEAD_LETTERED = Counter(
    "telltale_events_dead_lettered_total",
    "Messages or events sent to a dead-letter topic, by reason (short machine-readable "
    "word such as invalid_json, missing_field, unknown_workspace).",
    ["reason"],
    registry=REGISTRY,
)
EVENTS_MOVED = Counter(
    "telltale_events_moved_total",
    "Events of an anonymous (or previous) id moved to the user an identify or alias call "
    "linked it to, by kind (held: waiting for an account when the link came; forwarded: "
    "arriving after it).",
    ["kind"],
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "telltale_http_requests_total",
    "HTTP requests answered by the worker's web server, by route template and status code.",
    ["route", "status"],
    registry=REGISTRY,
)

# ---------------------------------------------------------------- stream processing

MESSAGES_PROCESSED = Counter(
    "telltale_messages_processed_total",
    "Kafka messages consumed and fully handled, by agent (resolve, score, notify, ...).",
    ["agent"],
    registry=REGISTRY,
)
EVENTS_PROCESSED = Counter(
    "telltale_events_processed_total",
    "Events handled, by agent; one message may carry a batch of many events.",
    ["agent"],
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "telltale_consumer_lag_messages",
    "Messages between the partition's high-water mark and this worker's committed offset, "
    "for each topic partition assigned to this worker.",
    ["topic", "partition"],
    registry=REGISTRY,
)
EVENT_TO_CHANGE_LATENCY = Histogram(
    "telltale_event_to_change_latency_seconds",
    "Wall-clock time from receiving the newest event that caused a health change to "
    "emitting that change, in seconds.",
    buckets=LATENCY_BUCKETS_SECONDS,
    registry=REGISTRY,
)
TABLE_KEYS = Gauge(
    "telltale_table_keys",
    "Keys held in each state table's partitions assigned to this worker (RocksDB estimate).",
    ["table"],
    registry=REGISTRY,
)
STATE_USERS_SHED = Counter(
    "telltale_state_users_shed_total",
    "User summaries dropped from account records that would have outgrown "
    "state_record_max_bytes (least recently active first).",
    registry=REGISTRY,
)
RECOVERY_REMAINING = Gauge(
    "telltale_recovery_remaining_messages",
    "Changelog messages this worker still has to replay before its tables are recovered "
    "(0 when serving).",
    registry=REGISTRY,
)

# ---------------------------------------------------------------- decisions and delivery

HEALTH_CHANGES = Counter(
    "telltale_health_changes_total",
    "Health-change events emitted, by reason (band_changed, score_moved, "
    "forecast_changed, lifecycle_changed, signal_started, signal_ended). A change with "
    "several reasons counts once per reason.",
    ["reason"],
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "telltale_deliveries_total",
    "Deliveries of health changes, by destination (slack, webhook, hubspot, salesforce, "
    "readmodel) and outcome (sent, failed, skipped, dead_lettered).",
    ["destination", "outcome"],
    registry=REGISTRY,
)
DELIVERY_LATENCY = Histogram(
    "telltale_delivery_duration_seconds",
    "Time spent on one delivery attempt to an external destination, in seconds.",
    ["destination"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)

# ---------------------------------------------------------------- workspace configuration

WORKSPACE_CONFIG_CHANGES = Counter(
    "telltale_workspace_config_changes_total",
    "Changes of a workspace's configuration file seen by this worker, by workspace and "
    "outcome (added, applied, removed, refused: invalid, the previous one kept).",
    ["workspace", "outcome"],
    registry=REGISTRY,
)
WORKSPACE_CONFIG_INFO = Gauge(
    "telltale_workspace_config_info",
    "1 for the configuration this worker runs for each workspace with its own file: its "
    "scoring version and the first 12 hex digits of the file's SHA-256.",
    ["workspace", "scoring_version", "revision"],
    registry=REGISTRY,
)
WORKSPACE_CONFIG_REFUSED = Gauge(
    "telltale_workspace_config_refused",
    "1 while a workspace's file on disk is invalid and this worker keeps the previous "
    "configuration in force.",
    ["workspace"],
    registry=REGISTRY,
)

# ---------------------------------------------------------------- portfolio (read model)

ACTIVE_SIGNALS_NAME = "telltale_active_signals"

# name → (HELP, label holding the category). Every portfolio gauge also has `workspace`.
PORTFOLIO: dict[str, tuple[str, str]] = {
    "telltale_accounts": ("Accounts in the read model, by health band.", "band"),
    "telltale_accounts_by_forecast": (
        "Accounts by renewal forecast stage (commit, best_case, at_risk, none).", "stage"),
    "telltale_accounts_by_lifecycle": (
        "Accounts by lifecycle stage (onboarding, adopting, mature, renewal_window, "
        "churned, reactivated).", "stage"),
    "telltale_arr_usd": ("Annual recurring revenue of the accounts in each health band, "
                         "in US dollars.", "band"),
    ACTIVE_SIGNALS_NAME: ("Signals currently firing across accounts, by signal type.",
                          "signal"),
}

# Which field of ReadModel.portfolio(workspace) feeds which gauge.
_PORTFOLIO_FIELDS: dict[str, str] = {
    "telltale_accounts": "accounts_by_band",
    "telltale_accounts_by_forecast": "accounts_by_forecast",
    "telltale_accounts_by_lifecycle": "accounts_by_lifecycle",
    "telltale_arr_usd": "arr_by_band",
    ACTIVE_SIGNALS_NAME: "active_signals",
}

PORTFOLIO_REFRESHES = Counter(
    "telltale_portfolio_refreshes_total",
    "Attempts to refresh the portfolio snapshot from the read model, by outcome "
    "(ok, failed, skipped when this worker is not the leader).",
    ["outcome"],
    registry=REGISTRY,
)


@dataclass
class PortfolioSnapshot:
    """The latest portfolio figures per workspace, swapped in whole by the refresh timer.

    ``workspaces`` maps workspace → ``ReadModel.portfolio(workspace)`` dict, whose values
    for the keys in ``_PORTFOLIO_FIELDS`` are ``{category: number}`` mappings.
    """

    workspaces: dict[str, Mapping[str, object]] = field(default_factory=dict)
    refreshed_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def replace(self, workspaces: Mapping[str, Mapping[str, object]],
                now: float | None = None) -> None:
        with self._lock:
            self.workspaces = dict(workspaces)
            self.refreshed_at = time.time() if now is None else now

    def clear(self) -> None:
        """Publish nothing: this worker is not (or no longer) the one that reports."""
        with self._lock:
            self.workspaces = {}
            self.refreshed_at = None

    def read(self) -> tuple[dict[str, Mapping[str, object]], float | None]:
        with self._lock:
            return dict(self.workspaces), self.refreshed_at


class PortfolioCollector(Collector):
    """Renders a :class:`PortfolioSnapshot` as gauges at scrape time (no I/O)."""

    def __init__(self, snapshot: PortfolioSnapshot) -> None:
        self.snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        return list(self._families({}, None))

    def collect(self) -> Iterable[Metric]:
        workspaces, refreshed_at = self.snapshot.read()
        return list(self._families(workspaces, refreshed_at))

    @staticmethod
    def _families(workspaces: Mapping[str, Mapping[str, object]],
                  refreshed_at: float | None) -> Iterable[Metric]:
        for name, (help_text, category) in PORTFOLIO.items():
            family = GaugeMetricFamily(name, help_text, labels=["workspace", category])
            source = _PORTFOLIO_FIELDS[name]
            for workspace in sorted(workspaces):
                values = workspaces[workspace].get(source)
                if not isinstance(values, Mapping):
                    continue
                for key in sorted(values, key=str):
                    number = values[key]
                    if isinstance(number, int | float) and not isinstance(number, bool):
                        family.add_metric([workspace, str(key)], float(number))
            yield family
        age = GaugeMetricFamily(
            "telltale_portfolio_refreshed_timestamp_seconds",
            "Unix time of the last successful portfolio refresh published by this worker.",
        )
        if refreshed_at is not None:
            age.add_metric([], refreshed_at)
        yield age


SNAPSHOT = PortfolioSnapshot()
"""The process-wide snapshot that the ``/metrics`` endpoint reports."""

REGISTRY.register(PortfolioCollector(SNAPSHOT))


def exposition(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    """The body and Content-Type of a ``/metrics`` response (text format 0.0.4)."""
    return generate_latest(registry), CONTENT_TYPE


def metric_names(registry: CollectorRegistry = REGISTRY) -> set[str]:
    """Every sample name the registry can expose, including ``_bucket``/``_sum``/``_count``
    of histograms and the ``_created`` series; used to check dashboards and rules."""
    names: set[str] = set()
    for family in registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.update({family.name + "_total", family.name + "_created"})
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count",
                                                             "_created"))
        elif family.type == "summary":
            names.update(family.name + suffix for suffix in ("_sum", "_count", "_created"))
        elif family.type in ("info",):
            names.add(family.name + "_info")
        names.update(sample.name for sample in family.samples)
    return names


class MetricsServer(Service):
    """``GET /metrics`` on its own address (``settings.metrics_host:metrics_port``).

    Not on the worker's public port: the exposition names every workspace with its ARR
    and account counts, so it is served where only Prometheus reaches it (loopback by
    default; a private network in docker compose). The worker starts it before the app,
    so recovery progress can be scraped while tables are restored.
    """

    def __init__(self, settings: Settings, registry: CollectorRegistry = REGISTRY,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = settings.metrics_host
        self.port = settings.metrics_port
        self.registry = registry
        self._runner: web.AppRunner | None = None

    async def _serve(self, request: web.Request) -> web.Response:
        body, content_type = exposition(self.registry)
        # aiohttp refuses a charset inside content_type=, so the header is set whole.
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def on_start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("metrics: serving /metrics on %s:%d", self.host, self.port)

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

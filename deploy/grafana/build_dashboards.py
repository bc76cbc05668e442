"""Write Telltale's provisioned Grafana dashboards as JSON.

The dashboards are plain data; this script is their source so that every panel follows
the same layout, datasource and unit conventions. Run it after changing a panel:

    .venv/bin/python deploy/grafana/build_dashboards.py

and commit the regenerated files in ``deploy/grafana/dashboards/`` (a test fails when
they drift from this script).

Portfolio gauges are exported by one worker at a time, but during a leader change two
may overlap, so every portfolio query first takes ``max by (workspace, <category>)``
across instances and only then sums over the selected workspaces.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "telltale-prometheus"}
SCHEMA_VERSION = 39
RATE = "$__rate_interval"

Panel = dict[str, Any]


class _Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping rows."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_height = 0
        self.next_id = 1

    def place(self, width: int, height: int) -> dict[str, int]:
        if self.x + width > 24:
            self.x, self.y = 0, self.y + self.row_height
            self.row_height = 0
        pos = {"h": height, "w": width, "x": self.x, "y": self.y}
        self.x += width
        self.row_height = max(self.row_height, height)
        return pos

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def row(self, title: str) -> Panel:
        if self.x:
            self.x, self.y = 0, self.y + self.row_height
        pos = {"h": 1, "w": 24, "x": 0, "y": self.y}
        self.y += 1
        self.row_height = 0
        return {"type": "row", "title": title, "collapsed": False, "id": self.new_id(),
                "gridPos": pos, "panels": []}


def _targets(queries: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr,
         "legendFormat": legend, "range": True}
        for i, (expr, legend) in enumerate(queries)
    ]


def _panel(layout: _Layout, kind: str, title: str, description: str,
           queries: list[tuple[str, str]], *, unit: str = "short", width: int = 12,
           height: int = 8, stacked: bool = False, thresholds: list[tuple[float | None, str]]
           | None = None, interval: str | None = None, options: dict[str, Any] | None = None,
           instant: bool = False, bars: bool = False) -> Panel:
    steps = [{"value": value, "color": color}
             for value, color in (thresholds or [(None, "green")])]
    custom: dict[str, Any] = {}
    if kind == "timeseries":
        custom = {"drawStyle": "bars" if bars else "line", "lineWidth": 1,
                  "fillOpacity": 80 if bars else 20 if stacked else 10,
                  "stacking": {"mode": "normal" if stacked else "none", "group": "A"}}
    panel: Panel = {
        "type": kind,
        "id": layout.new_id(),
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": layout.place(width, height),
        "targets": _targets(queries),
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "color": {"mode": "palette-classic" if kind != "stat" else "thresholds"},
                "thresholds": {"mode": "absolute", "steps": steps},
                "custom": custom,
            },
            "overrides": [],
        },
        "options": options or {"legend": {"displayMode": "list", "placement": "bottom",
                                          "showLegend": True},
                               "tooltip": {"mode": "multi", "sort": "desc"}},
    }
    if interval:
        panel["interval"] = interval
    if instant:
        for target in panel["targets"]:
            target["instant"] = True
            target["range"] = False
    return panel


def _stat(layout: _Layout, title: str, description: str, expr: str, *, unit: str = "short",
          thresholds: list[tuple[float | None, str]] | None = None, width: int = 6) -> Panel:
    return _panel(layout, "stat", title, description, [(expr, "")], unit=unit, width=width,
                  height=4, thresholds=thresholds,
                  options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                             "values": False},
                           "colorMode": "value", "graphMode": "area",
                           "textMode": "auto"})


def _dashboard(uid: str, title: str, description: str, tags: list[str],
               panels: list[Panel], variables: list[dict[str, Any]],
               time_from: str = "now-6h") -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": tags,
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": time_from, "to": "now"},
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "panels": panels,
        "templating": {"list": variables},
        "annotations": {"list": [{
            "name": "Annotations & Alerts",
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "type": "dashboard",
        }]},
        "links": [],
    }


def _query_variable(name: str, label: str, query: str, description: str) -> dict[str, Any]:
    return {
        "type": "query",
        "name": name,
        "label": label,
        "description": description,
        "datasource": DATASOURCE,
        "query": query,
        "definition": query,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": "All", "value": "$__all"},
        "options": [],
        "sort": 1,
    }


def operations() -> dict[str, Any]:
    """Throughput, lag, latency, dead letters, deliveries and recovery of the workers."""
    lay = _Layout()
    inst = 'instance=~"$instance"'
    p: list[Panel] = [lay.row("Workers")]
    p.append(_stat(lay, "Workers up", "Workers Prometheus scraped successfully.",
                   'count(up{job="telltale"} == 1)',
                   thresholds=[(None, "red"), (1, "green")]))
    p.append(_stat(lay, "Events in / s", "Events received by all collectors and topics.",
                   f"sum(rate(telltale_events_received_total{{{inst}}}[{RATE}]))",
                   unit="ops"))
    p.append(_stat(lay, "Consumer lag", "Messages waiting across all source partitions.",
                   f"sum(telltale_consumer_lag_messages{{{inst}}})",
                   thresholds=[(None, "green"), (10000, "orange"), (100000, "red")]))
    p.append(_stat(lay, "Recovery remaining", "Changelog messages still to replay.",
                   f"sum(telltale_recovery_remaining_messages{{{inst}}})",
                   thresholds=[(None, "green"), (1, "orange")]))

    p.append(lay.row("Throughput"))
    p.append(_panel(lay, "timeseries", "Events received by source",
                    "Events arriving per second, by source.",
                    [(f"sum by (source) (rate(telltale_events_received_total{{{inst}}}[{RATE}]))",
                      "{{source}}")], unit="ops"))
    p.append(_panel(lay, "timeseries", "Events received by type",
                    "Events arriving per second, by call type.",
                    [(f"sum by (type) (rate(telltale_events_received_total{{{inst}}}[{RATE}]))",
                      "{{type}}")], unit="ops"))
    p.append(_panel(lay, "timeseries", "Accepted, deduplicated and moved",
                    "Events forwarded for scoring, duplicates dropped by message id, and "
                    "events of anonymous ids moved to the user an identify or alias named.",
                    [(f"sum by (source) (rate(telltale_events_accepted_total{{{inst}}}[{RATE}]))",
                      "accepted {{source}}"),
                     (f"sum by (source) (rate(telltale_events_deduplicated_total{{{inst}}}"
                      f"[{RATE}]))", "duplicate {{source}}"),
                     (f"sum by (kind) (rate(telltale_events_moved_total{{{inst}}}[{RATE}]))",
                      "moved {{kind}}")], unit="ops"))
    p.append(_panel(lay, "timeseries", "Processing rate by agent",
                    "Kafka messages and the events inside them handled per second.",
                    [(f"sum by (agent) (rate(telltale_messages_processed_total{{{inst}}}"
                      f"[{RATE}]))", "messages {{agent}}"),
                     (f"sum by (agent) (rate(telltale_events_processed_total{{{inst}}}"
                      f"[{RATE}]))", "events {{agent}}")], unit="ops"))
    p.append(_panel(lay, "timeseries", "HTTP requests by status",
                    "Collector, API and page requests per second, by status code.",
                    [(f"sum by (status) (rate(telltale_http_requests_total{{{inst}}}[{RATE}]))",
                      "{{status}}")], unit="reqps", width=24))

    p.append(lay.row("Lag and latency"))
    p.append(_panel(lay, "timeseries", "Consumer lag by topic",
                    "Messages between each partition's high-water mark and the committed "
                    "offset, summed per topic.",
                    [(f"sum by (topic) (telltale_consumer_lag_messages{{{inst}}})",
                      "{{topic}}")]))
    p.append(_panel(lay, "timeseries", "Event to health change latency",
                    "From receiving the event that caused a change to emitting the change.",
                    [(f"histogram_quantile({q}, sum by (le) (rate("
                      f"telltale_event_to_change_latency_seconds_bucket{{{inst}}}[{RATE}])))",
                      f"p{int(q * 100)}") for q in (0.5, 0.95, 0.99)], unit="s"))
    p.append(_panel(lay, "timeseries", "Consumer lag by partition",
                    "Lag of every assigned partition, by worker.",
                    [(f"telltale_consumer_lag_messages{{{inst}}}",
                      "{{topic}}[{{partition}}] {{instance}}")], width=24))

    p.append(lay.row("Dead letters"))
    p.append(_panel(lay, "timeseries", "Dead-lettered by reason",
                    "Messages and events sent to a dead-letter topic per second.",
                    [(f"sum by (reason) (rate(telltale_events_dead_lettered_total{{{inst}}}"
                      f"[{RATE}]))", "{{reason}}")], unit="ops", stacked=True))
    p.append(_panel(lay, "timeseries", "Dead-letter ratio",
                    "Share of received events that ended in a dead-letter topic.",
                    [(f"sum(rate(telltale_events_dead_lettered_total{{{inst}}}[{RATE}])) / "
                      f"clamp_min(sum(rate(telltale_events_received_total{{{inst}}}[{RATE}])),"
                      " 1e-9)", "dead-lettered")], unit="percentunit",
                    thresholds=[(None, "green"), (0.05, "red")]))

    p.append(lay.row("Health changes and deliveries"))
    p.append(_panel(lay, "timeseries", "Health changes by reason",
                    "Health-change events emitted per second, by reason.",
                    [(f"sum by (reason) (rate(telltale_health_changes_total{{{inst}}}[{RATE}]))",
                      "{{reason}}")], unit="ops", stacked=True))
    p.append(_panel(lay, "timeseries", "Deliveries by destination and outcome",
                    "Slack, webhook, CRM and read-model deliveries per second.",
                    [(f"sum by (destination, outcome) (rate(telltale_deliveries_total{{{inst}}}"
                      f"[{RATE}]))", "{{destination}} {{outcome}}")], unit="ops"))
    p.append(_panel(lay, "timeseries", "Delivery failure ratio",
                    "Share of delivery attempts that failed, by destination.",
                    [(f'sum by (destination) (rate(telltale_deliveries_total{{outcome="failed",'
                      f"{inst}}}[{RATE}])) / clamp_min(sum by (destination) (rate("
                      f"telltale_deliveries_total{{{inst}}}[{RATE}])), 1e-9)",
                      "{{destination}}")], unit="percentunit",
                    thresholds=[(None, "green"), (0.1, "red")]))
    p.append(_panel(lay, "timeseries", "Delivery duration p95",
                    "95th percentile time of one delivery attempt, by destination.",
                    [(f"histogram_quantile(0.95, sum by (le, destination) (rate("
                      f"telltale_delivery_duration_seconds_bucket{{{inst}}}[{RATE}])))",
                      "{{destination}}")], unit="s"))

    p.append(lay.row("State and recovery"))
    p.append(_panel(lay, "timeseries", "Table keys",
                    "Keys held per state table (active partitions, RocksDB estimate).",
                    [(f"sum by (table) (telltale_table_keys{{{inst}}})", "{{table}}")]))
    p.append(_panel(lay, "timeseries", "Recovery remaining by worker",
                    "Changelog messages each worker must replay before serving.",
                    [(f"telltale_recovery_remaining_messages{{{inst}}}", "{{instance}}")]))
    p.append(_panel(lay, "timeseries", "Worker memory",
                    "Resident memory of each worker process.",
                    [(f"process_resident_memory_bytes{{job=\"telltale\",{inst}}}",
                      "{{instance}}")], unit="bytes"))
    p.append(_panel(lay, "timeseries", "Worker CPU",
                    "CPU seconds used per second by each worker process.",
                    [(f"rate(process_cpu_seconds_total{{job=\"telltale\",{inst}}}[{RATE}])",
                      "{{instance}}")], unit="percentunit"))

    variables = [_query_variable("instance", "Worker",
                                 'label_values(up{job="telltale"}, instance)',
                                 "Telltale worker instances scraped by Prometheus.")]
    return _dashboard("telltale-operations", "Telltale operations",
                      "Throughput, consumer lag, latency, dead letters, deliveries and "
                      "recovery of the Telltale workers.", ["telltale", "operations"], p,
                      variables, time_from="now-3h")


def customer_health() -> dict[str, Any]:
    """The portfolio at a glance: bands, stages, ARR at risk, signals, changes per day."""
    lay = _Layout()
    ws = 'workspace=~"$workspace"'

    def portfolio(metric: str, category: str, match: str = "") -> str:
        selector = f"{metric}{{{ws}{',' + match if match else ''}}}"
        return f"sum by ({category}) (max by (workspace, {category}) ({selector}))"

    def total(metric: str, category: str, match: str = "") -> str:
        selector = f"{metric}{{{ws}{',' + match if match else ''}}}"
        return f"sum(max by (workspace, {category}) ({selector}))"

    p: list[Panel] = [lay.row("Now")]
    p.append(_stat(lay, "Accounts", "Accounts in the read model.",
                   total("telltale_accounts", "band")))
    p.append(_stat(lay, "Accounts at risk", "Accounts in the at-risk band (score below 40).",
                   total("telltale_accounts", "band", 'band="at_risk"'),
                   thresholds=[(None, "green"), (1, "red")]))
    p.append(_stat(lay, "ARR at risk", "Annual recurring revenue of at-risk accounts.",
                   total("telltale_arr_usd", "band", 'band="at_risk"'), unit="currencyUSD",
                   thresholds=[(None, "green"), (1, "red")]))
    p.append(_stat(lay, "ARR on watch", "Annual recurring revenue of accounts on watch.",
                   total("telltale_arr_usd", "band", 'band="watch"'), unit="currencyUSD",
                   thresholds=[(None, "green"), (1, "orange")]))

    p.append(lay.row("Portfolio over time"))
    p.append(_panel(lay, "timeseries", "Accounts by health band",
                    "Healthy (70+), watch (40-69) and at-risk (below 40) accounts.",
                    [(portfolio("telltale_accounts", "band"), "{{band}}")], stacked=True))
    p.append(_panel(lay, "timeseries", "ARR by health band",
                    "Annual recurring revenue held by accounts in each band.",
                    [(portfolio("telltale_arr_usd", "band"), "{{band}}")],
                    unit="currencyUSD", stacked=True))
    p.append(_panel(lay, "timeseries", "Accounts by forecast stage",
                    "Renewal forecast of accounts with a renewal date.",
                    [(portfolio("telltale_accounts_by_forecast", "stage"), "{{stage}}")],
                    stacked=True))
    p.append(_panel(lay, "timeseries", "Accounts by lifecycle stage",
                    "Onboarding, adopting, mature, renewal window, churned, reactivated.",
                    [(portfolio("telltale_accounts_by_lifecycle", "stage"), "{{stage}}")],
                    stacked=True))
    p.append(_panel(lay, "timeseries", "ARR at risk",
                    "Annual recurring revenue of at-risk accounts over time, per workspace.",
                    [('max by (workspace) (telltale_arr_usd{band="at_risk",' + ws + "})",
                      "{{workspace}}")], unit="currencyUSD",
                    thresholds=[(None, "green"), (1, "red")]))

    p.append(lay.row("Signals and changes"))
    p.append(_panel(lay, "bargauge", "Signals firing now",
                    "Signals currently active across accounts, by type.",
                    [(portfolio("telltale_active_signals", "signal"), "{{signal}}")],
                    instant=True,
                    options={"orientation": "horizontal", "displayMode": "gradient",
                             "reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                               "values": False},
                             "showUnfilled": True}))
    p.append(_panel(lay, "timeseries", "Signals firing over time",
                    "Active signals by type.",
                    [(portfolio("telltale_active_signals", "signal"), "{{signal}}")]))
    p.append(_panel(lay, "timeseries", "Health changes per day",
                    "Health-change events emitted per day, by reason (all workspaces).",
                    [("sum by (reason) (increase(telltale_health_changes_total[1d]))",
                      "{{reason}}")], interval="1d", stacked=True, bars=True, width=24))

    variables = [_query_variable("workspace", "Workspace",
                                 "label_values(telltale_accounts, workspace)",
                                 "Workspaces with accounts in the read model.")]
    return _dashboard("telltale-customer-health", "Customer health",
                      "Accounts by band, forecast and lifecycle stage, ARR at risk, active "
                      "signals and health changes per day, from Telltale's read model.",
                      ["telltale", "customer-success"], p, variables, time_from="now-30d")


DASHBOARDS = {
    "telltale-operations.json": operations,
    "customer-health.json": customer_health,
}


def render(name: str) -> str:
    return json.dumps(DASHBOARDS[name](), indent=2, sort_keys=False) + "\n"


def main() -> int:
    DASHBOARD_DIR.mkdir(parents=True, exist_ok=True)
    for name in DASHBOARDS:
        (DASHBOARD_DIR / name).write_text(render(name), encoding="utf-8")
        print(f"wrote {DASHBOARD_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

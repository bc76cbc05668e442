"""The provisioned Grafana dashboards are valid and only query what workers export."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.conftest import REPO, load_schema
from tests.deploy.promql import PROMETHEUS_SERIES, TARGET_LABELS, exported_labels, usage

DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
FILES = sorted(DASHBOARDS.glob("*.json"))


def _builder() -> ModuleType:
    path = REPO / "deploy" / "grafana" / "build_dashboards.py"
    spec = importlib.util.spec_from_file_location("telltale_build_dashboards", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and query variable."""
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            if "expr" in target:
                yield f"panel {panel.get('title')!r}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield f"variable {variable['name']!r}", variable["query"]


def test_both_dashboards_ship() -> None:
    titles = {_load(path)["title"] for path in FILES}
    assert titles == {"Telltale operations", "Customer health"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_dashboard_validates_against_grafana_schema(path: Path) -> None:
    schema = load_schema("grafana-dashboard.schema.json")
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(_load(path))]
    assert errors == []


def test_schema_check_rejects_a_broken_dashboard() -> None:
    dashboard = _load(FILES[0])
    del dashboard["templating"]
    dashboard["panels"][0]["gridPos"] = {"h": 1}
    validator = jsonschema.Draft7Validator(load_schema("grafana-dashboard.schema.json"))
    assert len(list(validator.iter_errors(dashboard))) >= 2


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_query_uses_exported_metrics_and_labels(path: Path) -> None:
    exported = exported_labels()
    problems: list[str] = []
    expressions = list(_expressions(_load(path)))
    assert expressions
    for where, expr in expressions:
        found = usage(expr)
        assert found.metrics, f"{where}: no metric found in {expr!r}"
        known: set[str] = set(TARGET_LABELS)
        for name in found.metrics:
            if name in PROMETHEUS_SERIES:
                continue
            if name not in exported:
                problems.append(f"{where}: {name} is not exported by agents.metrics")
                continue
            known |= exported[name]
        for name, labels in found.matchers.items():
            allowed = exported.get(name, frozenset()) | TARGET_LABELS
            for label in labels - allowed:
                problems.append(f"{where}: {name} has no label {label!r}")
        for label in found.grouping - known:
            problems.append(f"{where}: grouping by unknown label {label!r} in {expr!r}")
    assert problems == []


def test_metric_check_catches_an_unknown_metric() -> None:
    exported = exported_labels()
    found = usage('sum by (band) (max by (workspace, band) (telltale_acounts{band="x"}))')
    assert found.metrics == {"telltale_acounts"}
    assert "telltale_acounts" not in exported
    assert usage("histogram_quantile(0.9, sum by (le) (rate("
                 "telltale_event_to_change_latency_seconds_bucket[5m])))").metrics == {
        "telltale_event_to_change_latency_seconds_bucket"}
    assert usage("label_values(telltale_accounts, workspace)").grouping == {"workspace"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_dashboard_layout_and_datasource(path: Path) -> None:
    dashboard = _load(path)
    provisioned = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = provisioned["datasources"][0]["uid"]
    ids = [panel["id"] for panel in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in _panels(dashboard):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == uid
            assert panel.get("description"), f"{panel['title']} needs a description"
    assert dashboard["uid"] and 8 <= len(dashboard["uid"]) <= 40


def test_customer_health_filters_by_workspace() -> None:
    dashboard = _load(DASHBOARDS / "customer-health.json")
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert names == ["workspace"]
    portfolio_queries = [expr for _where, expr in _expressions(dashboard)
                         if "telltale_accounts" in expr or "telltale_arr_usd" in expr]
    # Portfolio gauges may come from two workers during a leader change: every query
    # deduplicates with max by (workspace, ...) and filters on the variable.
    for expr in portfolio_queries:
        if expr.startswith("label_values"):
            continue
        assert '$workspace' in expr and "max by (workspace" in expr, expr


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_committed_dashboard_matches_its_builder(path: Path) -> None:
    builder = _builder()
    assert path.read_text(encoding="utf-8") == builder.render(path.name), (
        "regenerate with: .venv/bin/python deploy/grafana/build_dashboards.py")

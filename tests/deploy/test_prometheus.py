"""Prometheus config and alert rules pass promtool, fire when they should, and only use
metrics the workers export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import REPO
from tests.deploy.promql import PROMETHEUS_SERIES, TARGET_LABELS, exported_labels, usage
from tests.deploy.promtool import promtool

CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
RULES = REPO / "deploy" / "prometheus" / "rules" / "telltale.rules.yml"
ALERT_TESTS = Path(__file__).resolve().parent / "data" / "alerts_test.yml"


def _rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def test_promtool_check_config(promtool_bin: Path) -> None:
    result = promtool(promtool_bin, "check", "config", str(CONFIG))
    assert result.returncode == 0, result.output
    assert "1 rule files found" in result.output


def test_promtool_check_rules(promtool_bin: Path) -> None:
    result = promtool(promtool_bin, "check", "rules", str(RULES))
    assert result.returncode == 0, result.output


def test_promtool_check_rules_fails_on_a_broken_rule(promtool_bin: Path,
                                                      tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("groups:\n  - name: x\n    rules:\n      - alert: X\n"
                      "        expr: sum(rate(telltale_deliveries_total[5m]) >\n")
    assert promtool(promtool_bin, "check", "rules", str(broken)).returncode != 0


def test_alerts_fire_on_the_conditions_they_describe(promtool_bin: Path,
                                                     tmp_path: Path) -> None:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            del rule["annotations"]["runbook"]
    rules_copy = tmp_path / "rules.yml"
    rules_copy.write_text(yaml.safe_dump(rules, sort_keys=False))
    spec = yaml.safe_load(ALERT_TESTS.read_text(encoding="utf-8"))
    spec["rule_files"] = [str(rules_copy)]
    test_file = tmp_path / "alerts_test.yml"
    test_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = promtool(promtool_bin, "test", "rules", str(test_file))
    assert result.returncode == 0, result.output


def test_scrape_config_discovers_the_compose_workers() -> None:
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "telltale"]
    (dns,) = job["dns_sd_configs"]
    worker_services = {name for name, service in compose["services"].items()
                       if "telltale" in " ".join(service.get("command", []))}
    assert set(dns["names"]) == worker_services
    for name in worker_services:
        environment = compose["services"][name]["environment"]
        # /metrics is served on the metrics port only, never on the public one.
        assert int(environment["TELLTALE_METRICS_PORT"]) == dns["port"]
        assert int(environment["TELLTALE_WEB_PORT"]) != dns["port"]
    assert job["metrics_path"] == "/metrics"


def test_every_alert_has_severity_summary_and_runbook() -> None:
    rules = _rules()
    assert {rule["alert"] for rule in rules} >= {
        "TelltaleWorkerDown", "TelltaleConsumerLagGrowing", "TelltaleDeadLetterRateHigh",
        "TelltaleDeliveryFailures", "TelltaleRecoveryStalled"}
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], rule["alert"]
        assert len(annotations["runbook"].split()) >= 25, f"{rule['alert']}: runbook too thin"


def test_rule_expressions_use_exported_metrics() -> None:
    exported = exported_labels()
    problems: list[str] = []
    for rule in _rules():
        found = usage(rule["expr"])
        known = set(TARGET_LABELS)
        for name in found.metrics - PROMETHEUS_SERIES:
            if name not in exported:
                problems.append(f"{rule['alert']}: {name} is not exported")
            else:
                known |= exported[name]
        for name, labels in found.matchers.items():
            for label in labels - (exported.get(name, frozenset()) | TARGET_LABELS):
                problems.append(f"{rule['alert']}: {name} has no label {label!r}")
        for label in found.grouping - known:
            problems.append(f"{rule['alert']}: grouping by unknown label {label!r}")
    assert problems == []


@pytest.mark.parametrize("path", sorted((REPO / "deploy/prometheus/rules").glob("*.yml")))
def test_rule_files_are_loaded_by_the_config(path: Path) -> None:
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    patterns = config["rule_files"]
    assert any(path.match(str(CONFIG.parent / pattern)) for pattern in patterns)

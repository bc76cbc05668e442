"""Routing matches on names the scoring core emits: a renamed signal, reason, band or
stage must not leave a playbook silently matching nothing."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from agents.sinks.routing import DEFAULT_PLAYBOOKS, SIGNAL_PLAYBOOKS, NotificationConfig, Rule
from scoring import signals
from scoring.config import load_config
from scoring.labels import Band, ChangeReason, ForecastStage, Lifecycle, SignalSeverity

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "agents" / "sinks" / "notifications.example.toml"


def test_every_default_playbook_tag_is_carried_by_a_signal() -> None:
    assert set(SIGNAL_PLAYBOOKS) == signals.routing_tags()
    for tag in SIGNAL_PLAYBOOKS:
        assert signals.routing_patterns(tag), tag


RULES: list[Rule] = [*DEFAULT_PLAYBOOKS, *NotificationConfig.load(EXAMPLE).rules]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_every_rule_names_what_scoring_emits(rule: Rule) -> None:
    emitted = signals.signal_types(load_config())
    for pattern in rule.signals:
        assert fnmatch.filter(emitted, pattern), f"{pattern} matches no signal type"
    assert set(rule.reasons) <= set(ChangeReason)
    assert set(rule.severities) <= set(SignalSeverity)
    assert set(rule.bands) <= set(Band)
    assert set(rule.forecasts) <= set(ForecastStage)
    assert set(rule.lifecycles) <= set(Lifecycle)

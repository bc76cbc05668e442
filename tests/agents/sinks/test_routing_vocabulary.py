"""Routing matches on names the scoring core emits: a renamed signal, reason, band or
stage must not leave a playbook silently matching nothing."""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import pytest

from agents.sinks.routing import DEFAULT_PLAYBOOKS, NotificationConfig, Rule
from scoring import signals
from scoring.config import load_config
from scoring.labels import Band, ChangeReason, ForecastStage, Lifecycle, SignalSeverity

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "agents" / "sinks" / "notifications.example.toml"


#: Calls in scoring/signals.py that name the signal type they detect, and where.
_TYPE_ARGUMENT = {"Detected": 0, "_fall": 1}


def _literal_types_detected() -> set[str]:
    """Signal types written as literals where scoring/signals.py detects them."""
    tree = ast.parse((ROOT / "scoring" / "signals.py").read_text())
    found = set()
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name):
            index = _TYPE_ARGUMENT.get(call.func.id)
            if index is not None and len(call.args) > index:
                argument = call.args[index]
                if isinstance(argument, ast.Constant):
                    found.add(argument.value)
    return found


def test_the_catalogue_is_what_detect_emits() -> None:
    assert _literal_types_detected() == set(signals.FIXED_SIGNAL_TYPES)
    assert signals.user_inactive_type(10) in signals.signal_types(load_config())


def test_every_signal_type_is_documented() -> None:
    documented = (ROOT / "scoring" / "README.md").read_text()
    for kind in (*signals.FIXED_SIGNAL_TYPES, "user_inactive_<n>d"):
        assert f"| `{kind}` |" in documented, kind


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

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agents.sinks.routing import NotificationConfig, NotificationConfigError
from streams.health_change import HealthChangeRecord
from tests.fakes.changes import make_change, signal

CONFIG = """
[slack.channels.cs-alerts]
webhook_url = "https://hooks.slack.example/T/B/1"
[slack.channels.enterprise]
webhook_url = "https://hooks.slack.example/T/B/2"

[[webhooks]]
name = "ops"
url = "https://ops.example.com/hook"
secret = "s"

[[webhooks]]
name = "finance"
url = "https://fin.example.com/hook"
secret = "s"
every_change = false

[hubspot]
access_token = "pat"

[delivery]
cooldown_hours = 6
max_attempts = 3

[digest]
channel = "cs-alerts"
hour = 9
workspaces = { acme = 14 }

[[rules]]
name = "Big enterprise accounts"
segments = ["enterprise"]
min_arr = 50000
to = ["slack:enterprise"]
final = true

[[rules]]
name = "Payment trouble"
signals = ["payment_*"]
to = ["slack:cs-alerts", "webhook:finance"]

[[rules]]
name = "Riley's accounts falling"
owners = ["Riley Chen"]
reasons = ["band_changed", "score_moved"]
max_score = 69
to = ["slack:cs-alerts"]
"""


def route(config: NotificationConfig, change: dict[str, Any]) -> dict[str, list[str]]:
    return config.route(HealthChangeRecord.from_wire(change))


def load(tmp_path: Path, text: str = CONFIG) -> NotificationConfig:
    path = tmp_path / "notifications.toml"
    path.write_text(text)
    return NotificationConfig.load(path)


def test_rules_route_by_segment_arr_signal_owner_and_reason(tmp_path: Path) -> None:
    config = load(tmp_path)
    assert config.cooldown_seconds == 6 * 3600 and config.max_attempts == 3
    assert config.digest_hour_for("acme") == 14 and config.digest_hour_for("x") == 9
    big = make_change(segment="enterprise", arr=90_000.0,
                      started=[signal("payment_failed", amount=120)])
    assert route(config, big) == {"slack:enterprise": ["Big enterprise accounts"],
                                 "webhook:ops": ["every change"], "hubspot": ["every change"]}
    small = make_change(segment="smb", arr=9_000.0, started=[signal("payment_failed")])
    assert set(route(config, small)) == {"slack:cs-alerts", "webhook:finance", "webhook:ops",
                                        "hubspot"}
    assert route(config, small)["slack:cs-alerts"] == ["Payment trouble",
                                                      "Riley's accounts falling"]
    quiet = make_change(owner="Sam Ito", segment="smb", arr=1.0)
    assert set(route(config, quiet)) == {"webhook:ops", "hubspot"}


def test_default_playbooks_go_to_the_default_channel() -> None:
    config = NotificationConfig.load(None, "https://hooks.slack.example/default")
    inactive = make_change(score=75, previous_score=76,
                           started=[signal("power_user_inactive", subject="u1", days=22)])
    assert route(config, inactive) == {"slack:default": ["Power user gone quiet"]}
    fell = make_change(score=57, previous_score=72)
    assert route(config, fell) == {"slack:default": ["Health fell below 70"]}
    upsell = make_change(score=80, previous_score=80, reasons=["signal_started"],
                         started=[signal("seat_saturation", severity="expansion")])
    assert route(config, upsell) == {"slack:default": ["Upsell signal"]}
    churned = make_change(score=20, previous_score=25, lifecycle="churned",
                          reasons=["lifecycle_changed"])
    assert "Account churned" in route(config, churned)["slack:default"]
    lost = make_change(score=20, previous_score=20, reasons=["signal_started"],
                       started=[signal("account_inactive", days=45)])
    assert route(config, lost) == {"slack:default": ["Account lost"]}
    quiet_user = make_change(score=75, previous_score=75, reasons=["signal_started"],
                             started=[signal("user_inactive_14d", subject="u2", days=14)])
    assert route(config, quiet_user) == {"slack:default": ["User inactive 10 or 14 days"]}
    improved = make_change(score=85, previous_score=80, reasons=["score_moved"])
    assert route(config, improved) == {}
    assert route(NotificationConfig.load(None), fell) == {}


def test_invalid_file_lists_every_problem(tmp_path: Path) -> None:
    bad = """
[slack.channels.x]
webhook_url = "ftp://nope"
[[webhooks]]
name = "w"
[[rules]]
name = "r"
colour = "red"
to = ["slack:x"]
[[rules]]
name = "r2"
to = ["slack:missing"]
[digest]
hour = 25
"""
    with pytest.raises(NotificationConfigError) as info:
        load(tmp_path, bad)
    message = str(info.value)
    for fragment in ("webhook_url must be an http(s) URL", "webhooks[0] needs name",
                     "unknown fields ['colour']", "unknown destination 'slack:missing'",
                     "digest hours"):
        assert fragment in message
    with pytest.raises(NotificationConfigError, match="cannot read"):
        load(tmp_path, "not = [toml")


def test_the_shipped_example_file_is_valid() -> None:
    example = Path(__file__).resolve().parents[3] / "agents" / "sinks" / (
        "notifications.example.toml")
    config = NotificationConfig.load(example)
    assert set(config.destinations()) == {"slack:cs-alerts", "slack:enterprise",
                                          "webhook:data-warehouse", "hubspot", "salesforce"}
    big = make_change(segment="enterprise", arr=120_000.0, score=55, previous_score=72)
    assert route(config, big)["slack:enterprise"] == [
        "Enterprise accounts go to the enterprise channel"]
    assert "slack:cs-alerts" not in route(config, big)


def test_changes_that_are_not_alerts_skip_slack_but_reach_systems(tmp_path: Path) -> None:
    config = load(tmp_path)
    small = make_change(segment="smb", arr=9_000.0, started=[signal("payment_failed")])
    assert "slack:cs-alerts" in route(config, small)  # no flag: an older record, an alert
    assert "slack:cs-alerts" in route(config, {**small, "alert": True})
    quiet = route(config, {**small, "alert": False})
    assert quiet == {"webhook:finance": ["Payment trouble"], "webhook:ops": ["every change"],
                     "hubspot": ["every change"]}


def test_the_default_playbooks_name_only_what_scoring_emits() -> None:
    """Every signal pattern, reason, severity, band and stage the default playbooks match
    is one the scoring core can emit, so none of them is dead."""
    from agents.sinks.routing import DEFAULT_PLAYBOOKS, rule_problems
    from scoring.config import load_config
    from scoring.signals import FIXED_SIGNAL_TYPES, signal_types

    emitted = signal_types(load_config(None))
    assert set(FIXED_SIGNAL_TYPES) < set(emitted)
    for rule in DEFAULT_PLAYBOOKS:
        assert rule_problems(rule, emitted) == [], rule.name
    # ...and every signal scoring emits but the informational ones has a playbook.
    import fnmatch

    routed = {t for t in emitted for rule in DEFAULT_PLAYBOOKS for p in rule.signals
              if fnmatch.fnmatchcase(t, p)}
    assert set(emitted) - routed <= {"seat_saturation", "gated_feature_clicked",
                                     "upgrade_interest"}  # routed by severity=expansion


@pytest.mark.parametrize(("condition", "named"), [
    ('signals = ["power_user_inactiv"]', "power_user_inactiv"),
    ('signals = ["user_inactive_30d"]', "user_inactive_30d"),
    ('reasons = ["band_change"]', "band_change"),
    ('severities = ["critical"]', "critical"),
    ('bands = ["red"]', "red"),
    ('forecasts = ["lost"]', "lost"),
    ('lifecycles = ["dormant"]', "dormant"),
    ('segments = ["midmarket"]', "midmarket"),
])
def test_a_rule_naming_what_scoring_never_emits_is_refused_at_load(
        tmp_path: Path, condition: str, named: str) -> None:
    text = ('[slack.channels.cs]\nwebhook_url = "https://hooks.slack.example/T/B/1"\n'
            f'[[rules]]\nname = "Typo"\n{condition}\nto = ["slack:cs"]\n')
    with pytest.raises(NotificationConfigError) as info:
        load(tmp_path, text)
    message = str(info.value)
    assert "rule 'Typo'" in message and named in message and "known:" in message


def test_signal_names_follow_the_scoring_config_in_force(tmp_path: Path) -> None:
    """A threshold the scoring config adds makes its signal a valid rule condition."""
    from scoring.config import load_config
    from scoring.signals import signal_types

    text = ('[slack.channels.cs]\nwebhook_url = "https://hooks.slack.example/T/B/1"\n'
            '[[rules]]\nname = "Quiet a month"\nsignals = ["user_inactive_30d"]\n'
            'to = ["slack:cs"]\n')
    path = tmp_path / "notifications.toml"
    path.write_text(text)
    with pytest.raises(NotificationConfigError, match="user_inactive_30d"):
        NotificationConfig.load(path)
    config = load_config(None)
    longer = replace(config, signals=replace(
        config.signals, user_inactive_days=(*config.signals.user_inactive_days, 30)))
    loaded = NotificationConfig.load(path, known_signals=signal_types(longer))
    assert loaded.rules[0].name == "Quiet a month"

"""Notification configuration: destinations, playbook rules that route changes to them,
cooldown and the daily digest. One TOML file (``TELLTALE_NOTIFICATIONS_CONFIG``), checked
at start-up; without a file the defaults below apply.

Format::

    [slack.channels.cs-alerts]            # named Slack incoming webhooks
    webhook_url = "https://hooks.slack.com/services/T000/B000/XXXX"
    [slack.channels.enterprise]
    webhook_url = "https://hooks.slack.com/services/T000/B001/YYYY"

    [[webhooks]]                          # signed JSON POSTs (see webhooks.py)
    name = "ops"
    url = "https://ops.example.com/telltale"
    secret = "change-me"
    every_change = true                   # default; false = only where a rule sends it
    # standard_webhooks_secret = "whsec_..." # also sign as Standard Webhooks (optional)

    [hubspot]                             # written on every change by default
    access_token = "pat-..."
    [salesforce]
    instance_url = "https://example.my.salesforce.com"
    session_id = "00D..."                 # a fixed access token (expires), or OAuth:
    # token_url = "https://example.my.salesforce.com/services/oauth2/token"
    # client_id = "3MVG..."               # the Connected App's consumer key, and either
    # client_secret = "..."               # client credentials, or JWT bearer:
    # username = "telltale@example.com"   private_key_file = "/etc/telltale/sf.key"
    version = "59.0"

    [delivery]
    cooldown_hours = 24                   # per account + signal + destination
    max_attempts = 8                      # then dead-lettered
    backoff_seconds = 1.0                 # doubled per attempt, with jitter
    max_backoff_seconds = 300.0
    queue_size = 10000                    # per destination; full = dead-lettered

    [digest]
    channel = "cs-alerts"                 # Slack channel name; omit to turn off
    hour = 8                              # UTC hour
    workspaces = { acme = 13 }            # per-workspace hour overrides

    [[rules]]                             # evaluated in order; every match adds its `to`
    name = "Enterprise renewals at risk"  # fields left out match anything; lists match any
    reasons = ["forecast_changed"]        # of: reasons, signals (glob patterns on the
    forecasts = ["at_risk"]               # type of a signal that just started),
    segments = ["enterprise"]             # severities, bands, forecasts, lifecycles,
    min_arr = 50000                       # segments, owners, workspaces; min_arr,
    to = ["slack:enterprise"]             # max_score. final = true stops evaluation.
    final = true

Destinations are ``slack:<channel>``, ``webhook:<name>``, ``hubspot``, ``salesforce``.
A rule is checked against what the scoring core can emit: a reason, severity, band,
forecast, lifecycle or segment outside its vocabulary (``scoring/labels.py``), or a
signal pattern matching none of the signal types of the scoring config in force
(``scoring.signals.signal_types``), could never match and is refused at load, with the
names it knows.
With no ``[[rules]]`` the default playbooks (:data:`DEFAULT_PLAYBOOKS`) send to the
``default`` Slack channel, which is ``TELLTALE_SLACK_WEBHOOK_URL`` when set.
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from agents.sinks.salesforce_oauth import SalesforceOAuth, oauth_from_spec
from agents.sinks.standard_webhooks import parse_secret
from scoring.config import SEGMENTS, load_config
from scoring.labels import Band, ChangeReason, ForecastStage, Lifecycle, SignalSeverity
from scoring.signals import routing_patterns, signal_types
from streams.health_change import HealthChangeRecord


class NotificationConfigError(ValueError):
    """The notifications file is invalid; the message lists every problem."""


def read_notifications_file(path: Path | None) -> dict[str, Any]:
    """The parsed notifications file (empty for None); NotificationConfigError when it
    cannot be read or is not TOML."""
    if path is None:
        return {}
    try:
        return tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise NotificationConfigError(f"cannot read {path}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Rule:
    """A playbook trigger: which changes (every given condition must hold) go where."""

    name: str
    to: tuple[str, ...]
    reasons: tuple[str, ...] = ()
    signals: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    bands: tuple[str, ...] = ()
    forecasts: tuple[str, ...] = ()
    lifecycles: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()
    workspaces: tuple[str, ...] = ()
    min_arr: float | None = None
    max_score: int | None = None
    final: bool = False

    def matches(self, change: HealthChangeRecord) -> bool:
        current = change.current
        started = change.signals_started
        if self.reasons and not set(self.reasons) & set(change.reasons):
            return False
        if self.signals and not any(
            fnmatch.fnmatchcase(s.type, pattern) for s in started for pattern in self.signals
        ):
            return False
        if self.severities and not any(s.severity in self.severities for s in started):
            return False
        checks = (
            (self.bands, current.band),
            (self.forecasts, current.forecast),
            (self.lifecycles, current.lifecycle),
            (self.segments, change.segment),
            (self.owners, change.owner),
            (self.workspaces, change.workspace),
        )
        if any(allowed and value not in allowed for allowed, value in checks):
            return False
        if self.min_arr is not None and (change.arr or 0.0) < self.min_arr:
            return False
        return not (self.max_score is not None and current.score > self.max_score)


def _playbook(name: str, **conditions: list[str] | tuple[str, ...]) -> Rule:
    fields: dict[str, Any] = {k: tuple(v) for k, v in conditions.items()}
    return Rule(name=name, to=("slack:default",), **fields)


def _by_tag(tag: str, name: str) -> Rule:
    """The playbook of a routing tag: the signal types that carry it (scoring.signals)."""
    return _playbook(name, signals=routing_patterns(tag))


#: Routing tags the default playbooks route signals by; a signal unit's types carry them.
SIGNAL_PLAYBOOKS: Mapping[str, str] = {
    "user_inactive": "User inactive 10 or 14 days",
    "champion_quiet": "Power user gone quiet",
    "onboarding": "Onboarding milestone missed",
    "detractor": "NPS detractor",
    "support": "Support tickets piling up",
    "billing": "Payment or plan risk",
    "usage_falling": "Usage falling",
    "meetings": "Meetings missed",
    "renewal_checkpoint": "Renewal checkpoint",
    "account_lost": "Account lost",
    "upsell": "Upsell signal",
}

DEFAULT_PLAYBOOKS: tuple[Rule, ...] = (
    # The playbook triggers of the product design, matched on the type of the signal that
    # just started (the types that carry each tag, as the scoring core declares them).
    *(_by_tag(tag, SIGNAL_PLAYBOOKS[tag]) for tag in (
        "user_inactive", "champion_quiet", "onboarding", "detractor", "support", "billing",
        "usage_falling", "meetings", "renewal_checkpoint")),
    _playbook("Health fell below 70", reasons=["band_changed"], bands=["watch", "at_risk"]),
    _playbook("Renewal forecast at risk", reasons=["forecast_changed"], forecasts=["at_risk"]),
    _by_tag("account_lost", SIGNAL_PLAYBOOKS["account_lost"]),
    _playbook("Account churned", reasons=["lifecycle_changed"], lifecycles=["churned"]),
    _by_tag("upsell", SIGNAL_PLAYBOOKS["upsell"]),
)

_LIST_FIELDS = ("reasons", "signals", "severities", "bands", "forecasts", "lifecycles",
                "segments", "owners", "workspaces")

#: The closed vocabularies a rule's conditions name, as the scoring core emits them: a
#: rule naming anything else could never match, so it is refused at load.
_VOCABULARIES: dict[str, tuple[str, ...]] = {
    "reasons": tuple(ChangeReason), "severities": tuple(SignalSeverity),
    "bands": tuple(Band), "forecasts": tuple(ForecastStage),
    "lifecycles": tuple(Lifecycle), "segments": SEGMENTS,
}


def rule_problems(rule: Rule, known_signals: Sequence[str]) -> list[str]:
    """What in ``rule`` names something the scoring core never emits: a reason, severity,
    band, stage or segment outside its enum, or a signal pattern that matches none of
    ``known_signals`` (``scoring.signals.signal_types`` of the scoring config in force)."""
    problems = []
    for name, known in _VOCABULARIES.items():
        unknown = [v for v in getattr(rule, name) if v not in known]
        if unknown:
            problems.append(f"rule {rule.name!r}: unknown {name} {unknown} "
                            f"(known: {', '.join(known)})")
    patterns = [p for p in rule.signals
                if not any(fnmatch.fnmatchcase(t, p) for t in known_signals)]
    if patterns:
        problems.append(f"rule {rule.name!r}: signals {patterns} match no signal the "
                        f"scoring config emits (known: {', '.join(known_signals)})")
    return problems


@cache
def default_signal_types() -> tuple[str, ...]:
    """The signal types of the default scoring config."""
    return signal_types(load_config(None))


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    name: str
    url: str
    secret: str
    every_change: bool = True
    # The HMAC key of standard_webhooks_secret; kept out of reprs and logs.
    standard_key: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class HubSpotTarget:
    access_token: str
    host: str | None = None
    every_change: bool = True


@dataclass(frozen=True, slots=True)
class SalesforceTarget:
    instance_url: str
    session_id: str  # empty with OAuth
    version: str = "59.0"
    every_change: bool = True
    oauth: SalesforceOAuth | None = None


@dataclass(frozen=True, slots=True)
class NotificationConfig:
    slack_channels: Mapping[str, str] = field(default_factory=dict)
    webhooks: Mapping[str, WebhookTarget] = field(default_factory=dict)
    hubspot: HubSpotTarget | None = None
    salesforce: SalesforceTarget | None = None
    rules: tuple[Rule, ...] = DEFAULT_PLAYBOOKS
    cooldown_seconds: float = 24 * 3600.0
    max_attempts: int = 8
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 300.0
    queue_size: int = 10_000
    digest_channel: str | None = "default"
    digest_hour: int = 8
    digest_hours: Mapping[str, int] = field(default_factory=dict)

    def destinations(self) -> list[str]:
        names = [f"slack:{c}" for c in self.slack_channels]
        names += [f"webhook:{w}" for w in self.webhooks]
        names += [n for n, t in (("hubspot", self.hubspot), ("salesforce", self.salesforce))
                  if t is not None]
        return names

    def route(self, change: HealthChangeRecord) -> dict[str, list[str]]:
        """Destination → names of the rules that sent the change there (in rule order);
        destinations taking every change are listed under ``"every change"``. Slack
        gets only changes whose ``alert`` is not false."""
        routed: dict[str, list[str]] = {}
        # A change that is not an alert (a minor signal resolved, a reason ending) is
        # for systems only: people in Slack are not told.
        people = change.alert
        for rule in self.rules:
            if not rule.matches(change):
                continue
            for dest in rule.to:
                if people or not dest.startswith("slack:"):
                    routed.setdefault(dest, []).append(rule.name)
            if rule.final:
                break
        always = [f"webhook:{w.name}" for w in self.webhooks.values() if w.every_change]
        always += [n for n, t in (("hubspot", self.hubspot), ("salesforce", self.salesforce))
                   if t is not None and t.every_change]
        for dest in always:
            routed.setdefault(dest, []).append("every change")
        known = set(self.destinations())
        return {d: r for d, r in routed.items() if d in known}

    def digest_hour_for(self, workspace: str) -> int:
        return self.digest_hours.get(workspace, self.digest_hour)

    @classmethod
    def load(cls, path: Path | None, slack_webhook_url: str | None = None, *,
             known_signals: Sequence[str] | None = None) -> NotificationConfig:
        """Read a notifications file (None → defaults). The ``default`` Slack channel is
        ``slack_webhook_url`` unless the file names its own. Rules are checked against
        ``known_signals`` (default: those of the default scoring config)."""
        return cls.from_dict(read_notifications_file(path), slack_webhook_url,
                             known_signals=known_signals)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], slack_webhook_url: str | None = None, *,
                  known_signals: Sequence[str] | None = None) -> NotificationConfig:
        problems: list[str] = []
        channels: dict[str, str] = {}
        if slack_webhook_url:
            channels["default"] = slack_webhook_url
        for name, spec in (raw.get("slack", {}).get("channels", {}) or {}).items():
            url = spec.get("webhook_url") if isinstance(spec, Mapping) else None
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                problems.append(f"slack.channels.{name}.webhook_url must be an http(s) URL")
            else:
                channels[name] = url
        webhooks: dict[str, WebhookTarget] = {}
        for i, spec in enumerate(raw.get("webhooks", []) or []):
            try:
                target = WebhookTarget(name=str(spec["name"]), url=str(spec["url"]),
                                       secret=str(spec["secret"]),
                                       every_change=bool(spec.get("every_change", True)))
            except (KeyError, TypeError):
                problems.append(f"webhooks[{i}] needs name, url and secret")
                continue
            if not target.url.startswith(("http://", "https://")):
                problems.append(f"webhooks[{i}].url must be an http(s) URL")
            if "standard_webhooks_secret" in spec:
                try:
                    target = replace(target, standard_key=parse_secret(
                        str(spec["standard_webhooks_secret"])))
                except ValueError as exc:
                    problems.append(f"webhooks[{i}].standard_webhooks_secret {exc}")
            webhooks[target.name] = target
        hubspot = salesforce = None
        if "hubspot" in raw:
            spec = raw["hubspot"]
            if not spec.get("access_token"):
                problems.append("hubspot.access_token is required")
            else:
                hubspot = HubSpotTarget(str(spec["access_token"]), spec.get("host"),
                                        bool(spec.get("every_change", True)))
        if "salesforce" in raw:
            spec = raw["salesforce"]
            oauth, oauth_problems = oauth_from_spec(spec)
            problems += oauth_problems
            if not spec.get("instance_url") or not (spec.get("session_id") or oauth):
                problems.append("salesforce needs instance_url, and session_id or OAuth "
                                "(token_url, client_id and a secret or key)")
            else:
                salesforce = SalesforceTarget(str(spec["instance_url"]),
                                              str(spec.get("session_id") or ""),
                                              str(spec.get("version", "59.0")),
                                              bool(spec.get("every_change", True)), oauth)
        rules: list[Rule] = []
        for i, spec in enumerate(raw.get("rules", []) or []):
            try:
                rules.append(_rule(spec))
            except (KeyError, TypeError, ValueError) as exc:
                problems.append(f"rules[{i}]: {exc}")
        delivery = raw.get("delivery", {}) or {}
        digest = raw.get("digest", {}) or {}
        config = cls(
            slack_channels=channels, webhooks=webhooks, hubspot=hubspot, salesforce=salesforce,
            rules=tuple(rules) if "rules" in raw else DEFAULT_PLAYBOOKS,
            cooldown_seconds=float(delivery.get("cooldown_hours", 24)) * 3600.0,
            max_attempts=int(delivery.get("max_attempts", 8)),
            backoff_seconds=float(delivery.get("backoff_seconds", 1.0)),
            max_backoff_seconds=float(delivery.get("max_backoff_seconds", 300.0)),
            queue_size=int(delivery.get("queue_size", 10_000)),
            digest_channel=digest.get("channel", "default"),
            digest_hour=int(digest.get("hour", 8)),
            digest_hours={str(k): int(v) for k, v in (digest.get("workspaces") or {}).items()},
        )
        known = set(config.destinations())
        signals = default_signal_types() if known_signals is None else tuple(known_signals)
        for rule in config.rules:
            problems += rule_problems(rule, signals)
            for dest in rule.to:
                # The default channel may legitimately be absent (no Slack configured).
                if dest not in known and not (dest == "slack:default" and "rules" not in raw):
                    problems.append(f"rule {rule.name!r} sends to unknown destination {dest!r}")
        if config.max_attempts < 1:
            problems.append("delivery.max_attempts must be at least 1")
        if config.queue_size < 1:
            problems.append("delivery.queue_size must be at least 1")
        hours = [config.digest_hour, *config.digest_hours.values()]
        if any(not 0 <= h <= 23 for h in hours):
            problems.append("digest hours must be between 0 and 23")
        if problems:
            raise NotificationConfigError("invalid notifications config:\n  "
                                          + "\n  ".join(problems))
        return config


def _rule(spec: Mapping[str, Any]) -> Rule:
    unknown = set(spec) - {"name", "to", "final", "min_arr", "max_score", *_LIST_FIELDS}
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}")
    to = spec["to"]
    if isinstance(to, str):
        to = [to]
    lists: dict[str, tuple[str, ...]] = {}
    for name in _LIST_FIELDS:
        value = spec.get(name, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, Sequence):
            raise ValueError(f"{name} must be a list of strings")
        lists[name] = tuple(str(v) for v in value)
    return Rule(
        name=str(spec.get("name", "unnamed rule")), to=tuple(str(t) for t in to),
        min_arr=None if spec.get("min_arr") is None else float(spec["min_arr"]),
        max_score=None if spec.get("max_score") is None else int(spec["max_score"]),
        final=bool(spec.get("final", False)), **lists,
    )

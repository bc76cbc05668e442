"""Telltale's one settings object.

Every field has a type, a default and a one-line description. The same settings come from
environment variables named ``TELLTALE_<FIELD>`` (upper case); ``Settings.from_env()``
reads and validates them at start-up and fails with every problem listed at once.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from streams.sources.config import SourcesConfigError, load_sources
from streams.topics import TopicNames

ENV_PREFIX = "TELLTALE_"


class SettingsError(ValueError):
    """Raised when configuration is invalid; the message lists every problem."""


def _setting(default: Any, description: str) -> Any:
    return field(default=default, metadata={"description": description})


@dataclass(frozen=True, slots=True)
class Settings:
    broker: str = _setting("kafka://127.0.0.1:9092", "Kafka bootstrap servers, kafka://host:port[,...]")
    redis_url: str = _setting("redis://127.0.0.1:6379/0", "Redis URL of the read model")
    topic_prefix: str = _setting("telltale", "Prefix shared by every Kafka topic name")
    partitions: int = _setting(8, "Partitions of the events, by-account and health-change topics")
    replication_factor: int = _setting(1, "Replication factor of topics Telltale creates")
    app_id: str = _setting("telltale", "Faust application id (consumer group and changelog prefix)")
    data_dir: Path = _setting(Path("var/data"), "Local directory for RocksDB state")
    web_host: str = _setting("127.0.0.1", "Address the HTTP server binds to")
    web_port: int = _setting(6066, "Port of the HTTP server (collector, API, page, /metrics)")
    public_url: str = _setting("http://127.0.0.1:6066", "Base URL people use to reach the page")
    log_level: str = _setting("info", "Log level: debug, info, warning, error")
    scoring_config: Path | None = _setting(None, "Scoring config file; None uses the default")
    write_keys: str = _setting(
        "demo-write-key=demo", "Collector write keys: key=workspace pairs, comma-separated"
    )
    api_tokens: str = _setting(
        "demo-api-token=demo", "API bearer tokens: token=workspace pairs, comma-separated"
    )
    replay: bool = _setting(False, "Take time only from events (deterministic backfill)")
    tick_interval: float = _setting(60.0, "Seconds between clock ticks sent to each partition")
    rocksdb_block_cache_mb: int = _setting(64, "RocksDB block cache per partition DB, MiB")
    rocksdb_write_buffer_mb: int = _setting(16, "RocksDB write buffer per partition DB, MiB")
    standby_replicas: int = _setting(1, "Faust standby replicas of each table partition")
    dedup_ttl_seconds: int = _setting(172_800, "How long collector message ids are remembered")
    collector_linger_ms: float = _setting(
        10.0, "How long the collector gathers requests' events into one Kafka message per "
        "partition before sending (adds at most this to a request's answer)")
    resolve_hold_seconds: float = _setting(
        3600.0, "How long events of a user with no known account wait for a group call")
    # At most the score stage's recent message ids per user (256), so that a release
    # repeated after a crash is recognised there (docs/guarantees.md).
    resolve_hold_max_events: int = _setting(
        250, "Most events held per user with no known account (older ones dead-lettered)")
    resolve_link_seconds: float = _setting(
        2_592_000.0, "How long an anonymous id stays linked to the user an identify or alias "
        "call named (renewed by the id's events)")
    metrics_interval: float = _setting(
        15.0, "Seconds between samples of consumer lag, table sizes, recovery and portfolio"
    )
    slack_webhook_url: str | None = _setting(None, "Default Slack incoming-webhook URL")
    notifications_config: Path | None = _setting(
        None, "Notifications TOML (Slack channels, webhooks, CRM, routing rules, digest)"
    )
    # Billing and support sources. The file holds webhook secrets: keep it readable by
    # Telltale only; its path is all that is in the environment.
    sources_config: Path | None = _setting(
        None, "Sources TOML: per workspace, each billing, support or destination source's "
        "secret and customer-to-account mapping (docs/sources.md)")

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.topic_prefix)

    @property
    def kafka_bootstrap(self) -> str:
        """The broker list without the ``kafka://`` scheme, as aiokafka wants it."""
        return ",".join(part.removeprefix("kafka://") for part in self.broker.split(","))

    @staticmethod
    def parse_pairs(raw: str) -> dict[str, str]:
        """``"k1=v1,k2=v2"`` → ``{"k1": "v1", "k2": "v2"}`` (blank entries ignored)."""
        pairs: dict[str, str] = {}
        for item in raw.split(","):
            item = item.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            if not sep or not key or not value:
                raise SettingsError(f"expected key=value, got {item!r}")
            pairs[key.strip()] = value.strip()
        return pairs

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def describe(cls) -> list[tuple[str, str, Any, str]]:
        """(env var, type, default, description) for every field, for docs and `--help`."""
        hints = get_type_hints(cls)
        return [
            (ENV_PREFIX + f.name.upper(), _type_name(hints[f.name]), f.default,
             f.metadata["description"])
            for f in fields(cls)
        ]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        environ = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        problems: list[str] = []
        for f in fields(cls):
            name = ENV_PREFIX + f.name.upper()
            if name in environ:
                try:
                    values[f.name] = _convert(environ[name], hints[f.name])
                except ValueError as exc:
                    problems.append(f"{name}: {exc}")
        values.update(overrides)
        if problems:
            raise SettingsError("invalid settings:\n  " + "\n  ".join(problems))
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        problems: list[str] = []
        if self.partitions < 1:
            problems.append("partitions must be at least 1")
        if not 0 < self.web_port < 65536:
            problems.append("web_port must be between 1 and 65535")
        if self.log_level.lower() not in {"debug", "info", "warning", "error", "critical"}:
            problems.append(f"log_level {self.log_level!r} is not a log level")
        if self.tick_interval <= 0:
            problems.append("tick_interval must be positive")
        if self.metrics_interval <= 0:
            problems.append("metrics_interval must be positive")
        if self.resolve_link_seconds <= 0:
            problems.append("resolve_link_seconds must be positive")
        if not 0 <= self.collector_linger_ms <= 1000:
            problems.append("collector_linger_ms must be between 0 and 1000")
        for name in ("write_keys", "api_tokens"):
            try:
                self.parse_pairs(getattr(self, name))
            except SettingsError as exc:
                problems.append(f"{name}: {exc}")
        if self.scoring_config is not None and not Path(self.scoring_config).is_file():
            problems.append(f"scoring_config {self.scoring_config} does not exist")
        if self.sources_config is not None:
            try:
                load_sources(self.sources_config)
            except SourcesConfigError as exc:
                problems.append(f"sources_config: {exc}")
        if problems:
            raise SettingsError("invalid settings:\n  " + "\n  ".join(problems))


def _type_name(tp: Any) -> str:
    args = getattr(tp, "__args__", ())
    if args:  # a union such as ``Path | None``
        return " | ".join(_type_name(arg) for arg in args)
    return "None" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _convert(raw: str, tp: Any) -> Any:
    args = getattr(tp, "__args__", ())
    if type(None) in args:  # Optional[X]
        if raw.strip().lower() in {"", "none", "null"}:
            return None
        tp = next(a for a in args if a is not type(None))
    if tp is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"expected a boolean, got {raw!r}")
    if tp is int:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
    if tp is float:
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r}") from None
    if tp is Path:
        return Path(raw)
    return raw

"""Telltale's one settings object.

Every field has a type, a default and a one-line description. The same settings come from
environment variables named ``TELLTALE_<FIELD>`` (upper case); ``Settings.from_env()``
reads and validates them at start-up and fails with every problem listed at once.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit, urlunsplit

from streams.kafka_security import KafkaSecurity
from streams.sources_config import SourcesConfigError, load_sources
from streams.topics import TopicNames

ENV_PREFIX = "TELLTALE_"


class SettingsError(ValueError):
    """Raised when configuration is invalid; the message lists every problem."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = problems if problems is not None else [message]


def _setting(default: Any, description: str, *, secret: bool = False) -> Any:
    """A field with its one-line ``description``; ``secret`` marks a value that every
    printer masks (see :func:`Settings.shown`)."""
    return field(default=default, repr=not secret,
                 metadata={"description": description, "secret": secret})


#: The demo's credentials: they work only on a worker that listens on loopback.
DEMO_WRITE_KEY = "demo-write-key"
DEMO_API_TOKEN = "demo-api-token"
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_MASK = "***"


@dataclass(frozen=True, slots=True)
class Settings:
    broker: str = _setting("kafka://127.0.0.1:9092", "Kafka bootstrap servers, kafka://host:port[,...]")
    # Secret only in its password part: the rest of the URL is worth seeing when it is wrong.
    redis_url: str = _setting("redis://127.0.0.1:6379/0", "Redis URL of the read model",
                              secret=True)
    topic_prefix: str = _setting("telltale", "Prefix shared by every Kafka topic name")
    partitions: int = _setting(8, "Partitions of the events, by-account and health-change topics")
    replication_factor: int = _setting(1, "Replication factor of topics Telltale creates")
    app_id: str = _setting("telltale", "Faust application id (consumer group and changelog prefix)")
    data_dir: Path = _setting(Path("var/data"), "Local directory for RocksDB state")
    web_host: str = _setting("127.0.0.1", "Address the HTTP server binds to")
    web_port: int = _setting(6066, "Port of the HTTP server (collector, API, page)")
    public_url: str = _setting("http://127.0.0.1:6066", "Base URL people use to reach the page")
    log_level: str = _setting("info", "Log level: debug, info, warning, error")
    scoring_config: Path | None = _setting(None, "Scoring config file; None uses the default")
    write_keys: str = _setting(
        f"{DEMO_WRITE_KEY}=demo", "Collector write keys: key=workspace pairs, comma-separated",
        secret=True)
    api_tokens: str = _setting(
        f"{DEMO_API_TOKEN}=demo", "API bearer tokens: token=workspace or "
        "token=workspace:person@example.com (the person signed in), comma-separated",
        secret=True)
    replay: bool = _setting(False, "Take time only from events (deterministic backfill)")
    tick_interval: float = _setting(60.0, "Seconds between clock ticks sent to each partition")
    rocksdb_block_cache_mb: int = _setting(64, "RocksDB block cache per partition DB, MiB")
    rocksdb_write_buffer_mb: int = _setting(16, "RocksDB write buffer per partition DB, MiB")
    standby_replicas: int = _setting(1, "Faust standby replicas of each table partition")
    restore_bulk_records: int = _setting(
        1000, "Changelog records a table partition must lack for a worker to restore it in "
        "bulk before Faust's record-by-record recovery (0: never)")
    kafka_session_timeout_seconds: float = _setting(
        6.0, "How long the group coordinator waits for a silent worker (one killed, or cut "
        "off) before moving its partitions; the broker accepts 6 to 1800 by default")
    kafka_heartbeat_interval_seconds: float = _setting(
        1.0, "Seconds between a worker's heartbeats; also how late a live worker may "
        "learn of a rebalance (at most a third of kafka_session_timeout_seconds)")
    kafka_rebalance_timeout_seconds: float = _setting(
        20.0, "How long a rebalance waits for every live worker to rejoin the group")
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
    slack_webhook_url: str | None = _setting(None, "Default Slack incoming-webhook URL",
                                             secret=True)
    notifications_config: Path | None = _setting(
        None, "Notifications TOML (Slack channels, webhooks, CRM, routing rules, digest)"
    )
    collector_max_messages: int = _setting(
        2500, "Most messages in one collector batch; a larger batch is refused with 413")
    dlq_payload_max_bytes: int = _setting(
        4096, "Bytes of a rejected message kept in its dead-letter record (a prefix)")
    dlq_request_max_bytes: int = _setting(
        262_144, "Bytes of rejected messages kept in the dead letters of one collector "
        "request (later ones keep only reason, sizes and message id)")
    dedup_pending_seconds: int = _setting(
        60, "How long a message id stays pending while its request is produced; a retry "
        "meanwhile gets 503 (longer than Kafka's 30 s acknowledgement wait)")
    redis_timeout_seconds: float = _setting(
        2.0, "Connect and reply timeout of Telltale's Redis clients, seconds")
    # Safe by default: only Prometheus (on this host, or on a private network) reads the
    # portfolio figures; the public port serves no /metrics at all.
    metrics_host: str = _setting(
        "127.0.0.1", "Address the /metrics server binds to (keep it off public networks)")
    metrics_port: int = _setting(9466, "Port of the /metrics server for Prometheus")
    replay_tick_max_ahead_seconds: float = _setting(
        604_800.0, "Replay mode: how far past the newest event time a tick may move a "
        "partition's clock (later ones are clamped and dead-lettered)")
    # Kafka refuses messages over 1 MiB by default: a changelog record past that fails
    # inside the agent and stalls a partition every workspace shares.
    state_record_max_bytes: int = _setting(
        512 * 1024, "Largest state record written (account record, held events), bytes")
    # Kafka TLS and SASL, for every client Telltale creates (streams/kafka_security.py).
    kafka_security_protocol: str = _setting(
        "PLAINTEXT", "How Kafka clients connect: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    kafka_sasl_mechanism: str = _setting(
        "PLAIN", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
    kafka_sasl_username: str | None = _setting(None, "SASL user name (or API key)")
    kafka_sasl_password: str | None = _setting(
        None, "SASL password (or API secret); never printed", secret=True)
    kafka_ssl_cafile: Path | None = _setting(
        None, "PEM file of the CAs that sign the brokers' certificates; None trusts the "
        "system's CAs")
    kafka_ssl_certfile: Path | None = _setting(
        None, "PEM client certificate, for brokers that authenticate clients by TLS")
    kafka_ssl_keyfile: Path | None = _setting(
        None, "PEM private key of kafka_ssl_certfile (when not inside that file)")
    kafka_ssl_check_hostname: bool = _setting(
        True, "Check that the broker's certificate names the host connected to")
    worklist_per_owner: int = _setting(
        5, "Accounts on each owner's worklist (most urgent first), 1 to 100")
    # Billing and support sources. The file holds webhook secrets: keep it readable by
    # Telltale only; its path is all that is in the environment.
    sources_config: Path | None = _setting(
        None, "Sources TOML: per workspace, each billing, support or destination source's "
        "secret and customer-to-account mapping (docs/sources.md)")
    # Each workspace's own scoring, notifications, CRM, digest channel and time zone
    # (agents/workspaces.py); checked whole at start-up, changes applied while running.
    workspaces_dir: Path | None = _setting(
        None, "Directory of per-workspace TOML files, <workspace>.toml (scoring, "
        "notifications, CRM, digest channel, time zone); None: every workspace shares "
        "the files above")
    workspaces_poll_seconds: float = _setting(
        10.0, "Seconds between checks of workspaces_dir for changed files (applied "
        "without a restart)")

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.topic_prefix)

    @property
    def kafka_security(self) -> KafkaSecurity:
        """TLS and SASL options of every Kafka client, from the ``kafka_*`` settings."""
        return KafkaSecurity(
            protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=self.kafka_sasl_password,
            ssl_cafile=self.kafka_ssl_cafile,
            ssl_certfile=self.kafka_ssl_certfile,
            ssl_keyfile=self.kafka_ssl_keyfile,
            ssl_check_hostname=self.kafka_ssl_check_hostname,
        )

    def with_kafka(self, bootstrap: str, security: KafkaSecurity) -> Settings:
        """These settings pointed at ``bootstrap`` (``host:port,...``), connecting with
        ``security``."""
        return self.replace(
            broker=",".join(f"kafka://{server}" for server in bootstrap.split(",")),
            kafka_security_protocol=security.protocol,
            kafka_sasl_mechanism=security.sasl_mechanism,
            kafka_sasl_username=security.sasl_username,
            kafka_sasl_password=security.sasl_password,
            kafka_ssl_cafile=security.ssl_cafile,
            kafka_ssl_certfile=security.ssl_certfile,
            kafka_ssl_keyfile=security.ssl_keyfile,
            kafka_ssl_check_hostname=security.ssl_check_hostname,
        )

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

    def api_identities(self) -> dict[str, ApiIdentity]:
        """Each API token's workspace and person (see :func:`parse_api_tokens`)."""
        return parse_api_tokens(self.api_tokens)

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

    def effective_values(self) -> list[tuple[str, str]]:
        """(env var, value) for every field, as it may be printed (secrets masked)."""
        return [(ENV_PREFIX + f.name.upper(), self.shown(f.name)) for f in fields(self)]

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
            raise SettingsError("invalid settings:\n  " + "\n  ".join(problems), problems)
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
        if not 0 < self.kafka_heartbeat_interval_seconds * 3 <= \
                self.kafka_session_timeout_seconds:
            problems.append("kafka_heartbeat_interval_seconds must be positive and at most "
                            "a third of kafka_session_timeout_seconds")
        if self.restore_bulk_records < 0:
            problems.append("restore_bulk_records must be 0 (never) or more")
        if self.kafka_rebalance_timeout_seconds <= 0:
            problems.append("kafka_rebalance_timeout_seconds must be positive")
        if self.resolve_link_seconds <= 0:
            problems.append("resolve_link_seconds must be positive")
        if not 0 <= self.collector_linger_ms <= 1000:
            problems.append("collector_linger_ms must be between 0 and 1000")
        if self.collector_max_messages < 1:
            problems.append("collector_max_messages must be at least 1")
        if self.dlq_payload_max_bytes < 0 or self.dlq_request_max_bytes < 0:
            problems.append("dlq_payload_max_bytes and dlq_request_max_bytes must not be "
                            "negative")
        if not 0 < self.dedup_pending_seconds < self.dedup_ttl_seconds:
            problems.append("dedup_pending_seconds must be positive and below "
                            "dedup_ttl_seconds")
        if not 0 < self.redis_timeout_seconds <= 60:
            problems.append("redis_timeout_seconds must be between 0 and 60")
        for name in ("write_keys", "api_tokens"):
            try:
                self.parse_pairs(getattr(self, name))
            except SettingsError as exc:
                problems.append(f"{name}: {exc}")
        try:
            workspaces = set(self.parse_pairs(self.write_keys).values())
            workspaces |= {i.workspace for i in parse_api_tokens(self.api_tokens).values()}
        except SettingsError as exc:
            problems.append(f"api_tokens: {exc}")
            workspaces = set()
        problems.extend(f"workspace {ws!r} must be 1-64 letters, digits, '.', '_' or '-', "
                        "starting with a letter or digit" for ws in sorted(workspaces)
                        if not WORKSPACE_NAME.fullmatch(ws))
        if not 1 <= self.worklist_per_owner <= 100:
            problems.append("worklist_per_owner must be between 1 and 100")
        if self.scoring_config is not None and not Path(self.scoring_config).is_file():
            problems.append(f"scoring_config {self.scoring_config} does not exist")
        if self.workspaces_dir is not None and not Path(self.workspaces_dir).is_dir():
            problems.append(f"workspaces_dir {self.workspaces_dir} is not a directory")
        if not 0 < self.workspaces_poll_seconds <= 3600:
            problems.append("workspaces_poll_seconds must be between 0 and 3600")
        problems.extend(self._credential_problems())
        if not 0 < self.metrics_port < 65536:
            problems.append("metrics_port must be between 1 and 65535")
        if self.metrics_port == self.web_port:
            problems.append("metrics_port must differ from web_port")
        if self.replay_tick_max_ahead_seconds <= 0:
            problems.append("replay_tick_max_ahead_seconds must be positive")
        if not 16 * 1024 <= self.state_record_max_bytes <= 900 * 1024:
            problems.append("state_record_max_bytes must be between 16384 and 921600 "
                            "(Kafka's default message limit is 1 MiB)")
        problems.extend(self.kafka_security.problems())
        if self.sources_config is not None:
            try:
                load_sources(self.sources_config)
            except SourcesConfigError as exc:
                problems.append(f"sources_config: {exc}")
        if problems:
            raise SettingsError("invalid settings:\n  " + "\n  ".join(problems), problems)

    def _credential_problems(self) -> list[str]:
        """Write keys and API tokens that would let anyone in: the demo's, or none.

        Allowed on a loopback ``web_host`` (the demo, the tests, a developer's machine),
        where only this host can reach the worker; refused on any other address."""
        if is_loopback(self.web_host):
            return []
        problems: list[str] = []
        for name, demo in (("write_keys", DEMO_WRITE_KEY), ("api_tokens", DEMO_API_TOKEN)):
            try:
                pairs = self.parse_pairs(getattr(self, name))
            except SettingsError:
                continue  # reported above
            if not pairs:
                problems.append(f"{name} is empty: set {ENV_PREFIX}{name.upper()} before "
                                f"listening on {self.web_host}")
            elif demo in pairs:
                problems.append(f"{name} holds the demo credential {demo!r}, which works "
                                f"only on a loopback web_host (not {self.web_host})")
        return problems

    @classmethod
    def secret_fields(cls) -> frozenset[str]:
        """Names of the fields marked secret: what every printer masks."""
        return frozenset(f.name for f in fields(cls) if f.metadata.get("secret"))

    def shown(self, name: str) -> str:
        """The value of field ``name`` as it may be printed: secrets masked."""
        value = getattr(self, name)
        if value is None or name not in self.secret_fields():
            return str(value)
        return mask_secret(name, str(value))


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address) is reachable only from this machine."""
    if host.strip().lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def mask_secret(name: str, value: str) -> str:
    """``value`` with what is secret in it replaced: the keys of ``key=workspace`` pairs
    (the workspaces stay readable), a URL's password, or the whole value."""
    if not value:
        return value
    if "://" in value:
        parts = urlsplit(value)
        if parts.password is not None:
            host = parts.hostname or ""
            netloc = f"{parts.username or ''}:{_MASK}@{host}"
            if parts.port is not None:
                netloc += f":{parts.port}"
            return urlunsplit(parts._replace(netloc=netloc))
        if name.endswith("_url") and parts.scheme in {"http", "https"}:
            # A webhook URL is a credential in its path: keep only where it points.
            return f"{parts.scheme}://{parts.hostname or ''}/{_MASK}"
        return value
    if "=" in value:
        masked = []
        for item in value.split(","):
            _key, sep, workspace = item.strip().partition("=")
            masked.append(f"{_MASK}={workspace.strip()}" if sep else _MASK)
        return ",".join(masked)
    return _MASK


#: Workspace names become part of Redis keys, Kafka record keys and URLs: a strict token.
WORKSPACE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_PERSON = re.compile(r"[^@\s:,=]{1,64}@[^@\s:,=]{1,190}")


@dataclass(frozen=True, slots=True)
class ApiIdentity:
    """Who an API token signs in: a workspace and, when the token names one, a person
    (an email address: what actions record as their actor)."""

    workspace: str
    person: str | None = None


def parse_api_tokens(raw: str) -> dict[str, ApiIdentity]:
    """``"t1=ws,t2=ws:riley@vendor.example"`` → token → :class:`ApiIdentity`."""
    out: dict[str, ApiIdentity] = {}
    for token, value in Settings.parse_pairs(raw).items():
        workspace, sep, person = value.partition(":")
        if not workspace or (sep and not _PERSON.fullmatch(person)):
            raise SettingsError(f"expected token=workspace or token=workspace:person@domain, "
                                f"got a token for {value!r}")
        out[token] = ApiIdentity(workspace, person or None)
    return out


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

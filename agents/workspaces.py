"""Per-workspace configuration: one TOML file per workspace in one directory.

``<directory>/<workspace>.toml`` (``TELLTALE_WORKSPACES_DIR``) holds what a customer of a
multi-workspace install may have on its own::

    time_zone = "Europe/Paris"          # IANA name: the digest hour and "today" are local
    digest_channel = "cs-fr"            # a Slack channel of this workspace's notifications

    [scoring]                           # a scoring config (scoring/config.py); its
    version = "acme-3"                  # version travels with the workspace's changes
    ...

    [notifications]                     # the notifications file's tables (routing.py):
    [notifications.slack.channels.cs-fr]    # Slack, webhooks, HubSpot, Salesforce, rules,
    webhook_url = "https://hooks.slack.com/services/..."    # owners, cooldown, digest

A table left out is the shared one (``TELLTALE_SCORING_CONFIG``,
``TELLTALE_NOTIFICATIONS_CONFIG``); a table given replaces it whole, so a workspace that
has its own ``[notifications]`` never reaches the shared destinations. A workspace with
no file uses the shared configuration throughout.

:func:`load_workspaces` reads every file and checks all of them before anything starts,
raising :class:`WorkspacesConfigError` with every problem of every file (file, key, why).
Each workspace's ``revision`` is the SHA-256 of its file, so a change of one file is told
apart from the others and recorded with the revision it produced.

:class:`Workspaces` is what the agents ask (``scoring_for``, ``notifications_for``, ...).
Its :meth:`Workspaces.poll` runs on a timer in every worker: a file whose size, times or
inode changed is read and hashed; new content is validated and swapped in whole, or, if
invalid, refused while the workspace keeps the configuration it had. Each outcome is a log
line and a count in ``telltale_workspace_config_changes_total``; the revision and
scoring version each worker runs are in ``telltale_workspace_config_info``, and a refused
file shows in ``telltale_workspace_config_refused`` until it is fixed. Prometheus rather
than a record on the actions topic: every worker applies a change on its own when its
copy of the directory changes (a Kubernetes ConfigMap reaches pods a minute or so apart),
so what is worth recording is which worker runs which revision, and the actions topic is
an account-keyed log that its consumers would refuse such a record from. The durable
trace of a change is the ``config_version`` in every health change scored under it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agents import metrics
from agents.sinks.dispatch import OwnerRoutes
from agents.sinks.routing import (
    NotificationConfig,
    NotificationConfigError,
    read_notifications_file,
)
from scoring.config import ConfigError, ScoringConfig, config_from_dict, load_config
from scoring.signals import signal_types
from state.keys import KeyPartError, part
from streams.settings import WORKSPACE_NAME, Settings

log = logging.getLogger(__name__)

KNOWN_KEYS = frozenset({"time_zone", "digest_channel", "scoring", "notifications"})
#: Tables of a workspace's ``[notifications]``; ``[[rules]]`` route among its own.
NOTIFICATION_KEYS = frozenset({"slack", "webhooks", "hubspot", "salesforce", "rules",
                               "owners", "delivery", "digest"})
#: Delivery settings a workspace may set: queues and retries are the worker's, shared.
WORKSPACE_DELIVERY_KEYS = frozenset({"cooldown_hours"})
#: Largest workspace file read, bytes: the file is read whole at start-up.
MAX_FILE_BYTES = 1024 * 1024
#: Characters of a revision shown in logs and metric labels.
SHORT_REVISION = 12


class WorkspacesConfigError(ValueError):
    """The workspaces directory is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid workspaces config:\n  " + "\n  ".join(problems))


@dataclass(frozen=True, slots=True)
class SharedConfig:
    """What a workspace without its own table gets: the shared scoring and notifications
    configurations, and the owners' digest routes of the shared notifications file."""

    scoring: ScoringConfig
    notifications: NotificationConfig
    owners: OwnerRoutes

    @classmethod
    def defaults(cls) -> SharedConfig:
        """The shipped scoring config and no destinations (no shared files)."""
        return cls(load_config(None), NotificationConfig(), OwnerRoutes())


@dataclass(frozen=True, slots=True)
class WorkspaceConfig:
    """One workspace's configuration, and the revision (file SHA-256) it came from."""

    workspace: str
    scoring: ScoringConfig
    notifications: NotificationConfig
    time_zone: str
    digest_channel: str | None
    revision: str
    owners: OwnerRoutes = field(default_factory=OwnerRoutes)
    own_scoring: bool = True
    own_notifications: bool = True


def load_workspaces(directory: Path, shared: SharedConfig | None = None
                    ) -> dict[str, WorkspaceConfig]:
    """Every ``*.toml`` of ``directory`` by workspace (the file name without ``.toml``);
    tables a file leaves out come from ``shared`` (default: the built-in defaults)."""
    shared = shared or SharedConfig.defaults()
    problems: list[str] = []
    out: dict[str, WorkspaceConfig] = {}
    if not directory.is_dir():
        raise WorkspacesConfigError([f"{directory}: not a directory"])
    for path in sorted(directory.glob("*.toml")):
        config, file_problems = read_workspace_file(path, shared)
        problems += [f"{path.name}: {p}" for p in file_problems]
        if config is not None:
            out[config.workspace] = config
    if problems:
        raise WorkspacesConfigError(problems)
    return out


def read_workspace_file(path: Path, shared: SharedConfig
                        ) -> tuple[WorkspaceConfig | None, list[str]]:
    """The configuration in one workspace file, or None and every problem found."""
    workspace = path.stem
    refused = _name_problem(workspace)
    if refused is not None:
        return None, [refused]
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None, [f"larger than {MAX_FILE_BYTES:,} bytes"]
        data = path.read_bytes()
    except OSError as exc:
        return None, [f"cannot read: {exc}"]
    return parse_workspace(workspace, path.name, data, shared)


def parse_workspace(workspace: str, name: str, data: bytes, shared: SharedConfig
                    ) -> tuple[WorkspaceConfig | None, list[str]]:
    """The configuration ``data`` (the bytes of file ``name``) gives ``workspace``."""
    if len(data) > MAX_FILE_BYTES:
        return None, [f"larger than {MAX_FILE_BYTES:,} bytes"]
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return None, [f"cannot read: {exc}"]
    problems = [f"unknown key {key!r} (known: {', '.join(sorted(KNOWN_KEYS))})"
                for key in raw if key not in KNOWN_KEYS]
    scoring_config: ScoringConfig | None = shared.scoring
    if "scoring" in raw:
        try:
            scoring_config = config_from_dict(_section(raw, "scoring", problems),
                                              f"{name} [scoring]")
        except ConfigError as exc:
            problems += [f"scoring: {p}" for p in exc.problems]
            scoring_config = None
    notifications: NotificationConfig | None = shared.notifications
    owners: OwnerRoutes | None = shared.owners
    if "notifications" in raw:
        notifications, owners = _notifications(
            _section(raw, "notifications", problems), problems,
            None if scoring_config is None else signal_types(scoring_config))
    # One time zone per workspace: the digest hour and "today" here, its dates in its
    # scoring config's [locale]. Either may name it; naming two is a mistake.
    locale_zone = scoring_config.locale.time_zone if scoring_config is not None else "UTC"
    locale_table = _section(raw, "scoring", []).get("locale") if "scoring" in raw else None
    own_zone = isinstance(locale_table, Mapping) and "time_zone" in locale_table
    time_zone = raw.get("time_zone", locale_zone)
    if not isinstance(time_zone, str) or not _is_time_zone(time_zone):
        problems.append(f"time_zone {time_zone!r} is not an IANA time zone")
    elif own_zone and time_zone != locale_zone:
        problems.append(f"time_zone {time_zone!r} and [scoring.locale] time_zone "
                        f"{locale_zone!r} disagree: name the workspace's time zone once")
    elif scoring_config is not None and time_zone != locale_zone:
        scoring_config = replace(scoring_config,
                                 locale=replace(scoring_config.locale, time_zone=time_zone))
    digest_channel = raw.get("digest_channel")
    channels = notifications.slack_channels if notifications is not None else None
    if digest_channel is not None and not (
            isinstance(digest_channel, str) and (channels is None or digest_channel in channels)):
        problems.append(f"digest_channel {digest_channel!r} is not a Slack channel of "
                        "[notifications.slack.channels]")
    if problems or scoring_config is None or notifications is None or owners is None:
        return None, problems
    return WorkspaceConfig(workspace, scoring_config, notifications, str(time_zone),
                           digest_channel, hashlib.sha256(data).hexdigest(), owners,
                           own_scoring="scoring" in raw,
                           own_notifications="notifications" in raw), []


def _notifications(section: Mapping[str, Any], problems: list[str],
                   known_signals: Sequence[str] | None = None,
                   ) -> tuple[NotificationConfig | None, OwnerRoutes | None]:
    problems += [f"notifications: unknown table {key!r} (known: "
                 f"{', '.join(sorted(NOTIFICATION_KEYS))})"
                 for key in section if key not in NOTIFICATION_KEYS]
    delivery = section.get("delivery") or {}
    if isinstance(delivery, Mapping):
        problems += [f"notifications: delivery.{key} is the worker's, set in the shared "
                     "notifications file; a workspace sets only delivery.cooldown_hours"
                     for key in delivery if key not in WORKSPACE_DELIVERY_KEYS]
    try:
        notifications = NotificationConfig.from_dict(section, known_signals=known_signals)
    except (NotificationConfigError, AttributeError, TypeError, ValueError) as exc:
        lines = str(exc).splitlines()
        problems += [f"notifications: {p.strip()}" for p in (lines[1:] or lines)]
        return None, None
    try:
        owners = OwnerRoutes.from_dict(section, notifications.slack_channels)
    except (AttributeError, TypeError, ValueError) as exc:
        lines = str(exc).splitlines()
        problems += [f"notifications: {p.strip()}" for p in (lines[1:] or lines)]
        return notifications, None
    return notifications, owners


def _name_problem(workspace: str) -> str | None:
    """Why ``workspace`` (a file name) cannot name a workspace, or None."""
    try:
        part(workspace)  # the same check as every key that names a workspace
    except KeyPartError as exc:
        return f"the workspace name is refused: {exc}"
    if not WORKSPACE_NAME.fullmatch(workspace):
        return ("the workspace name is refused: 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit (as in write keys and API tokens)")
    return None


def _section(raw: Mapping[str, Any], name: str, problems: list[str]) -> Mapping[str, Any]:
    section = raw.get(name, {})
    if not isinstance(section, Mapping):
        problems.append(f"{name} must be a table")
        return {}
    return section


def _is_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def load_shared(settings: Settings) -> tuple[SharedConfig | None, list[str]]:
    """The shared scoring and notifications configurations named by ``settings``, or
    None and every problem of those files."""
    problems: list[str] = []
    scoring = notifications = owners = None
    try:
        scoring = load_config(settings.scoring_config)
    except (ConfigError, OSError) as exc:
        found = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
        problems += [f"scoring_config {settings.scoring_config or 'default'}: {p}"
                     for p in found]
    try:
        notifications = NotificationConfig.load(
            settings.notifications_config, settings.slack_webhook_url,
            known_signals=None if scoring is None else signal_types(scoring))
        owners = OwnerRoutes.from_dict(read_notifications_file(settings.notifications_config),
                                       notifications.slack_channels)
    except (NotificationConfigError, ValueError) as exc:
        lines = str(exc).splitlines()
        problems += [f"notifications_config {settings.notifications_config}: {p.strip()}"
                     for p in (lines[1:] or lines)]
    if scoring is None or notifications is None or owners is None:
        return None, problems
    return SharedConfig(scoring, notifications, owners), problems


# ------------------------------------------------------------------------- in force


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """What one poll found for one workspace file.

    ``outcome``: ``added`` (a new file), ``applied`` (new content in force), ``removed``
    (the file is gone: the shared configuration applies), ``refused`` (invalid new
    content: the configuration in force is kept; ``problems`` says why)."""

    workspace: str
    outcome: str
    revision: str | None
    previous_revision: str | None
    scoring_version: str | None
    previous_version: str | None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Signature:
    """What ``stat`` says of a file: a change of any of it means "read it again"."""

    mtime_ns: int
    ctime_ns: int
    size: int
    inode: int

    @classmethod
    def of(cls, result: os.stat_result) -> _Signature:
        return cls(result.st_mtime_ns, result.st_ctime_ns, result.st_size, result.st_ino)


class Workspaces:
    """The configuration in force for every workspace: its own file's, else the shared.

    Lookups are dictionary reads; :meth:`poll` swaps a workspace's configuration whole,
    between two lookups (everything runs on the worker's event loop), so a caller that
    takes :meth:`scoring_for` once per message scores the whole message under one
    configuration.
    """

    def __init__(self, shared: SharedConfig | None = None,
                 configs: Mapping[str, WorkspaceConfig] | None = None,
                 directory: Path | None = None) -> None:
        self.shared = shared or SharedConfig.defaults()
        self.directory = directory
        self._configs: dict[str, WorkspaceConfig] = dict(configs or {})
        self._seen: dict[str, _Signature] = {}
        self._refused: dict[str, str] = {}  # workspace → SHA-256 of the refused content
        self._directory_problem: str | None = None
        # Series of telltale_workspace_config_info this registry set, to replace them.
        self._published: dict[str, tuple[str, str, str]] = {}
        # No file signature is taken here: the first poll reads and hashes every file,
        # so a file changed between loading and now is not missed.
        for config in self._configs.values():
            self._publish(config)

    @classmethod
    def from_settings(cls, settings: Settings) -> Workspaces:
        """The shared files and every workspace file of ``settings``, all checked: raises
        :class:`WorkspacesConfigError` listing every problem of every file."""
        shared, problems = load_shared(settings)
        configs: dict[str, WorkspaceConfig] = {}
        if settings.workspaces_dir is not None:
            try:
                configs = load_workspaces(settings.workspaces_dir,
                                          shared or SharedConfig.defaults())
            except WorkspacesConfigError as exc:
                problems += [f"workspaces_dir {settings.workspaces_dir}: {p}"
                             for p in exc.problems]
        if problems or shared is None:
            raise WorkspacesConfigError(problems)
        return cls(shared, configs, settings.workspaces_dir)

    @classmethod
    def of_app(cls, app: Any, settings: Settings) -> Workspaces:
        """The worker's one registry, loaded on first use and polled every
        ``settings.workspaces_poll_seconds`` by a timer of ``app`` (every worker)."""
        found: Workspaces | None = getattr(app, _APP_ATTRIBUTE, None)
        if found is not None:
            return found
        registry = cls.from_settings(settings)
        setattr(app, _APP_ATTRIBUTE, registry)
        if registry.directory is not None:
            @app.timer(settings.workspaces_poll_seconds, name="telltale.workspaces_poll")
            async def poll_workspaces() -> None:
                try:
                    registry.poll()
                except Exception:  # a bug here must not stop the timer or the worker
                    log.exception("checking the workspaces directory failed")
        return registry

    # ------------------------------------------------------------------ lookups

    def get(self, workspace: str) -> WorkspaceConfig | None:
        """The workspace's own configuration, or None (it uses the shared one)."""
        return self._configs.get(workspace)

    def workspaces(self) -> list[str]:
        """Workspaces with a file in force, sorted."""
        return sorted(self._configs)

    def scoring_for(self, workspace: str) -> ScoringConfig:
        own = self._configs.get(workspace)
        return own.scoring if own is not None else self.shared.scoring

    def notifications_for(self, workspace: str) -> NotificationConfig:
        own = self._configs.get(workspace)
        return own.notifications if own is not None else self.shared.notifications

    # ------------------------------------------------------------------ changes

    def poll(self) -> list[ConfigChange]:
        """Look at the directory once; apply what changed validly, refuse the rest.

        Returns what happened, each outcome also logged and counted."""
        if self.directory is None:
            return []
        if not self.directory.is_dir():
            # A mount gone away is not "every file removed": keep what is in force.
            problem = f"{self.directory} is not a directory; configurations kept"
            if self._directory_problem != problem:
                log.error("workspaces: %s", problem)
                self._directory_problem = problem
            return []
        self._directory_problem = None
        files = {path.stem: path for path in self.directory.glob("*.toml")}
        changes = [change for workspace, path in sorted(files.items())
                   if (change := self._check(workspace, path)) is not None]
        for workspace in sorted(set(self._configs) - set(files)):
            old = self._configs.pop(workspace)
            changes.append(ConfigChange(workspace, "removed", None, old.revision, None,
                                        old.scoring.version))
        for workspace in set(self._seen) - set(files):
            del self._seen[workspace]
        for workspace in set(self._refused) - set(files):
            del self._refused[workspace]
            _clear_refused(workspace)
        for change in changes:
            self._record(change)
        return changes

    def _check(self, workspace: str, path: Path) -> ConfigChange | None:
        try:
            signature = _Signature.of(path.stat())
        except OSError:
            return None  # gone between the listing and now: the next poll sees it
        if self._seen.get(workspace) == signature:
            return None
        self._seen[workspace] = signature
        current = self._configs.get(workspace)
        try:
            data = path.read_bytes() if signature.size <= MAX_FILE_BYTES else b""
        except OSError as exc:
            return self._refuse(workspace, current, "", [f"cannot read: {exc}"])
        revision = hashlib.sha256(data).hexdigest()
        if current is not None and current.revision == revision:
            return None  # touched, same content
        if self._refused.get(workspace) == revision:
            return None  # refused already, reported once
        if signature.size > MAX_FILE_BYTES:
            return self._refuse(workspace, current, revision,
                                [f"larger than {MAX_FILE_BYTES:,} bytes"])
        refused = _name_problem(workspace)
        if refused is not None:
            return self._refuse(workspace, current, revision, [refused])
        config, problems = parse_workspace(workspace, path.name, data, self.shared)
        if config is None:
            return self._refuse(workspace, current, revision, problems)
        self._configs[workspace] = config
        if self._refused.pop(workspace, None) is not None:
            _clear_refused(workspace)
        return ConfigChange(workspace, "added" if current is None else "applied",
                            config.revision, current.revision if current else None,
                            config.scoring.version,
                            current.scoring.version if current else None)

    def _refuse(self, workspace: str, current: WorkspaceConfig | None, revision: str,
                problems: list[str]) -> ConfigChange:
        self._refused[workspace] = revision
        version = current.scoring.version if current else None
        return ConfigChange(workspace, "refused", revision or None,
                            current.revision if current else None, version, version,
                            tuple(f"{workspace}.toml: {p}" for p in problems))

    def _publish(self, config: WorkspaceConfig) -> None:
        labels = (config.workspace, config.scoring.version[:64], _short(config.revision))
        old = self._published.get(config.workspace)
        if old is not None and old != labels:
            metrics.WORKSPACE_CONFIG_INFO.remove(*old)
        metrics.WORKSPACE_CONFIG_INFO.labels(*labels).set(1)
        self._published[config.workspace] = labels

    def _record(self, change: ConfigChange) -> None:
        metrics.WORKSPACE_CONFIG_CHANGES.labels(workspace=change.workspace,
                                                outcome=change.outcome).inc()
        old, new = _short(change.previous_revision), _short(change.revision)
        if change.outcome == "refused":
            metrics.WORKSPACE_CONFIG_REFUSED.labels(workspace=change.workspace).set(1)
            log.error("workspace %s: new configuration %s refused, %s stays in force: %s",
                      change.workspace, new, old or "the shared configuration",
                      "; ".join(change.problems))
            return
        config = self._configs.get(change.workspace)
        if config is not None:
            self._publish(config)
        elif change.workspace in self._published:
            metrics.WORKSPACE_CONFIG_INFO.remove(*self._published.pop(change.workspace))
        log.warning("workspace %s: configuration %s (%s -> %s, scoring version %s -> %s)",
                    change.workspace, change.outcome, old or "shared", new or "shared",
                    change.previous_version or self.shared.scoring.version,
                    change.scoring_version or self.shared.scoring.version)


_APP_ATTRIBUTE = "_telltale_workspaces"


def _short(revision: str | None) -> str:
    return revision[:SHORT_REVISION] if revision else ""


def _clear_refused(workspace: str) -> None:
    with contextlib.suppress(KeyError):  # never set in this process
        metrics.WORKSPACE_CONFIG_REFUSED.remove(workspace)

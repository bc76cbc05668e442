"""Per-workspace configuration: one TOML file per workspace in one directory.

``<directory>/<workspace>.toml`` holds what a customer of a multi-workspace install may
have on its own::

    time_zone = "Europe/Paris"          # IANA name: digests and worklists go out by it
    digest_channel = "cs-fr"            # a Slack channel of this file's [notifications]

    [scoring]                           # a scoring config (scoring/config.py); its
    version = "acme-3"                  # version travels with the workspace's changes
    ...

    [notifications]                     # the notifications file's tables (routing.py):
    [notifications.slack.channels.cs-fr]    # Slack, webhooks, HubSpot, Salesforce, rules
    webhook_url = "https://hooks.slack.com/services/..."

:func:`load_workspaces` reads every file and checks all of them before anything starts,
raising :class:`WorkspacesConfigError` with every problem of every file. Each
workspace's ``revision`` is the SHA-256 of its file, so a change of one file is told
apart from the others and can be recorded with the revision it produced.

Not yet read by the agents: the worker still uses the shared scoring and notifications
files.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agents.sinks.routing import NotificationConfig, NotificationConfigError
from scoring.config import ConfigError, ScoringConfig, config_from_dict
from scoring.signals import signal_types
from state.keys import KeyPartError, part

KNOWN_KEYS = frozenset({"time_zone", "digest_channel", "scoring", "notifications"})
#: Largest workspace file read, bytes: the file is read whole at start-up.
MAX_FILE_BYTES = 1024 * 1024


class WorkspacesConfigError(ValueError):
    """The workspaces directory is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid workspaces config:\n  " + "\n  ".join(problems))


@dataclass(frozen=True, slots=True)
class WorkspaceConfig:
    """One workspace's own configuration, and the revision (file SHA-256) it came from."""

    workspace: str
    scoring: ScoringConfig
    notifications: NotificationConfig
    time_zone: str
    digest_channel: str | None
    revision: str


def load_workspaces(directory: Path) -> dict[str, WorkspaceConfig]:
    """Every ``*.toml`` of ``directory`` by workspace (the file name without ``.toml``)."""
    problems: list[str] = []
    out: dict[str, WorkspaceConfig] = {}
    if not directory.is_dir():
        raise WorkspacesConfigError([f"{directory}: not a directory"])
    for path in sorted(directory.glob("*.toml")):
        workspace = path.stem
        try:
            part(workspace)  # the same check as every key that names a workspace
        except KeyPartError as exc:
            problems.append(f"{path.name}: the workspace name is refused: {exc}")
            continue
        config, file_problems = _load_one(workspace, path)
        problems += [f"{path.name}: {p}" for p in file_problems]
        if config is not None:
            out[workspace] = config
    if problems:
        raise WorkspacesConfigError(problems)
    return out


def _load_one(workspace: str, path: Path) -> tuple[WorkspaceConfig | None, list[str]]:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None, [f"larger than {MAX_FILE_BYTES:,} bytes"]
        data = path.read_bytes()
        raw = tomllib.loads(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return None, [f"cannot read: {exc}"]
    problems = [f"unknown key {key!r} (known: {', '.join(sorted(KNOWN_KEYS))})"
                for key in raw if key not in KNOWN_KEYS]
    scoring = _section(raw, "scoring", problems)
    try:
        scoring_config = config_from_dict(scoring, f"{path.name} [scoring]")
    except ConfigError as exc:
        problems += [f"scoring: {p}" for p in exc.problems]
        scoring_config = None
    try:
        notifications = NotificationConfig.from_dict(
            _section(raw, "notifications", problems),
            known_signals=None if scoring_config is None else signal_types(scoring_config))
    except NotificationConfigError as exc:
        problems += [f"notifications: {p.strip()}" for p in str(exc).splitlines()[1:]]
        notifications = None
    time_zone = raw.get("time_zone", "UTC")
    if not isinstance(time_zone, str) or not _is_time_zone(time_zone):
        problems.append(f"time_zone {time_zone!r} is not an IANA time zone")
    digest_channel = raw.get("digest_channel")
    channels = notifications.slack_channels if notifications is not None else None
    if digest_channel is not None and not (
            isinstance(digest_channel, str) and (channels is None or digest_channel in channels)):
        problems.append(f"digest_channel {digest_channel!r} is not a Slack channel of "
                        "[notifications.slack.channels]")
    if problems or scoring_config is None or notifications is None:
        return None, problems
    return WorkspaceConfig(workspace, scoring_config, notifications, str(time_zone),
                           digest_channel, hashlib.sha256(data).hexdigest()), []


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

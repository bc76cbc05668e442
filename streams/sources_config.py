"""The sources file (``TELLTALE_SOURCES_CONFIG``): per workspace, each source's secret
and the mapping of the vendor's customer or organisation ids to Telltale accounts.

::

    [workspaces.acme.stripe]
    secret = "whsec_…"                 # the endpoint's signing secret
    tolerance_seconds = 300            # how old a signed timestamp may be
    accounts_file = "stripe-accounts.csv"   # customer id,account id (relative to this file)
    [workspaces.acme.stripe.accounts]
    cus_NffrFeUfNV2Hib = "acme"

Credentials each source takes (at least one of them is required, so no source is ever
open to anyone who learns its URL): ``secret`` (an HMAC key: Stripe, Zendesk, Intercom,
Segment), ``username`` and ``password`` (HTTP basic auth: Chargebee, Freshdesk,
RudderStack), ``token`` (a secret path segment or bearer token: Freshdesk, Segment,
RudderStack). Loading lists every problem at once.
"""

from __future__ import annotations

import csv
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

ACCOUNT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,127}")
"""An account id a source may attribute an event to (it becomes ``context.groupId``)."""

WORKSPACE = ACCOUNT_ID
"""Workspace names in the file and in webhook URLs."""

CREDENTIALS: dict[str, frozenset[str]] = {
    "stripe": frozenset({"secret"}),
    "chargebee": frozenset({"basic"}),
    "zendesk": frozenset({"secret"}),
    "intercom": frozenset({"secret"}),
    "freshdesk": frozenset({"basic", "token"}),
    "segment": frozenset({"secret", "token"}),
    "rudderstack": frozenset({"basic", "token"}),
}
"""Each source's accepted ways to prove a webhook is its own."""

READERS = frozenset({"hubspot", "salesforce"})
"""CRMs Telltale reads on a schedule rather than being called by; their tables in this file
are read and checked by ``agents/sources/crm_read.py``."""

MIN_SECRET_CHARS = 16
MAX_ACCOUNTS = 1_000_000
_KEYS = frozenset({"secret", "username", "password", "token", "tolerance_seconds",
                   "accounts", "accounts_file"})


class SourcesConfigError(ValueError):
    """The sources file is invalid; the message lists every problem."""


@dataclass(frozen=True, slots=True)
class SourceConfig:
    name: str
    secret: str | None = None
    username: str | None = None
    password: str | None = None
    token: str | None = None
    tolerance_seconds: float = 300.0
    """How far a signed timestamp may be from the receiver's clock, seconds."""
    accounts: Mapping[str, str] = field(default_factory=dict)
    """Vendor customer / organisation id → Telltale account id."""

    def __repr__(self) -> str:  # never print a secret in a log or a traceback
        return f"SourceConfig({self.name!r}, accounts={len(self.accounts)})"


@dataclass(frozen=True, slots=True)
class SourcesConfig:
    workspaces: Mapping[str, Mapping[str, SourceConfig]] = field(default_factory=dict)

    def source(self, workspace: str, name: str) -> SourceConfig | None:
        return self.workspaces.get(workspace, {}).get(name)


def read_sources_file(path: str | Path) -> dict[str, Any]:
    """The sources file's TOML; :class:`SourcesConfigError` when it cannot be read."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SourcesConfigError(f"sources file {path}: {exc}") from None


def load_sources(path: str | Path | None) -> SourcesConfig:
    """Read and validate the sources file; no path means no sources."""
    if path is None:
        return SourcesConfig()
    path = Path(path)
    raw = read_sources_file(path)
    problems: list[str] = []
    workspaces: dict[str, Mapping[str, SourceConfig]] = {}
    unknown = set(raw) - {"workspaces"}
    if unknown:
        problems.append(f"unknown top-level keys {sorted(unknown)}")
    tables = raw.get("workspaces", {})
    if not isinstance(tables, dict):
        problems.append("workspaces must be a table")
        tables = {}
    for workspace, sources in tables.items():
        if WORKSPACE.fullmatch(workspace) is None:
            problems.append(f"workspace {workspace!r} is not a valid workspace name")
            continue
        if not isinstance(sources, dict):
            problems.append(f"workspaces.{workspace} must be a table")
            continue
        parsed: dict[str, SourceConfig] = {}
        for name, table in sources.items():
            where = f"workspaces.{workspace}.{name}"
            if name in READERS:
                continue
            if name not in CREDENTIALS:
                problems.append(f"{where}: unknown source (one of "
                                f"{sorted(CREDENTIALS.keys() | READERS)})")
            elif not isinstance(table, dict):
                problems.append(f"{where} must be a table")
            else:
                source = _source(name, table, where, path.parent, problems)
                if source is not None:
                    parsed[name] = source
        workspaces[workspace] = MappingProxyType(parsed)
    if problems:
        raise SourcesConfigError("invalid sources file:\n  " + "\n  ".join(problems))
    return SourcesConfig(MappingProxyType(workspaces))


def _source(name: str, table: dict[str, Any], where: str, base: Path,
            problems: list[str]) -> SourceConfig | None:
    before = len(problems)
    unknown = set(table) - _KEYS
    if unknown:
        problems.append(f"{where}: unknown keys {sorted(unknown)}")
    secrets: dict[str, str | None] = {}
    for key in ("secret", "username", "password", "token"):
        value = table.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            problems.append(f"{where}.{key} must be a non-empty string")
            value = None
        secrets[key] = value
    for key in ("secret", "token", "password"):
        value = secrets[key]
        if value is not None and len(value) < MIN_SECRET_CHARS:
            problems.append(f"{where}.{key} must be at least {MIN_SECRET_CHARS} characters")
    if secrets["token"] is not None and not secrets["token"].isalnum():
        problems.append(f"{where}.token must be letters and digits only (it is a URL path "
                        "segment)")
    has = {"secret"} if secrets["secret"] else set()
    if secrets["token"]:
        has.add("token")
    if secrets["username"] and secrets["password"]:
        has.add("basic")
    elif secrets["username"] or secrets["password"]:
        problems.append(f"{where}: basic auth needs both username and password")
    if not has & CREDENTIALS[name]:
        problems.append(f"{where}: needs one of {_ways(CREDENTIALS[name])}")
    elif has - CREDENTIALS[name]:
        problems.append(f"{where}: {_ways(has - CREDENTIALS[name])} not used by {name}")
    tolerance = table.get("tolerance_seconds", 300.0)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) \
            or not 0 < tolerance <= 86_400:
        problems.append(f"{where}.tolerance_seconds must be a number of seconds in (0, 86400]")
        tolerance = 300.0
    accounts: dict[str, str] = {}
    inline = table.get("accounts", {})
    if not isinstance(inline, dict):
        problems.append(f"{where}.accounts must be a table")
        inline = {}
    _add_accounts(accounts, inline.items(), f"{where}.accounts", problems)
    file = table.get("accounts_file")
    if file is not None:
        if not isinstance(file, str):
            problems.append(f"{where}.accounts_file must be a path")
        else:
            _add_accounts(accounts, _read_csv(base / file, where, problems),
                          f"{where}.accounts_file", problems)
    if len(problems) > before:
        return None
    return SourceConfig(name, secrets["secret"], secrets["username"], secrets["password"],
                        secrets["token"], float(tolerance), MappingProxyType(accounts))


def _ways(ways: frozenset[str] | set[str]) -> str:
    names = {"secret": "secret", "token": "token", "basic": "username and password"}
    return ", ".join(names[w] for w in sorted(ways))


def _read_csv(path: Path, where: str, problems: list[str]) -> list[tuple[Any, Any]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle) if row and not row[0].startswith("#")]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        problems.append(f"{where}.accounts_file: {exc}")
        return []
    if rows and [cell.strip().lower() for cell in rows[0]][:2] == ["customer_id", "account_id"]:
        rows = rows[1:]
    pairs: list[tuple[Any, Any]] = []
    for number, row in enumerate(rows, 1):
        if len(row) != 2:
            problems.append(f"{where}.accounts_file row {number}: expected customer_id,"
                            "account_id")
            continue
        pairs.append((row[0].strip(), row[1].strip()))
    return pairs


def _add_accounts(accounts: dict[str, str], pairs: Any, where: str,
                  problems: list[str]) -> None:
    for customer, account in pairs:
        if not isinstance(customer, str) or not 0 < len(customer) <= 256:
            problems.append(f"{where}: customer id {str(customer)[:40]!r} is empty or too long")
        elif not isinstance(account, str) or ACCOUNT_ID.fullmatch(account) is None:
            problems.append(f"{where}: {str(account)[:40]!r} (for {customer[:40]!r}) is not "
                            "an account id")
        elif len(accounts) >= MAX_ACCOUNTS:
            problems.append(f"{where}: more than {MAX_ACCOUNTS} customers")
            return
        else:
            accounts[customer] = account

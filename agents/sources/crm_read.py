"""Account traits read from the CRM on a schedule: renewal date, ARR, owner and seats from
HubSpot companies or Salesforce accounts, so that a customer-success team does not have to
send them as events.

Configured per workspace in the sources file (``TELLTALE_SOURCES_CONFIG``)::

    [workspaces.acme.hubspot]
    token = "pat-eu1-…"                 # a private app token with crm.objects.companies.read
    account_property = "telltale_account_id"   # the company property naming the account
    interval_seconds = 3600
    [workspaces.acme.hubspot.traits]    # Telltale trait = HubSpot company property
    renewal_date = "renewal_date"
    arr = "annualrevenue"
    seats = "seats"
    owner_email = "hubspot_owner_id"    # an owner id is turned into the owner's e-mail

    [workspaces.acme.salesforce]
    instance_url = "https://acme.my.salesforce.com"
    token_url = "https://login.salesforce.com/services/oauth2/token"
    client_id = "3MVG9…"
    client_secret = "…"                 # or username + private_key_file (JWT bearer)
    account_field = "Telltale_Account_Id__c"
    [workspaces.acme.salesforce.traits]
    renewal_date = "Renewal_Date__c"
    arr = "AnnualRevenue"
    owner_email = "Owner.Email"

Each poll asks only for what changed since the last one (HubSpot's search sorted by
``hs_lastmodifieddate``, Salesforce's SOQL on ``SystemModstamp``); the first poll after a
start reads everything, and the collector's deduplication makes a record read again
without a change count once (:mod:`streams.sources.crm` derives the message id from its
content). Requests go only to the configured host, without redirects; a Salesforce 401
fetches a new token and tries once more. A failed poll is logged, counted and tried again
at the next interval; it never stops the worker.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import orjson
import requests

from agents import metrics
from agents.sinks import PinnedSession, refuse_foreign_host
from agents.sinks.salesforce_oauth import SalesforceOAuth, SalesforceTokens, oauth_from_spec
from agents.sources.intake import Intake, IntakeUnavailable
from streams.dlq import DeadLetter
from streams.events import Source
from streams.sources.crm import HUBSPOT, READABLE_TRAITS, SALESFORCE, TraitMap, flatten, group_call
from streams.sources_config import (
    READERS,
    WORKSPACE,
    SourcesConfigError,
    read_sources_file,
)

log = logging.getLogger(__name__)

HUBSPOT_API = "https://api.hubapi.com"
HUBSPOT_OWNER_FIELD = "hubspot_owner_id"
HUBSPOT_PAGE = 100
"""Companies per search page (HubSpot's maximum)."""
HUBSPOT_SEARCH_CAP = 10_000
"""Results one HubSpot search may page through; past it the search starts again from the
latest modification time seen."""
MAX_OWNERS = 10_000
"""HubSpot owners remembered between polls (a portal has far fewer)."""
SALESFORCE_API_VERSION = "61.0"
FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,79}(?:\.[A-Za-z][A-Za-z0-9_]{0,79})?")
"""A CRM field as the configuration may name it (it becomes part of a query)."""
NEXT_RECORDS = re.compile(r"/services/data/v[0-9]{1,3}\.[0-9]/query/[A-Za-z0-9-]{1,64}")
TIMEOUT_SECONDS = 30.0
MIN_INTERVAL, MAX_INTERVAL = 60.0, 7 * 86_400.0
LEASE_SHARE = 0.9
"""Share of the interval a poll's lease lasts: the next poll of the same worker finds it
expired."""
MAX_ANSWER_BYTES = 8 * 1024 * 1024
"""Largest CRM answer read, bytes (decompressed)."""
CHUNK = 500
"""Group calls handed to the collector per batch."""
_HUBSPOT_KEYS = frozenset({"token", "api_url", "account_property", "interval_seconds",
                           "traits"})
_SALESFORCE_KEYS = frozenset({"instance_url", "api_version", "account_field",
                              "interval_seconds", "traits", "token_url", "client_id",
                              "client_secret", "username", "private_key_file", "audience"})


class CrmReadError(Exception):
    """A poll could not read the CRM; the next interval tries again."""


class CrmReadConfigError(ValueError):
    """The CRM tables of the sources file are invalid; the message lists every problem."""


@dataclass(frozen=True, slots=True)
class HubSpotRead:
    workspace: str
    token: str = field(repr=False)
    mapping: TraitMap
    api_url: str = HUBSPOT_API
    interval: float = 3600.0
    crm: str = HUBSPOT


@dataclass(frozen=True, slots=True)
class SalesforceRead:
    workspace: str
    instance_url: str
    oauth: SalesforceOAuth
    mapping: TraitMap
    api_version: str = SALESFORCE_API_VERSION
    interval: float = 3600.0
    crm: str = SALESFORCE


Reader = HubSpotRead | SalesforceRead


# --- configuration -----------------------------------------------------------------------

def load_readers(path: str | Path | None) -> list[Reader]:
    """The CRM readers of the sources file (none without a file), every problem at once."""
    if path is None:
        return []
    try:
        raw = read_sources_file(path)
    except SourcesConfigError as exc:
        raise CrmReadConfigError(str(exc)) from None
    readers: list[Reader] = []
    problems: list[str] = []
    workspaces = raw.get("workspaces")
    for workspace, sources in (workspaces.items() if isinstance(workspaces, dict) else ()):
        if not isinstance(sources, dict) or WORKSPACE.fullmatch(workspace) is None:
            continue  # reported by load_sources
        for name in sorted(READERS & sources.keys()):
            where = f"workspaces.{workspace}.{name}"
            table = sources[name]
            if not isinstance(table, dict):
                problems.append(f"{where} must be a table")
                continue
            before = len(problems)
            reader = (_hubspot(workspace, table, where, problems) if name == HUBSPOT
                      else _salesforce(workspace, table, where, problems))
            if reader is not None and len(problems) == before:
                readers.append(reader)
    if problems:
        raise CrmReadConfigError("invalid CRM readers in the sources file:\n  "
                                 + "\n  ".join(problems))
    return readers


def _hubspot(workspace: str, table: dict[str, Any], where: str, problems: list[str]
             ) -> HubSpotRead | None:
    _unknown(table, _HUBSPOT_KEYS, where, problems)
    token = table.get("token")
    if not isinstance(token, str) or len(token) < 16 or not token.isprintable():
        problems.append(f"{where}.token must be a private app token (16 characters or more)")
        token = ""
    api_url = _base_url(table.get("api_url", HUBSPOT_API), f"{where}.api_url", problems)
    account = _field(table.get("account_property"), f"{where}.account_property", problems)
    mapping = TraitMap(account, _traits(table.get("traits", {}), where, problems))
    interval = _interval(table, where, problems)
    return HubSpotRead(workspace, token, mapping, api_url, interval)


def _salesforce(workspace: str, table: dict[str, Any], where: str, problems: list[str]
                ) -> SalesforceRead | None:
    _unknown(table, _SALESFORCE_KEYS, where, problems)
    instance = _base_url(table.get("instance_url"), f"{where}.instance_url", problems)
    version = str(table.get("api_version", SALESFORCE_API_VERSION))
    if re.fullmatch(r"[0-9]{2,3}\.0", version) is None:
        problems.append(f"{where}.api_version must look like {SALESFORCE_API_VERSION!r}")
    account = _field(table.get("account_field"), f"{where}.account_field", problems)
    mapping = TraitMap(account, _traits(table.get("traits", {}), where, problems))
    interval = _interval(table, where, problems)
    oauth, oauth_problems = oauth_from_spec(table)
    problems.extend(f"{where}: {problem}" for problem in oauth_problems)
    if oauth is None:
        problems.append(f"{where}: needs OAuth (token_url, client_id, and client_secret or "
                        "username and private_key_file)")
        return None
    return SalesforceRead(workspace, instance, oauth, mapping, version, interval)


def _unknown(table: Mapping[str, Any], known: frozenset[str], where: str,
             problems: list[str]) -> None:
    unknown = set(table) - known
    if unknown:
        problems.append(f"{where}: unknown keys {sorted(unknown)}")


def _base_url(value: Any, where: str, problems: list[str]) -> str:
    """An https origin; plain http only to this machine (a local test or a proxy)."""
    parts = urlsplit(value) if isinstance(value, str) else None
    loopback = parts is not None and parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts is None or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or (parts.scheme != "https" and not
                               (parts.scheme == "http" and loopback)):
        problems.append(f"{where} must be an https URL with no path")
        return ""
    return f"{parts.scheme}://{parts.netloc}"


def _field(value: Any, where: str, problems: list[str]) -> str:
    if not isinstance(value, str) or FIELD_NAME.fullmatch(value) is None:
        problems.append(f"{where} must be a field name (letters, digits and _, "
                        "one optional relationship like Owner.Email)")
        return ""
    return value


def _traits(table: Any, where: str, problems: list[str]) -> dict[str, str]:
    if not isinstance(table, dict):
        problems.append(f"{where}.traits must be a table")
        return {}
    traits: dict[str, str] = {}
    for trait, name in table.items():
        if trait not in READABLE_TRAITS:
            problems.append(f"{where}.traits.{trait}: not a trait a CRM may fill (one of "
                            f"{sorted(READABLE_TRAITS)})")
        else:
            traits[trait] = _field(name, f"{where}.traits.{trait}", problems)
    return traits


def _interval(table: Mapping[str, Any], where: str, problems: list[str]) -> float:
    value = table.get("interval_seconds", 3600)
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not MIN_INTERVAL <= value <= MAX_INTERVAL:
        problems.append(f"{where}.interval_seconds must be between {MIN_INTERVAL:.0f} and "
                        f"{MAX_INTERVAL:.0f}")
        return 3600.0
    return float(value)


# --- reading -----------------------------------------------------------------------------

@dataclass(slots=True)
class Page:
    """Records of one response (each flattened to field → value, with its ``Id``) and how
    to ask for the next page (None when this was the last)."""

    records: list[dict[str, Any]]
    cursor: Any = None


def _json(answer: requests.Response, crm: str) -> Any:
    """The answer's JSON, read (decompressed) to at most :data:`MAX_ANSWER_BYTES`: a
    page of 100 companies or 2,000 accounts is far smaller, and a larger answer is not
    one to hold in memory."""
    try:
        if answer.status_code != 200:
            raise CrmReadError(f"{crm} answered HTTP {answer.status_code}")
        body = bytearray()
        for chunk in answer.iter_content(64 * 1024):
            body += chunk
            if len(body) > MAX_ANSWER_BYTES:
                raise CrmReadError(f"{crm} answered more than {MAX_ANSWER_BYTES} bytes")
    except requests.RequestException as exc:
        raise CrmReadError(f"{crm} answer cut off: {type(exc).__name__}") from None
    finally:
        answer.close()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise CrmReadError(f"{crm} answered with something that is not JSON") from None


class HubSpotClient:
    """Companies changed since a time, with owner ids turned into owners."""

    def __init__(self, read: HubSpotRead, session: requests.Session | None = None) -> None:
        self.read = read
        self.session = PinnedSession(read.api_url, session)
        self.session.headers["Authorization"] = f"Bearer {read.token}"
        self.owners: dict[str, dict[str, Any]] = {}
        traits = dict(read.mapping.traits)
        self.owner_traits = [t for t in ("owner_email", "owner")
                             if traits.get(t) == HUBSPOT_OWNER_FIELD]
        for trait in self.owner_traits:  # filled from the owner, not from the company
            traits[trait] = f"{HUBSPOT_OWNER_FIELD}.{trait}"
        self.mapping = TraitMap(read.mapping.account, traits)

    def page(self, since_ms: int, after: str | None) -> Page:
        mapping = self.read.mapping
        body: dict[str, Any] = {
            "filterGroups": [{"filters": [
                {"propertyName": "hs_lastmodifieddate", "operator": "GTE",
                 "value": str(since_ms)},
                {"propertyName": mapping.account, "operator": "HAS_PROPERTY"}]}],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            "properties": [*mapping.fields(), "hs_lastmodifieddate"],
            "limit": HUBSPOT_PAGE}
        if after is not None:
            body["after"] = after
        answer = self._send("POST", "/crm/v3/objects/companies/search", json=body)
        document = _json(answer, HUBSPOT)
        results = document.get("results") if isinstance(document, dict) else None
        if not isinstance(results, list):
            raise CrmReadError("hubspot search answered without results")
        records = []
        for result in results:
            if isinstance(result, dict) and isinstance(result.get("properties"), dict):
                records.append({**result["properties"], "Id": result.get("id")})
        following = document.get("paging", {}).get("next", {}).get("after") \
            if isinstance(document.get("paging"), dict) else None
        return Page(records, following if isinstance(following, str) and
                    following.isdigit() else None)

    def with_owner(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record with its owner's e-mail and name beside the owner id."""
        owner = self.owner(record.get(HUBSPOT_OWNER_FIELD))
        name = " ".join(str(owner.get(k) or "") for k in ("firstName", "lastName")).strip()
        return {**record, f"{HUBSPOT_OWNER_FIELD}.owner_email": owner.get("email"),
                f"{HUBSPOT_OWNER_FIELD}.owner": name or None}

    def owner(self, owner_id: Any) -> dict[str, Any]:
        """The owner's e-mail and name (``{}`` when unknown), each id asked once."""
        if not isinstance(owner_id, str) or not owner_id.isdigit() or len(owner_id) > 20:
            return {}
        if owner_id not in self.owners:
            try:
                found = _json(self._send("GET", f"/crm/v3/owners/{owner_id}"), HUBSPOT)
            except CrmReadError:  # an owner HubSpot does not know: no e-mail, no name
                found = {}
            if len(self.owners) >= MAX_OWNERS:
                self.owners.clear()
            self.owners[owner_id] = found if isinstance(found, dict) else {}
        return self.owners[owner_id]

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.request(method, self.read.api_url + path,
                                        timeout=TIMEOUT_SECONDS, stream=True, **kwargs)
        except requests.RequestException as exc:
            raise CrmReadError(f"hubspot unreachable: {type(exc).__name__}") from None


class SalesforceClient:
    """Accounts changed since a time, through SOQL, with one token renewal on a 401."""

    def __init__(self, read: SalesforceRead, session: requests.Session | None = None,
                 tokens: SalesforceTokens | None = None) -> None:
        self.read = read
        self.mapping = read.mapping
        self.session = PinnedSession(read.instance_url, session)
        self.tokens = tokens or SalesforceTokens(read.oauth, session)

    def query(self, since: str) -> str:
        mapping = self.read.mapping
        fields = ", ".join(dict.fromkeys(["Id", "SystemModstamp", *mapping.fields()]))
        return (f"SELECT {fields} FROM Account WHERE {mapping.account} != null AND "
                f"SystemModstamp >= {since} ORDER BY SystemModstamp ASC")

    def page(self, since: str, following: str | None) -> Page:
        path = following or (f"/services/data/v{self.read.api_version}/query?q="
                             + quote(self.query(since), safe=""))
        document = _json(self._get(path), SALESFORCE)
        records = document.get("records") if isinstance(document, dict) else None
        if not isinstance(records, list):
            raise CrmReadError("salesforce query answered without records")
        nxt = document.get("nextRecordsUrl")
        if document.get("done") is False and not (
                isinstance(nxt, str) and NEXT_RECORDS.fullmatch(nxt)):
            raise CrmReadError("salesforce answered a next page that is not a query path")
        return Page([flatten(r) for r in records if isinstance(r, dict)],
                    None if document.get("done", True) else nxt)

    def _get(self, path: str) -> requests.Response:
        url = self.read.instance_url + path
        refuse_foreign_host("salesforce", url, self.read.instance_url)
        token = self.tokens.current()
        for attempt in range(2):
            try:
                answer = self.session.get(url, timeout=TIMEOUT_SECONDS, stream=True, headers={
                    "Authorization": f"Bearer {token}", "Accept": "application/json"})
            except requests.RequestException as exc:
                raise CrmReadError(f"salesforce unreachable: {type(exc).__name__}") from None
            if answer.status_code != 401 or attempt:
                return answer
            answer.close()  # streamed: give the connection back before the retry
            token = self.tokens.renew(token)
        raise AssertionError("unreachable")


# --- polling -----------------------------------------------------------------------------

@dataclass(slots=True)
class Polled:
    """What one poll of one CRM did."""

    records: int = 0
    accepted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0


@dataclass(slots=True)
class _Cursor:
    since_ms: int = 0
    """HubSpot: the latest ``hs_lastmodifieddate`` seen (epoch ms)."""
    since_text: str = "1970-01-01T00:00:00Z"
    """Salesforce: the latest ``SystemModstamp`` seen."""
    due: float = 0.0


Claim = Callable[[str, float], Awaitable[bool]]
"""``claim(name, seconds)``: True when this worker may poll ``name`` now; no other worker
may for the next ``seconds`` (a lease, so that N workers poll a CRM once, not N times)."""


async def _always(_name: str, _seconds: float) -> bool:
    return True


class CrmPoller:
    """Reads every configured CRM at its interval and hands what it says to the
    collector's intake as group calls."""

    def __init__(self, readers: Sequence[Reader], intake: Intake,
                 session: requests.Session | None = None, clock: Any = time.time,
                 claim: Claim = _always) -> None:
        self.readers = list(readers)
        self.intake = intake
        self.clock = clock
        self.claim = claim
        self.clients: list[HubSpotClient | SalesforceClient] = [
            HubSpotClient(r, session) if isinstance(r, HubSpotRead)
            else SalesforceClient(r, session) for r in self.readers]
        self.cursors = [_Cursor() for _ in self.readers]

    async def run(self) -> None:
        """Poll each CRM when it is due, for ever (cancel to stop)."""
        while True:
            now = self.clock()
            for index, reader in enumerate(self.readers):
                cursor = self.cursors[index]
                if cursor.due > now:
                    continue
                try:
                    mine = await self.claim(f"{reader.workspace}:{reader.crm}",
                                            reader.interval * LEASE_SHARE)
                except Exception as exc:  # Redis unavailable: try again soon
                    log.warning("could not claim the %s read of %s: %s", reader.crm,
                                reader.workspace, exc)
                    cursor.due = self.clock() + MIN_INTERVAL
                    continue
                if mine:
                    await self.poll_logged(index)
                cursor.due = self.clock() + reader.interval
            wake = min((c.due for c in self.cursors), default=now + MAX_INTERVAL)
            await asyncio.sleep(max(1.0, wake - self.clock()))

    async def poll_logged(self, index: int) -> Polled | None:
        reader = self.readers[index]
        try:
            polled = await self.poll(index)
        except (CrmReadError, IntakeUnavailable) as exc:
            metrics.CRM_READS.labels(crm=reader.crm, outcome="failed").inc()
            log.warning("reading %s for workspace %s failed, next try in %.0f s: %s",
                        reader.crm, reader.workspace, reader.interval, exc)
            return None
        except Exception:  # one CRM's answer must never take the worker down
            metrics.CRM_READS.labels(crm=reader.crm, outcome="failed").inc()
            log.exception("reading %s for workspace %s failed", reader.crm, reader.workspace)
            return None
        metrics.CRM_READ_LAST_SUCCESS.labels(workspace=reader.workspace,
                                             crm=reader.crm).set(self.clock())
        log.info("read %s for workspace %s: %d records, %d accepted, %d unchanged, "
                 "%d dead-lettered", reader.crm, reader.workspace, polled.records,
                 polled.accepted, polled.duplicates, polled.dead_lettered)
        return polled

    async def poll(self, index: int) -> Polled:
        """Read what changed in one CRM since its last poll and take it."""
        client = self.clients[index]
        if isinstance(client, HubSpotClient):
            return await self._poll_hubspot(client, self.cursors[index])
        return await self._poll_salesforce(client, self.cursors[index])

    async def _poll_hubspot(self, client: HubSpotClient, cursor: _Cursor) -> Polled:
        polled = Polled()
        since, after, seen = cursor.since_ms, None, 0
        latest = since
        while True:
            page = await asyncio.to_thread(client.page, since, after)
            for record in page.records:
                latest = max(latest, _epoch_ms(record.get("hs_lastmodifieddate")))
            await self._take(client, page.records, polled)
            seen += len(page.records)
            if page.cursor is None:
                break
            if seen + HUBSPOT_PAGE > HUBSPOT_SEARCH_CAP:
                if latest <= since:
                    raise CrmReadError(f"more than {HUBSPOT_SEARCH_CAP} companies changed "
                                       "in the same millisecond")
                since, after, seen = latest, None, 0  # start again from where it got to
            else:
                after = page.cursor
        cursor.since_ms = latest
        return polled

    async def _poll_salesforce(self, client: SalesforceClient, cursor: _Cursor) -> Polled:
        polled = Polled()
        following: str | None = None
        latest = cursor.since_text
        while True:
            page = await asyncio.to_thread(client.page, cursor.since_text, following)
            for record in page.records:
                stamp = _soql_datetime(record.get("SystemModstamp"))
                if stamp is not None and stamp > latest:
                    latest = stamp
            await self._take(client, page.records, polled)
            if page.cursor is None:
                break
            following = page.cursor
        cursor.since_text = latest
        return polled

    async def _take(self, client: HubSpotClient | SalesforceClient,
                    records: list[dict[str, Any]], polled: Polled) -> None:
        read = client.read
        now = self.clock()
        messages: list[dict[str, Any]] = []
        for record in records:
            values = record
            if isinstance(client, HubSpotClient) and client.owner_traits:
                values = await asyncio.to_thread(client.with_owner, record)
            outcome = group_call(read.crm, record.get("Id"), values, client.mapping)
            polled.records += 1
            for reason, detail in outcome.problems:
                await self.intake.dead_letter(read.workspace, DeadLetter(
                    reason, detail, read.crm, read.workspace, now,
                    payload={"id": str(record.get("Id"))[:40]}))
                polled.dead_lettered += 1
                metrics.CRM_READS.labels(crm=read.crm, outcome="dead_lettered").inc()
            if outcome.message is not None:
                messages.append(outcome.message)
        for start in range(0, len(messages), CHUNK):
            taken = await self.intake.accept(read.workspace, messages[start:start + CHUNK],
                                             Source.SEGMENT, now)
            polled.accepted += taken.accepted
            polled.duplicates += taken.duplicates
            polled.dead_lettered += taken.dead_lettered
            for outcome_name, count in (("accepted", taken.accepted),
                                        ("duplicate", taken.duplicates),
                                        ("dead_lettered", taken.dead_lettered)):
                if count:
                    metrics.CRM_READS.labels(crm=read.crm, outcome=outcome_name).inc(count)


def _epoch_ms(value: Any) -> int:
    """HubSpot's modification time (ISO text or epoch ms) in epoch ms; 0 when unreadable."""
    if isinstance(value, str):
        if value.isdigit():
            return int(value)
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            return 0
    return 0


def _soql_datetime(value: Any) -> str | None:
    """A ``SystemModstamp`` as a SOQL datetime literal (``2026-11-30T10:00:00Z``)."""
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00").replace("+0000", "+00:00"))
    except ValueError:
        return None
    return stamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

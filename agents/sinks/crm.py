"""CRM sync: health written onto the customer's company record in HubSpot and Salesforce.

The record ids come from the account's group traits (``external_ids`` of the change:
``hubspot_company_id``, ``salesforce_account_id``); an account without one is skipped.

HubSpot: ``POST /crm/v3/objects/companies/batch/update`` with ``{"inputs": [{"id": ...,
"properties": {...}}, ...]}`` through the official ``hubspot-api-client``. Changes waiting
for HubSpot at the same moment (the dispatcher hands them over together) go out in one
request of up to 100 companies, because HubSpot limits requests per ten seconds, not
companies, and a burst of score changes (a new scoring config, a replay) would otherwise
spend the limit one company at a time. Each change still gets its own outcome: a 207
Multi-Status answer fails only the companies its errors name (for good when HubSpot says
not found or invalid, for a retry when it says rate-limited or a 5xx), and a failed
request fails each change in it as a single update would have. Create these custom
company properties once (all text except the score, a number): telltale_health_score,
telltale_health_band, telltale_forecast_stage, telltale_lifecycle_stage,
telltale_health_reason, telltale_health_change_7d, telltale_health_updated_at.

Salesforce: ``PATCH /services/data/vXX.X/sobjects/Account/{id}`` through ``simple-salesforce``.
Create these custom Account fields: Telltale_Health_Score__c (Number),
Telltale_Health_Band__c, Telltale_Forecast_Stage__c, Telltale_Lifecycle_Stage__c (Text),
Telltale_Health_Reason__c (Long Text), Telltale_Health_Change_7d__c (Number),
Telltale_Health_Updated__c (Date/Time). With OAuth (``agents/sinks/salesforce_oauth.py``)
the access token is fetched from the token endpoint and renewed once on a 401; otherwise
a fixed ``session_id`` is used until it expires.

Both clients are synchronous, so calls run in a worker thread and never hold the loop.

The record id is event data: it is checked again here (``streams/identifiers.py``, the
same check the scoring core applies to the trait) and a change carrying a malformed one
is refused, not sent, and does not hold up the other changes of its batch. Salesforce's
client builds the request URL from it (HubSpot's batch update carries it in the body), and
both clients send through a transport pinned to the configured host that does not follow
redirects: even an id that slipped past the check cannot point the bearer token at another
host.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from agents.sinks import (
    RETRYABLE_STATUSES,
    DeliveryError,
    PinnedSession,
    refuse_foreign_host,
    status_error,
)
from agents.sinks.salesforce_oauth import SalesforceTokens
from streams.health_change import HealthChangeRecord
from streams.identifiers import EXTERNAL_IDS, external_id

HUBSPOT_API = "https://api.hubapi.com"

REASON_LIMIT = 1000
"""Characters of the explanation written to the CRM reason field."""


def hubspot_properties(change: HealthChangeRecord) -> dict[str, str]:
    current = change.current
    return {
        "telltale_health_score": str(current.score),
        "telltale_health_band": current.band.value,
        "telltale_forecast_stage": "" if current.forecast is None else current.forecast.value,
        "telltale_lifecycle_stage": current.lifecycle.value,
        "telltale_health_reason": change.explanation[:REASON_LIMIT],
        "telltale_health_change_7d": str(change.change_7d),
        "telltale_health_updated_at": change.event_time,
    }


def salesforce_fields(change: HealthChangeRecord) -> dict[str, Any]:
    current = change.current
    return {
        "Telltale_Health_Score__c": current.score,
        "Telltale_Health_Band__c": current.band.value,
        "Telltale_Forecast_Stage__c": None if current.forecast is None else current.forecast.value,
        "Telltale_Lifecycle_Stage__c": current.lifecycle.value,
        "Telltale_Health_Reason__c": change.explanation[:REASON_LIMIT],
        "Telltale_Health_Change_7d__c": change.change_7d,
        "Telltale_Health_Updated__c": change.event_time,
    }


def _record_id(change: HealthChangeRecord, key: str, destination: str) -> str | None:
    """The change's CRM record id for ``key``; None when it has none. A malformed one is
    a permanent DeliveryError: retrying a forged or corrupted change cannot help."""
    value = change.external_ids.get(key)
    if value is None or value == "":
        return None
    record_id = external_id(key, value)
    if record_id is None:
        raise DeliveryError(f"{destination} update refused: {key} is {EXTERNAL_IDS[key][1]}",
                            retryable=False)
    return record_id


async def _write(change: HealthChangeRecord, key: str, destination: str,
                 update: Callable[[str, dict[str, Any]], None],
                 fields: Callable[[HealthChangeRecord], dict[str, Any]]) -> bool:
    """``update(record id, fields(change))`` in a worker thread (the client is
    synchronous); False when the change has no record id for ``key``."""
    record_id = _record_id(change, key, destination)
    if record_id is None:
        return False
    await asyncio.to_thread(update, record_id, fields(change))
    return True


def _answer_error(destination: str, status: int, record: str,
                  retry_after: float | None = None) -> DeliveryError:
    if 300 <= status < 400:
        return status_error(destination, status, "", None)
    return DeliveryError(f"{destination} answered HTTP {status} for {record}",
                         retryable=status in RETRYABLE_STATUSES or status >= 500 or status == 0,
                         retry_after=retry_after)


class _PinnedPoolManager:
    """Stands in for the HubSpot client's urllib3 pool manager: sends only to the
    configured host and hands back a 30x instead of following it."""

    def __init__(self, inner: Any, base_url: str) -> None:
        self.inner = inner
        self.base_url = base_url

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        refuse_foreign_host("hubspot", url, self.base_url)
        return self.inner.request(method, url, redirect=False, **kwargs)

    def clear(self) -> None:
        self.inner.clear()


def _retry_after(headers: Any) -> float | None:
    try:
        value = headers.get("Retry-After") if headers is not None else None
        return None if value is None else max(0.0, float(value))
    except (TypeError, ValueError):
        return None


HUBSPOT_BATCH_LIMIT = 100
"""Companies in one batch update: HubSpot's limit for the endpoint."""

HUBSPOT_BATCH_WAIT_SECONDS = 0.02
"""How long the first waiting change holds its batch open for others (seconds). The
dispatcher hands over queued changes in one go, so they need no wait; this catches the
ones that wake from the same Retry-After a moment apart, and is small beside a HubSpot
round trip."""

_RETRYABLE_CATEGORIES = frozenset({"RATE_LIMITS"})
"""Categories of a 207 error that a later try can get past: HubSpot's rate limiting."""


@dataclass(slots=True)
class _Waiting:
    """One change waiting for a batch: its company, its properties, its place in time
    (the read model's order: event time, then change id) and its caller's outcome."""

    company_id: str
    properties: dict[str, str]
    order: tuple[float, str]
    outcome: asyncio.Future[None]


@dataclass(slots=True)
class _Batches:
    """The changes waiting for the next HubSpot request, and the task that sends them."""

    waiting: list[_Waiting] = field(default_factory=list)
    sender: asyncio.Task[None] | None = None


def _latest_per_company(waiting: list[_Waiting]) -> list[tuple[_Waiting, list[_Waiting]]]:
    """Each company's newest change with the older ones it supersedes, companies in the
    order they first came. A batch names a company once (HubSpot refuses duplicate ids),
    and the newest change wins as it would have in the read model; of two with the same
    place in time, the later to arrive."""
    by_company: dict[str, list[_Waiting]] = {}
    for item in waiting:
        by_company.setdefault(item.company_id, []).append(item)
    latest = []
    for items in by_company.values():
        newest = max(reversed(items), key=lambda item: item.order)
        latest.append((newest, [item for item in items if item is not newest]))
    return latest


def _copy(error: DeliveryError) -> DeliveryError:
    """The same failure as a new exception: each caller raises its own."""
    return DeliveryError(error.reason, retryable=error.retryable,
                         retry_after=error.retry_after)


def _item_error(error: Any, company_id: str, retry_after: float | None) -> DeliveryError:
    """The failure of one company named by a 207 error: retryable when HubSpot says it
    was rate-limited or gives a retryable HTTP status, permanent otherwise (not found,
    invalid property values: the same request would fail again)."""
    category = str(getattr(error, "category", None) or "")
    status = str(getattr(error, "status", None) or "")
    message = str(getattr(error, "message", None) or "")[:200]
    code = int(status) if status.isascii() and status.isdigit() else None
    retryable = category in _RETRYABLE_CATEGORIES or (
        code is not None and (code in RETRYABLE_STATUSES or code >= 500))
    return DeliveryError(f"hubspot refused company {company_id}: "
                         f"{category or status or 'error'}: {message}",
                         retryable=retryable, retry_after=retry_after if retryable else None)


def _multi_status(company_ids: list[str], answer: Any,
                  retry_after: float | None) -> dict[str, DeliveryError | None]:
    """Each company's outcome in a 207 answer: updated when its id is among the results,
    the error that names it in ``context.ids`` otherwise. A company named by neither is
    retryable: HubSpot did not say it was written, and writing it again is harmless."""
    updated = {str(result.id) for result in getattr(answer, "results", None) or []}
    failed: dict[str, DeliveryError] = {}
    for error in getattr(answer, "errors", None) or []:
        context = getattr(error, "context", None)
        named = context.get("ids") if isinstance(context, dict) else None
        for company_id in named if isinstance(named, list) else []:
            failed.setdefault(str(company_id), _item_error(error, str(company_id),
                                                           retry_after))
    return {company_id: None if company_id in updated else failed.get(company_id)
            or DeliveryError(f"hubspot answered no result for company {company_id}")
            for company_id in company_ids}


@dataclass(frozen=True, slots=True)
class HubSpotSync:
    """Writes health onto HubSpot companies. ``host`` overrides https://api.hubapi.com;
    ``batch_wait_seconds`` is how long a batch stays open for more changes (default
    :data:`HUBSPOT_BATCH_WAIT_SECONDS`).

    Changes sent at the same moment share batch requests of up to
    :data:`HUBSPOT_BATCH_LIMIT` companies, one request at a time. One client serves every
    request: its connection pool keeps the TLS connection to HubSpot open between them
    instead of a handshake per request. :meth:`close` closes it."""

    access_token: str
    host: str | None = None
    batch_wait_seconds: float = HUBSPOT_BATCH_WAIT_SECONDS
    _client: list[Any] = field(default_factory=list, init=False, repr=False, compare=False)
    _batches: _Batches = field(default_factory=_Batches, init=False, repr=False,
                               compare=False)

    def _companies(self) -> Any:
        if not self._client:
            from hubspot import HubSpot

            host = (self.host or HUBSPOT_API).rstrip("/")
            companies = HubSpot(access_token=self.access_token,
                                host=host).crm.companies.batch_api
            rest = companies.api_client.rest_client
            rest.pool_manager = _PinnedPoolManager(rest.pool_manager, host)
            self._client.append(companies)
        return self._client[0]

    def close(self) -> None:
        """Close the client; changes still waiting fail, retryably."""
        sender = self._batches.sender
        if sender is not None and not sender.done():
            sender.cancel()
        if self._client:
            self._client.pop().api_client.rest_client.pool_manager.clear()

    def _update(self, updates: list[tuple[str, dict[str, str]]]
                ) -> dict[str, DeliveryError | None]:
        """One batch update of ``(company id, properties)``; each company's failure, None
        for those written. A failed request fails every company in it alike."""
        from hubspot.crm.companies import (
            ApiException,
            BatchInputSimplePublicObjectBatchInput,
            SimplePublicObjectBatchInput,
        )

        company_ids = [company_id for company_id, _ in updates]
        body = BatchInputSimplePublicObjectBatchInput(inputs=[
            SimplePublicObjectBatchInput(id=company_id, properties=properties)
            for company_id, properties in updates])
        try:
            answer, status, headers = self._companies().update_with_http_info(body)
        except ApiException as exc:
            code, retry_after = int(exc.status or 0), _retry_after(exc.headers)
            return {company_id: _answer_error("hubspot", code, f"company {company_id}",
                                              retry_after) for company_id in company_ids}
        except DeliveryError as exc:  # refused by the pinned transport
            return {company_id: _copy(exc) for company_id in company_ids}
        except Exception as exc:  # urllib3 connection errors and the like
            return {company_id: DeliveryError(f"hubspot unreachable: {exc!r}")
                    for company_id in company_ids}
        if status != 207:  # 200: every company was updated
            return dict.fromkeys(company_ids)
        return _multi_status(company_ids, answer, _retry_after(headers))

    async def _send_waiting(self) -> None:
        """Send what waits, in batches, until nothing does; settle each caller."""
        batches = self._batches
        taken: list[_Waiting] = []
        try:
            await asyncio.sleep(self.batch_wait_seconds)
            while batches.waiting:
                taken, batches.waiting = batches.waiting, []
                latest = _latest_per_company(taken)
                for start in range(0, len(latest), HUBSPOT_BATCH_LIMIT):
                    chunk = latest[start:start + HUBSPOT_BATCH_LIMIT]
                    outcomes = await asyncio.to_thread(
                        self._update, [(newest.company_id, newest.properties)
                                       for newest, _ in chunk])
                    for newest, superseded in chunk:
                        _settle(newest, outcomes[newest.company_id])
                        for older in superseded:
                            # Its company got newer health: retrying or dead-lettering
                            # it would only put older health back.
                            _settle(older, None)
        except BaseException:
            for item in [*taken, *batches.waiting]:
                _settle(item, DeliveryError("hubspot batch was interrupted"))
            batches.waiting.clear()
            raise

    async def send(self, change: HealthChangeRecord) -> bool:
        """Update the company in the next batch; False when the account has no HubSpot
        id. True also when a newer change for the same company in that batch was written
        in its place. A malformed id is refused here, before it can join a batch."""
        company_id = _record_id(change, "hubspot_company_id", "hubspot")
        if company_id is None:
            return False
        loop = asyncio.get_running_loop()
        batches = self._batches
        if batches.sender is not None and batches.sender.get_loop() is not loop:
            batches.waiting, batches.sender = [], None  # left by an event loop now gone
        outcome: asyncio.Future[None] = loop.create_future()
        batches.waiting.append(_Waiting(company_id, hubspot_properties(change),
                                        (change.time, change.id), outcome))
        if batches.sender is None or batches.sender.done():
            batches.sender = asyncio.create_task(self._send_waiting(),
                                                 name="telltale.hubspot.batch")
        await outcome
        return True


def _settle(item: _Waiting, error: DeliveryError | None) -> None:
    """Give a waiting caller its outcome, unless it stopped waiting (cancelled)."""
    if item.outcome.done():
        return
    if error is None:
        item.outcome.set_result(None)
    else:
        item.outcome.set_exception(error)


class _SessionRefused(Exception):
    """Salesforce answered 401 to a token that OAuth can replace."""


@dataclass(frozen=True, slots=True)
class SalesforceSync:
    """Writes health onto Salesforce Accounts of ``instance_url``, with the access token
    of ``tokens`` (OAuth, renewed on a 401) or else a fixed ``session_id``. ``session``
    lends its TLS and proxy settings."""

    instance_url: str
    session_id: str
    version: str = "59.0"
    session: requests.Session | None = None
    tokens: SalesforceTokens | None = None

    def _update(self, account_id: str, fields: dict[str, Any]) -> None:
        if self.tokens is None:
            self._patch(account_id, fields, self.session_id, renewable=False)
            return
        token = self.tokens.current()
        try:
            self._patch(account_id, fields, token, renewable=True)
        except _SessionRefused:
            # Expired or revoked: one new token and one more try; a second 401 is final.
            self._patch(account_id, fields, self.tokens.renew(token), renewable=False)

    def _patch(self, account_id: str, fields: dict[str, Any], token: str, *,
               renewable: bool) -> None:
        from simple_salesforce import Salesforce
        from simple_salesforce.exceptions import SalesforceError

        session = PinnedSession(self.instance_url, self.session)
        client = Salesforce(instance_url=self.instance_url, session_id=token,
                            version=self.version, session=session)
        try:
            account: Any = client.Account  # simple-salesforce resolves sobjects dynamically
            account.update(account_id, fields)
        except SalesforceError as exc:
            if renewable and int(exc.status) == 401:
                raise _SessionRefused from exc
            raise _answer_error("salesforce", int(exc.status),
                                f"account {account_id}") from exc
        except requests.RequestException as exc:
            raise DeliveryError(f"salesforce unreachable: {exc!r}") from exc
        finally:
            session.close()

    async def send(self, change: HealthChangeRecord) -> bool:
        """Update the Account; False when the account has no Salesforce id."""
        return await _write(change, "salesforce_account_id", "salesforce", self._update,
                            salesforce_fields)

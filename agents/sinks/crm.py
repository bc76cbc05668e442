"""CRM sync: health written onto the customer's company record in HubSpot and Salesforce.

The record ids come from the account's group traits (``external_ids`` of the change:
``hubspot_company_id``, ``salesforce_account_id``); an account without one is skipped.

HubSpot: ``PATCH /crm/v3/objects/companies/{id}`` with ``{"properties": {...}}`` through the
official ``hubspot-api-client``. Create these custom company properties once (all text
except the score, a number): telltale_health_score, telltale_health_band,
telltale_forecast_stage, telltale_lifecycle_stage, telltale_health_reason,
telltale_health_change_7d, telltale_health_updated_at.

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
is refused, not sent. Both clients build the request URL from it, so each also sends
through a transport pinned to the configured host that does not follow redirects: even an
id that slipped past the check cannot point the bearer token at another host.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

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
_Fields = TypeVar("_Fields", dict[str, str], dict[str, Any])

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
                 update: Callable[[str, _Fields], None],
                 fields: Callable[[HealthChangeRecord], _Fields]) -> bool:
    """``update(record id, fields(change))`` in a worker thread (both clients are
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


@dataclass(frozen=True, slots=True)
class HubSpotSync:
    """Writes health onto HubSpot companies. ``host`` overrides https://api.hubapi.com.

    One client serves every write: its connection pool keeps the TLS connection to
    HubSpot open between changes instead of a handshake per write (urllib3's pool is
    safe to share between the worker threads). :meth:`close` closes it."""

    access_token: str
    host: str | None = None
    _client: list[Any] = field(default_factory=list, init=False, repr=False, compare=False)

    def _companies(self) -> Any:
        if not self._client:
            from hubspot import HubSpot

            host = (self.host or HUBSPOT_API).rstrip("/")
            companies = HubSpot(access_token=self.access_token,
                                host=host).crm.companies.basic_api
            rest = companies.api_client.rest_client
            rest.pool_manager = _PinnedPoolManager(rest.pool_manager, host)
            self._client.append(companies)
        return self._client[0]

    def close(self) -> None:
        if self._client:
            self._client.pop().api_client.rest_client.pool_manager.clear()

    def _update(self, company_id: str, properties: dict[str, str]) -> None:
        from hubspot.crm.companies import ApiException, SimplePublicObjectInput

        companies = self._companies()
        try:
            body = SimplePublicObjectInput(properties=properties)
            companies.update(company_id, simple_public_object_input=body)
        except ApiException as exc:
            raise _answer_error("hubspot", int(exc.status or 0), f"company {company_id}",
                                _retry_after(exc.headers)) from exc
        except DeliveryError:
            raise
        except Exception as exc:  # urllib3 connection errors and the like
            raise DeliveryError(f"hubspot unreachable: {exc!r}") from exc

    async def send(self, change: HealthChangeRecord) -> bool:
        """Update the company; False when the account has no HubSpot id."""
        return await _write(change, "hubspot_company_id", "hubspot", self._update,
                            hubspot_properties)


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

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
Telltale_Health_Updated__c (Date/Time).

Both clients are synchronous, so calls run in a worker thread and never hold the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from agents.sinks import RETRYABLE_STATUSES, DeliveryError

REASON_LIMIT = 1000
"""Characters of the explanation written to the CRM reason field."""


def hubspot_properties(change: Mapping[str, Any]) -> dict[str, str]:
    current = change["current"]
    return {
        "telltale_health_score": str(int(current["score"])),
        "telltale_health_band": str(current["band"]),
        "telltale_forecast_stage": str(current.get("forecast") or ""),
        "telltale_lifecycle_stage": str(current.get("lifecycle") or ""),
        "telltale_health_reason": str(change.get("explanation") or "")[:REASON_LIMIT],
        "telltale_health_change_7d": str(int(change.get("change_7d") or 0)),
        "telltale_health_updated_at": str(change["event_time"]),
    }


def salesforce_fields(change: Mapping[str, Any]) -> dict[str, Any]:
    current = change["current"]
    return {
        "Telltale_Health_Score__c": int(current["score"]),
        "Telltale_Health_Band__c": str(current["band"]),
        "Telltale_Forecast_Stage__c": current.get("forecast"),
        "Telltale_Lifecycle_Stage__c": current.get("lifecycle"),
        "Telltale_Health_Reason__c": str(change.get("explanation") or "")[:REASON_LIMIT],
        "Telltale_Health_Change_7d__c": int(change.get("change_7d") or 0),
        "Telltale_Health_Updated__c": str(change["event_time"]),
    }


def _retry_after(headers: Any) -> float | None:
    try:
        value = headers.get("Retry-After") if headers is not None else None
        return None if value is None else max(0.0, float(value))
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class HubSpotSync:
    """Writes health onto HubSpot companies. ``host`` overrides https://api.hubapi.com."""

    access_token: str
    host: str | None = None

    def _update(self, company_id: str, properties: dict[str, str]) -> None:
        from hubspot import HubSpot
        from hubspot.crm.companies import ApiException, SimplePublicObjectInput

        options: dict[str, Any] = {"access_token": self.access_token}
        if self.host:
            options["host"] = self.host.rstrip("/")
        companies = HubSpot(**options).crm.companies.basic_api
        try:
            body = SimplePublicObjectInput(properties=properties)
            companies.update(company_id, simple_public_object_input=body)
        except ApiException as exc:
            status = int(exc.status or 0)
            raise DeliveryError(
                f"hubspot answered HTTP {status} for company {company_id}",
                retryable=status in RETRYABLE_STATUSES or status >= 500 or status == 0,
                retry_after=_retry_after(exc.headers),
            ) from exc
        except Exception as exc:  # urllib3 connection errors and the like
            raise DeliveryError(f"hubspot unreachable: {exc!r}") from exc
        finally:
            # One client per call: close its connection pool rather than leak sockets.
            companies.api_client.rest_client.pool_manager.clear()

    async def send(self, change: Mapping[str, Any]) -> bool:
        """Update the company; False when the account has no HubSpot id."""
        company_id = (change.get("external_ids") or {}).get("hubspot_company_id")
        if not company_id:
            return False
        await asyncio.to_thread(self._update, str(company_id), hubspot_properties(change))
        return True


@dataclass(frozen=True, slots=True)
class SalesforceSync:
    """Writes health onto Salesforce Accounts with an existing session (OAuth access
    token) for ``instance_url``. ``session`` lets callers supply TLS settings."""

    instance_url: str
    session_id: str
    version: str = "59.0"
    session: requests.Session | None = None

    def _update(self, account_id: str, fields: dict[str, Any]) -> None:
        from simple_salesforce import Salesforce
        from simple_salesforce.exceptions import SalesforceError

        client = Salesforce(instance_url=self.instance_url, session_id=self.session_id,
                            version=self.version, session=self.session)
        try:
            account: Any = client.Account  # simple-salesforce resolves sobjects dynamically
            account.update(account_id, fields)
        except SalesforceError as exc:
            status = int(exc.status)
            raise DeliveryError(
                f"salesforce answered HTTP {status} for account {account_id}",
                retryable=status in RETRYABLE_STATUSES or status >= 500,
            ) from exc
        except requests.RequestException as exc:
            raise DeliveryError(f"salesforce unreachable: {exc!r}") from exc
        finally:
            if self.session is None:  # the client made its own session: close it
                client.session.close()

    async def send(self, change: Mapping[str, Any]) -> bool:
        """Update the Account; False when the account has no Salesforce id."""
        account_id = (change.get("external_ids") or {}).get("salesforce_account_id")
        if not account_id:
            return False
        await asyncio.to_thread(self._update, str(account_id), salesforce_fields(change))
        return True

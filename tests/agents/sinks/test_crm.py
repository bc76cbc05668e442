"""HubSpot and Salesforce sync through their official clients, pointed at a local server
that checks each request against the API's documented shape."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from agents.sinks import DeliveryError
from agents.sinks.crm import HubSpotSync, SalesforceSync, hubspot_properties
from tests.fakes.changes import make_change, make_record, record
from tests.fakes.http import Answer, Flaky, Recorded, RecordingServer
from tests.fakes.tls import self_signed, server_context

HUBSPOT_BATCH_PATH = "/crm/v3/objects/companies/batch/update"
SALESFORCE_PATH = re.compile(r"^/services/data/v\d+\.\d/sobjects/Account/(\w{15}|\w{18})$")
_JSON = {"Content-Type": "application/json"}


def _hubspot_error(category: str, message: str, ids: list[str] | None = None) -> dict[str, Any]:
    return {"status": "error", "category": category, "message": message,
            "context": {"ids": ids} if ids is not None else {}, "links": {}, "errors": []}


@dataclass
class HubSpotCompanies:
    """Documented: POST /crm/v3/objects/companies/batch/update, bearer token, JSON body
    {"inputs": [{"id": string, "properties": {name: string}}]} of 1 to 100 distinct ids;
    answers 200 with every updated company in ``results``, or 207 Multi-Status with the
    updated ones in ``results`` and one error per failure in ``errors``, naming its ids
    in ``context.ids``: OBJECT_NOT_FOUND for the ``missing`` ids, RATE_LIMITS for the
    ``throttled`` ones."""

    missing: frozenset[str] = frozenset()
    throttled: frozenset[str] = frozenset()

    def __call__(self, request: Recorded) -> Answer:
        body = request.json() if request.body else None
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if (request.method != "POST" or request.path != HUBSPOT_BATCH_PATH
                or request.headers.get("Authorization") != "Bearer pat-test"
                or not request.headers.get("Content-Type", "").startswith("application/json")
                or not isinstance(inputs, list) or not 1 <= len(inputs) <= 100
                or set(body) != {"inputs"}
                or not all(isinstance(i, dict) and set(i) == {"id", "properties"}
                           and isinstance(i["id"], str)
                           and all(isinstance(v, str) for v in i["properties"].values())
                           for i in inputs)):
            return 400, _JSON, orjson.dumps(_hubspot_error("VALIDATION_ERROR", "invalid"))
        ids = [i["id"] for i in inputs]
        if len(set(ids)) != len(ids):
            return 400, _JSON, orjson.dumps(_hubspot_error(
                "VALIDATION_ERROR", "Duplicate IDs found in batch input"))
        results = [{"id": i["id"], "properties": i["properties"],
                    "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-06-01T00:00:00Z",
                    "archived": False}
                   for i in inputs if i["id"] not in self.missing | self.throttled]
        errors = [_hubspot_error(category, message, named) for category, message, named in (
            ("OBJECT_NOT_FOUND", "Could not get some COMPANY objects",
             [i for i in ids if i in self.missing]),
            ("RATE_LIMITS", "You have reached your secondly limit",
             [i for i in ids if i in self.throttled])) if named]
        answer: dict[str, Any] = {"status": "COMPLETE", "results": results,
                                  "startedAt": "2026-06-01T00:00:00Z",
                                  "completedAt": "2026-06-01T00:00:01Z"}
        if errors:
            answer |= {"errors": errors, "numErrors": len(errors)}
        return 207 if errors else 200, _JSON, orjson.dumps(answer)


hubspot_api = HubSpotCompanies()


def hubspot_inputs(requests: list[Recorded]) -> list[list[str]]:
    """The company ids of each batch update, in order."""
    return [[i["id"] for i in r.json()["inputs"]] for r in requests]


def salesforce_api(request: Recorded) -> Answer:
    """Documented: PATCH /services/data/vXX.X/sobjects/Account/{id}, bearer session id,
    JSON body of field values; 204 No Content."""
    body = request.json() if request.body else None
    if (request.method != "PATCH" or not SALESFORCE_PATH.match(request.path)
            or request.headers.get("Authorization") != "Bearer 00Dsession"
            or not isinstance(body, dict) or not body
            or not all(k.endswith("__c") for k in body)):
        return 400, {"Content-Type": "application/json"}, b'[{"errorCode":"MALFORMED"}]'
    return 204, {}, b""


@pytest.fixture
async def salesforce(tmp_path: Path) -> AsyncIterator[tuple[RecordingServer, requests.Session]]:
    cert, key = self_signed(tmp_path)
    server = await RecordingServer(salesforce_api, ssl_context=server_context(cert, key)).start()
    session = requests.Session()
    session.verify = str(cert)  # trust the test certificate, as a private CA would be
    session.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment wins
    yield server, session
    session.close()
    await server.stop()


CHANGE = make_record(external_ids={"hubspot_company_id": "9001",
                                   "salesforce_account_id": "001Aa00000Xyz12AAA"})


async def test_hubspot_company_gets_score_band_stages_and_reason(
        hubspot: RecordingServer) -> None:
    sync = HubSpotSync("pat-test", host=hubspot.url)
    assert await sync.send(CHANGE)
    (request,) = hubspot.requests
    assert request.status == 200 and request.path == HUBSPOT_BATCH_PATH
    ((company, props),) = [(i["id"], i["properties"]) for i in request.json()["inputs"]]
    assert company == "9001" and props == hubspot_properties(CHANGE)
    assert props["telltale_health_score"] == "57" and props["telltale_health_band"] == "watch"
    assert props["telltale_forecast_stage"] == "best_case"
    assert props["telltale_health_reason"].startswith("Health fell 15 points")
    assert not await sync.send(record(make_change(external_ids={})))  # no HubSpot id: skipped
    assert len(hubspot.requests) == 1


async def test_hubspot_errors_are_classified(hubspot: RecordingServer) -> None:
    hubspot.script = Flaky(failures=1, status=429, retry_after="2", then=hubspot_api)
    sync = HubSpotSync("pat-test", host=hubspot.url)
    with pytest.raises(DeliveryError) as info:
        await sync.send(CHANGE)
    assert info.value.retryable and info.value.retry_after == 2.0
    assert await sync.send(CHANGE)
    with pytest.raises(DeliveryError) as info:
        await HubSpotSync("wrong-token", host=hubspot.url).send(CHANGE)
    assert not info.value.retryable


async def test_salesforce_account_fields_are_patched(
        salesforce: tuple[RecordingServer, requests.Session]) -> None:
    server, session = salesforce
    sync = SalesforceSync(server.url, "00Dsession", version="59.0", session=session)
    assert await sync.send(CHANGE)
    (request,) = server.requests
    assert request.status == 204
    assert request.path == "/services/data/v59.0/sobjects/Account/001Aa00000Xyz12AAA"
    fields = request.json()
    assert fields["Telltale_Health_Score__c"] == 57
    assert fields["Telltale_Health_Band__c"] == "watch"
    assert fields["Telltale_Lifecycle_Stage__c"] == "mature"
    assert fields["Telltale_Health_Reason__c"].startswith("Health fell 15 points")
    assert not await sync.send(record(make_change()))


async def test_salesforce_errors_are_classified(
        salesforce: tuple[RecordingServer, requests.Session]) -> None:
    server, session = salesforce
    server.script = Flaky(failures=1, status=503, then=salesforce_api)
    sync = SalesforceSync(server.url, "00Dsession", session=session)
    with pytest.raises(DeliveryError) as info:
        await sync.send(CHANGE)
    assert info.value.retryable
    assert await sync.send(CHANGE)
    with pytest.raises(DeliveryError) as info:
        await SalesforceSync(server.url, "bad", session=session).send(CHANGE)
    assert not info.value.retryable

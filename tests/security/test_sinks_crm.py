"""A CRM record id from an event cannot send a request, or its bearer token, anywhere but
the configured host: through the official HubSpot and Salesforce clients, against local
servers where one plays the configured CRM and another the host that must receive
nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests

from agents.sinks import DeliveryError
from agents.sinks.crm import HubSpotSync, SalesforceSync, salesforce_fields
from tests.agents.sinks.test_crm import (
    HUBSPOT_BATCH_PATH,
    hubspot_api,
    hubspot_inputs,
    salesforce_api,
)
from tests.fakes.changes import make_change, make_record, record
from tests.fakes.http import Answer, Recorded, RecordingServer
from tests.fakes.tls import self_signed, server_context

VALID_SF = "001Aa00000Xyz12AAA"


@dataclass
class Hosts:
    crm: RecordingServer  # the configured host
    other: RecordingServer  # must receive nothing, ever
    session: requests.Session  # trusts the test certificate

    def redirect_to_other(self, _: Recorded) -> Answer:
        return 302, {"Location": f"{self.other.url}/stolen"}, b""


async def _hosts(tmp_path: Path, tls: bool) -> AsyncIterator[Hosts]:
    folder = tmp_path / ("tls" if tls else "plain")
    folder.mkdir()
    cert, key = self_signed(folder)
    context = server_context(cert, key) if tls else None
    crm = await RecordingServer(ssl_context=context).start()
    other = await RecordingServer(ssl_context=context).start()
    session = requests.Session()
    session.verify, session.trust_env = str(cert), False
    yield Hosts(crm, other, session)
    assert other.requests == [], "a request reached a host that is not the configured one"
    session.close()
    await crm.stop()
    await other.stop()


@pytest.fixture
async def salesforce_hosts(tmp_path: Path) -> AsyncIterator[Hosts]:
    """HTTPS, as the Salesforce client insists on."""
    async for hosts in _hosts(tmp_path, tls=True):
        yield hosts


@pytest.fixture
async def hubspot_hosts(tmp_path: Path) -> AsyncIterator[Hosts]:
    async for hosts in _hosts(tmp_path, tls=False):
        yield hosts


def hubspot_sync(hosts: Hosts) -> HubSpotSync:
    return HubSpotSync("pat-test", host=hosts.crm.url)


def salesforce_sync(hosts: Hosts) -> SalesforceSync:
    return SalesforceSync(hosts.crm.url, "00Dsession", session=hosts.session)


def hostile_ids(hosts: Hosts) -> list[str]:
    other = hosts.other.url.split(":", 1)[1]  # "//127.0.0.1:PORT"
    return [f"{other}/x", hosts.other.url + "/x", "../../../../services/oauth2/token",
            "001Aa00000Xyz12AAA/../../User/005", "001Aa00000Xyz12AAA?fields=Id",
            "001Aa00000Xyz12AAA\r\nX-Injected: 1", "%2F%2Fevil", " 001Aa00000Xyz12AAA"]


async def test_forged_salesforce_ids_are_refused_and_valid_ones_still_go_out(
        salesforce_hosts: Hosts) -> None:
    hosts = salesforce_hosts
    hosts.crm.script = salesforce_api
    sync = salesforce_sync(hosts)
    for hostile in hostile_ids(hosts):
        with pytest.raises(DeliveryError) as info:
            await sync.send(record(make_change(external_ids={"salesforce_account_id": hostile})))
        assert not info.value.retryable
        assert "salesforce_account_id is not a Salesforce id" in info.value.reason
    assert hosts.crm.requests == []
    assert await sync.send(record(make_change(external_ids={"salesforce_account_id": VALID_SF})))
    (request,) = hosts.crm.requests
    assert request.status == 204 and request.path.endswith(f"/sobjects/Account/{VALID_SF}")


async def test_forged_hubspot_ids_are_refused_and_valid_ones_still_go_out(
        hubspot_hosts: Hosts) -> None:
    hosts = hubspot_hosts
    hosts.crm.script = hubspot_api
    sync = hubspot_sync(hosts)
    for hostile in [*hostile_ids(hosts), "9001/../../owners", "9001?archived=true", "0x10"]:
        with pytest.raises(DeliveryError) as info:
            await sync.send(record(make_change(external_ids={"hubspot_company_id": hostile})))
        assert not info.value.retryable and "not a HubSpot id" in info.value.reason
    assert hosts.crm.requests == []
    assert await sync.send(record(make_change(external_ids={"hubspot_company_id": "9001"})))
    (request,) = hosts.crm.requests
    assert request.status == 200 and request.path == HUBSPOT_BATCH_PATH
    assert hubspot_inputs([request]) == [["9001"]]


async def test_the_salesforce_transport_is_pinned_even_if_an_id_slips_past_the_check(
        salesforce_hosts: Hosts) -> None:
    hosts = salesforce_hosts
    hosts.crm.script = salesforce_api
    sync = salesforce_sync(hosts)
    slipped = hosts.other.url.split(":", 1)[1] + "/x"
    base = f"{hosts.crm.url}/services/data/v{sync.version}/sobjects/Account/"
    # What simple-salesforce would request: the other host, with our bearer token.
    assert urljoin(base, slipped).startswith(hosts.other.url)
    with pytest.raises(DeliveryError) as info:
        await _direct(sync, slipped)
    assert not info.value.retryable and "not the configured host" in info.value.reason
    assert hosts.crm.requests == []


@pytest.mark.parametrize("crm", ["hubspot", "salesforce"])
async def test_a_redirect_to_another_host_is_not_followed(
        crm: str, hubspot_hosts: Hosts, salesforce_hosts: Hosts) -> None:
    hosts = hubspot_hosts if crm == "hubspot" else salesforce_hosts
    hosts.crm.script = hosts.redirect_to_other
    change = make_change(external_ids={"hubspot_company_id": "9001",
                                       "salesforce_account_id": VALID_SF})
    sync = hubspot_sync(hosts) if crm == "hubspot" else salesforce_sync(hosts)
    with pytest.raises(DeliveryError) as info:
        await sync.send(record(change))
    assert not info.value.retryable and "redirect" in info.value.reason
    assert [r.status for r in hosts.crm.requests] == [302]


async def _direct(sync: SalesforceSync, account_id: str) -> Any:
    import asyncio

    return await asyncio.to_thread(sync._update, account_id, salesforce_fields(make_record()))

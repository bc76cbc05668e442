"""Reading the CRM on a schedule, against a real Kafka and Redis through the collector's
intake, with HubSpot's and Salesforce's APIs served on loopback as they answer: pages of
companies and accounts become group calls on the events topic, an unchanged record read
again counts once, a changed one again, a hostile field is dead-lettered without losing
the record, a Salesforce 401 renews the token once, and an answer that points elsewhere
is refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

from agents import metrics
from agents.collector import Collector
from agents.sinks.salesforce_oauth import SalesforceOAuth
from agents.sources.crm_read import CrmPoller, CrmReadError, HubSpotRead, SalesforceRead
from agents.sources.intake import Intake
from devstack.process import free_port
from devstack.topics import Record
from streams.dlq import DEAD_LETTERS
from streams.envelope import ENVELOPES, Envelope
from streams.events import Event
from streams.settings import Settings
from streams.sources.crm import TraitMap

pytestmark = pytest.mark.integration

TOKEN = "pat-eu1-0123456789abcdef"


@dataclass
class FakeCrm:
    """HubSpot's search and owners endpoints and Salesforce's token and query endpoints,
    answering from ``companies`` and ``accounts`` as the real APIs shape their answers."""

    companies: list[dict[str, Any]] = field(default_factory=list)
    accounts: list[dict[str, Any]] = field(default_factory=list)
    searches: list[dict[str, Any]] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    tokens_issued: int = 0
    refuse_first_query: bool = False
    padding: int = 0  # bytes of filler in every search answer (an answer too big to hold)
    next_url: str | None = None
    url: str = ""

    async def search(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"status": "error"}, status=401)
        body = await request.json()
        self.searches.append(body)
        since = int(body["filterGroups"][0]["filters"][0]["value"])
        matching = sorted((c for c in self.companies if c["modified"] >= since),
                          key=lambda c: c["modified"])
        start = int(body.get("after", 0))
        page = matching[start:start + body["limit"]]
        answer: dict[str, Any] = {"total": len(matching), "results": [
            {"id": c["id"], "properties": {**c["properties"],
                                           "hs_lastmodifieddate": str(c["modified"])}}
            for c in page]}
        if start + body["limit"] < len(matching):
            answer["paging"] = {"next": {"after": str(start + body["limit"])}}
        if self.padding:
            answer["filler"] = "x" * self.padding
        return web.json_response(answer)

    async def owner(self, request: web.Request) -> web.Response:
        owners = {"501": {"id": "501", "email": "dana@example.com", "firstName": "Dana",
                          "lastName": "Reyes"}}
        found = owners.get(request.match_info["id"])
        return web.json_response(found or {}, status=200 if found else 404)

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        self.tokens_issued += 1
        return web.json_response({"access_token": f"tok-{self.tokens_issued}",
                                  "instance_url": self.url})

    async def query(self, request: web.Request) -> web.Response:
        self.queries.append(request.query.get("q", request.path))
        if self.refuse_first_query and self.tokens_issued < 2:
            return web.json_response([{"errorCode": "INVALID_SESSION_ID"}], status=401)
        if request.headers.get("Authorization") != f"Bearer tok-{self.tokens_issued}":
            return web.json_response([{"errorCode": "INVALID_SESSION_ID"}], status=401)
        if "q" in request.query:
            first = self.accounts[:2]
            nxt = self.next_url or "/services/data/v61.0/query/01gD0000002HU6KIAW-2000"
            return web.json_response({"totalSize": len(self.accounts), "done": False,
                                      "nextRecordsUrl": nxt, "records": first})
        return web.json_response({"totalSize": len(self.accounts), "done": True,
                                  "records": self.accounts[2:]})


@pytest.fixture
async def crm() -> AsyncIterator[FakeCrm]:
    fake = FakeCrm()
    app = web.Application()
    app.router.add_post("/crm/v3/objects/companies/search", fake.search)
    app.router.add_get("/crm/v3/owners/{id}", fake.owner)
    app.router.add_post("/services/oauth2/token", fake.token)
    app.router.add_get("/services/data/v61.0/query", fake.query)
    app.router.add_get("/services/data/v61.0/query/{cursor}", fake.query)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


@pytest.fixture
async def intake(settings: Settings, create_topics: Callable[..., Any]
                 ) -> AsyncIterator[Intake]:
    settings = settings.replace(write_keys="wk-acme=acme")
    await create_topics(settings.topics.events, settings.topics.events_dlq,
                        partitions=settings.partitions)
    collector = Collector(settings)
    await collector.start()
    try:
        yield Intake(collector)
    finally:
        await collector.stop()


def _company(number: int, modified: int, **properties: Any) -> dict[str, Any]:
    return {"id": str(1000 + number), "modified": modified, "properties": {
        "telltale_account_id": f"acct-{number}", "renewal_date": "2027-06-30",
        "annualrevenue": str(12000 + number), "hubspot_owner_id": "501", **properties}}


def _hubspot(fake: FakeCrm) -> HubSpotRead:
    return HubSpotRead("acme", TOKEN, TraitMap("telltale_account_id", {
        "renewal_date": "renewal_date", "arr": "annualrevenue",
        "owner_email": "hubspot_owner_id", "owner": "hubspot_owner_id"}),
        api_url=fake.url, interval=60.0)


def _groups(records: list[Record]) -> list[Event]:
    found: list[Event] = []
    for record in records:
        decoded = ENVELOPES.decode(record.value)
        assert isinstance(decoded, Envelope)
        found.extend(e for e in decoded.events if e.message_id.startswith("hubspot-")
                     or e.message_id.startswith("salesforce-"))
    return found


async def test_hubspot_companies_become_account_traits_once(
        crm: FakeCrm, intake: Intake, consume_until: Callable[..., Any]) -> None:
    crm.companies = [_company(n, 1_700_000_000_000 + n) for n in range(230)]
    crm.companies.append(_company(230, 1_700_000_000_500, annualrevenue="NaN"))
    crm.companies.append(_company(231, 1_700_000_000_600, telltale_account_id="x\ny"))
    poller = CrmPoller([_hubspot(crm)], intake)

    first = await poller.poll(0)
    assert (first.records, first.accepted, first.dead_lettered) == (232, 231, 2)
    assert len(crm.searches) == 3, "232 companies are three pages of 100"
    settings = intake.collector.settings
    records = await consume_until(settings.topics.events,
                                  lambda rs: len(_groups(rs)) >= 231)
    groups = {e.account_id: e for e in _groups(records)}
    assert len(groups) == 231
    traits = groups["acct-7"].traits
    assert traits["renewal_date"] == "2027-06-30"
    assert traits["arr"] == 12007.0
    assert traits["owner_email"] == "dana@example.com"
    assert traits["owner"] == "Dana Reyes"
    assert traits["hubspot_company_id"] == "1007"
    assert "arr" not in groups["acct-230"].traits, "the NaN is left out, the rest kept"
    assert groups["acct-230"].traits["renewal_date"] == "2027-06-30"
    dead = await consume_until(settings.topics.events_dlq, lambda rs: len(rs) >= 2)
    reasons = sorted(DEAD_LETTERS.decode(r.value)["reason"] for r in dead)
    assert reasons == ["crm_record_without_account", "malformed_crm_field"]

    # The next poll asks only for what changed since; unchanged records count once.
    crm.searches.clear()
    again = await poller.poll(0)
    assert crm.searches[0]["filterGroups"][0]["filters"][0]["value"] == "1700000000600"
    assert again.accepted == 0
    crm.companies[5] = _company(5, 1_700_000_100_000, annualrevenue="99000")
    changed = await poller.poll(0)
    assert (changed.accepted, changed.duplicates) == (1, 0)
    records = await consume_until(
        settings.topics.events,
        lambda rs: any(e.traits.get("arr") == 99000.0 for e in _groups(rs)))
    assert sum(1 for e in _groups(records) if e.account_id == "acct-5") == 2


async def test_salesforce_accounts_with_a_token_renewed_once(
        crm: FakeCrm, intake: Intake, consume_until: Callable[..., Any]) -> None:
    crm.accounts = [{"attributes": {"type": "Account"}, "Id": f"001xx000003DGb{n}AAG",
                     "SystemModstamp": f"2026-11-2{n}T10:00:00.000+0000",
                     "Telltale_Account_Id__c": f"sf-{n}", "AnnualRevenue": 50000 + n,
                     "Owner": {"attributes": {"type": "User"}, "Email": "sam@example.com"}}
                    for n in range(1, 6)]
    crm.refuse_first_query = True
    read = SalesforceRead("acme", crm.url, SalesforceOAuth(
        token_url=crm.url + "/services/oauth2/token", client_id="3MVG9client",
        client_secret="secret-0123456789"), TraitMap("Telltale_Account_Id__c", {
            "arr": "AnnualRevenue", "owner_email": "Owner.Email"}), interval=60.0)
    poller = CrmPoller([read], intake)
    polled = await poller.poll(0)
    assert (polled.records, polled.accepted) == (5, 5)
    assert crm.tokens_issued == 2, "one 401, one new token, one retry"
    assert "SystemModstamp >= 1970-01-01T00:00:00Z" in crm.queries[0]
    records = await consume_until(intake.collector.settings.topics.events,
                                  lambda rs: len(_groups(rs)) >= 5)
    groups = {e.account_id: e for e in _groups(records)}
    assert groups["sf-3"].traits == {"salesforce_account_id": "001xx000003DGb3AAG",
                                     "arr": 50003.0, "owner_email": "sam@example.com"}
    crm.queries.clear()
    await poller.poll(0)
    assert "SystemModstamp >= 2026-11-25T10:00:00Z" in crm.queries[0]


async def test_a_next_page_pointing_elsewhere_is_refused(crm: FakeCrm,
                                                         intake: Intake) -> None:
    crm.accounts = [{"Id": f"001xx000003DGb{n}AAG", "Telltale_Account_Id__c": f"sf-{n}",
                     "SystemModstamp": "2026-11-21T10:00:00.000+0000"} for n in range(4)]
    crm.next_url = "https://evil.example/services/data/v61.0/query/x"
    read = SalesforceRead("acme", crm.url, SalesforceOAuth(
        token_url=crm.url + "/services/oauth2/token", client_id="3MVG9client",
        client_secret="secret-0123456789"), TraitMap("Telltale_Account_Id__c"))
    poller = CrmPoller([read], intake)
    with pytest.raises(CrmReadError, match="not a query path"):
        await poller.poll(0)
    failed = metrics.REGISTRY.get_sample_value("telltale_crm_reads_total",
                                               {"crm": "salesforce", "outcome": "failed"})
    assert await poller.poll_logged(0) is None, "a failed poll is logged, not raised"
    assert metrics.REGISTRY.get_sample_value(
        "telltale_crm_reads_total", {"crm": "salesforce", "outcome": "failed"}) == (
            (failed or 0) + 1)


async def test_workers_share_one_poll_per_interval(crm: FakeCrm, intake: Intake) -> None:
    crm.companies = [_company(1, 1_700_000_000_000)]
    redis = intake.collector.redis
    assert redis is not None
    key_prefix = f"{intake.collector.settings.topic_prefix}:crm-read:"

    async def claim(name: str, seconds: float) -> bool:
        return bool(await redis.set(key_prefix + name, "1", nx=True,
                                    px=int(seconds * 1000)))

    pollers = [CrmPoller([_hubspot(crm)], intake, claim=claim) for _ in range(3)]
    tasks = [asyncio.create_task(p.run()) for p in pollers]
    try:
        for _ in range(100):
            if crm.searches:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert len(crm.searches) == 1, "three workers, one poll"
    assert orjson.loads(await redis.get(key_prefix + "acme:hubspot")) == 1


async def test_an_answer_too_big_to_hold_fails_the_poll_and_takes_nothing(
        crm: FakeCrm, intake: Intake) -> None:
    from agents.sources.crm_read import MAX_ANSWER_BYTES

    crm.companies = [_company(n, 1_700_000_000_000 + n) for n in range(3)]
    crm.padding = MAX_ANSWER_BYTES + 1
    poller = CrmPoller([_hubspot(crm)], intake)
    with pytest.raises(CrmReadError, match="more than"):
        await poller.poll(0)
    crm.padding = 0  # the next interval reads it whole
    polled = await poller.poll(0)
    assert (polled.records, polled.accepted) == (3, 3)

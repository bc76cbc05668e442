"""The source routes against a real Kafka and Redis, through the collector's intake: a
signed webhook becomes one canonical event on the events topic however often the vendor
retries it; bad signatures, unknown sources and oversized bodies are refused; event
types Telltale does not read are acknowledged and counted; malformed bodies and
unattributed ones go to the dead-letter topic with their reason."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from agents import metrics
from agents.collector import Collector, create_collector_app
from agents.sources import MAX_BODY_BYTES, mount
from devstack.process import free_port
from devstack.topics import Record
from streams.dlq import DEAD_LETTERS
from streams.envelope import ENVELOPES, Envelope
from streams.events import Event, Source
from streams.settings import Settings
from tests.sources.fixtures import body
from tests.sources.vendors import (
    CHARGEBEE_PASSWORD,
    SOURCES,
    STRIPE_SECRET,
    segment_headers,
    signed,
    stripe_headers,
)

pytestmark = pytest.mark.integration


@dataclass
class Served:
    url: str
    settings: Settings

    async def post(self, path: str, payload: bytes, headers: dict[str, str]
                   ) -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as session, session.post(
                self.url + path, data=payload,
                headers={"Content-Type": "application/json", **headers}) as response:
            return response.status, orjson.loads(await response.read())


@pytest.fixture
async def served(settings: Settings, create_topics: Callable[..., Any], tmp_path: Path
                 ) -> AsyncIterator[Served]:
    (tmp_path / "sources.toml").write_text(SOURCES)
    settings = settings.replace(write_keys="wk-acme=acme",
                                sources_config=tmp_path / "sources.toml")
    await create_topics(settings.topics.events, settings.topics.events_dlq,
                        partitions=settings.partitions)
    collector = Collector(settings)
    app = create_collector_app(settings, collector)
    mount(app.router, collector)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Served(f"http://127.0.0.1:{port}", settings)
    finally:
        await runner.cleanup()


SIGNED = frozenset({"stripe", "zendesk", "intercom", "segment"})
FIXTURES = [("stripe", "stripe_subscription_updated", 2),
            ("chargebee", "chargebee_subscription_created", 1),
            ("zendesk", "zendesk_ticket_created", 1),
            ("zendesk", "zendesk_ticket_solved", 1),
            ("zendesk", "zendesk_satisfaction_rated", 1),
            ("intercom", "intercom_conversation_created", 1),
            ("intercom", "intercom_conversation_rated", 1),
            ("freshdesk", "freshdesk_ticket_created", 1),
            ("freshdesk", "freshdesk_ticket_resolved", 1),
            ("segment", "segment_track", 1),
            ("rudderstack", "segment_track", 1)]


@pytest.mark.parametrize(("source", "fixture", "events"), FIXTURES)
async def test_each_source_accepts_its_vendors_webhook_once(
        served: Served, source: str, fixture: str, events: int) -> None:
    payload = body(fixture)
    for attempt in range(2):
        path, headers = signed(source, payload)
        status, answer = await served.post(path, payload, headers)
        assert status == 200, answer
        assert (answer["accepted"], answer["duplicates"]) == (
            (events, 0) if attempt == 0 else (0, events)), answer
    if source in SIGNED:
        status, _ = await served.post(path, payload[:-2] + b" }", headers)
        assert status == 401, "a changed byte must not pass"
    status, _ = await served.post(f"/sources/acme/{source}", payload, {})
    assert status == 401, "no credentials must not pass"


def _events(records: list[Record]) -> list[Event]:
    found: list[Event] = []
    for record in records:
        decoded = ENVELOPES.decode(record.value)
        assert isinstance(decoded, Envelope)
        found.extend(decoded.events)
    return found


def _count(source: str, outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "telltale_source_events_total", {"source": source, "outcome": outcome})
    return value or 0.0


async def test_a_stripe_retry_is_one_event(served: Served,
                                           consume_until: Callable[..., Any]) -> None:
    payload = body("stripe_invoice_payment_failed")
    accepted = _count("stripe", "accepted")
    status, answer = await served.post("/sources/acme/stripe", payload,
                                       stripe_headers(payload))
    assert (status, answer["accepted"]) == (200, 1)
    for _ in range(2):  # Stripe retries with a fresh signature each time
        status, answer = await served.post("/sources/acme/stripe", payload,
                                           stripe_headers(payload))
        assert (status, answer["accepted"], answer["duplicates"]) == (200, 0, 1)
    assert _count("stripe", "accepted") == accepted + 1
    marker = body("stripe_invoice_paid")
    await served.post("/sources/acme/stripe", marker, stripe_headers(marker))
    records = await consume_until(
        served.settings.topics.events,
        lambda rs: any(e.message_id.startswith("stripe:evt_1NG9Aa") for e in _events(rs)))
    failed = [e for e in _events(records) if e.name == "Payment Failed"]
    assert len(failed) == 1
    event = failed[0]
    assert (event.workspace, event.account_id, event.source) == ("acme", "acme",
                                                                  Source.SEGMENT)
    assert event.message_id == "stripe:evt_1NG8Du2eZvKYlo2CUI79vXWy"
    assert event.properties["amount"] == 1200.0


async def test_bad_signatures_unknown_sources_and_big_bodies_are_refused(
        served: Served) -> None:
    payload = body("stripe_invoice_payment_failed")
    unauthorized = _count("stripe", "unauthorized")
    tampered = payload.replace(b"120000", b"120001")
    status, _ = await served.post("/sources/acme/stripe", tampered, stripe_headers(payload))
    assert status == 401
    status, _ = await served.post("/sources/acme/stripe", payload,
                                  stripe_headers(payload, STRIPE_SECRET + "x"))
    assert status == 401
    assert _count("stripe", "unauthorized") == unauthorized + 2
    for path in ("/sources/other/stripe", "/sources/other/zendesk", "/sources/acme/paypal"):
        status, _ = await served.post(path, payload, stripe_headers(payload))
        assert status == 404, path
    big = b'{"pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    status, _ = await served.post("/sources/acme/stripe", big, stripe_headers(big))
    assert status == 413


async def test_unread_types_are_acknowledged_and_bad_bodies_dead_lettered(
        served: Served, consume_until: Callable[..., Any]) -> None:
    refund = orjson.loads(body("stripe_invoice_paid"))
    refund["type"], refund["id"] = "charge.refunded", "evt_refund_1"
    ignored = _count("stripe", "ignored")
    raw = orjson.dumps(refund)
    status, answer = await served.post("/sources/acme/stripe", raw, stripe_headers(raw))
    assert status == 200 and "ignored" in answer
    assert _count("stripe", "ignored") == ignored + 1

    stranger = orjson.loads(body("stripe_invoice_paid"))
    stranger["data"]["object"]["customer"] = "cus_nobody"
    raw = orjson.dumps(stranger)
    status, answer = await served.post("/sources/acme/stripe", raw, stripe_headers(raw))
    assert (status, answer["dead_lettered"]) == (200, 1)
    status, answer = await served.post("/sources/acme/stripe", b"{not json",
                                       stripe_headers(b"{not json"))
    assert (status, answer["dead_lettered"]) == (200, 1)
    records = await consume_until(served.settings.topics.events_dlq,
                                  lambda rs: len(rs) >= 2)
    reasons = {DEAD_LETTERS.decode(r.value)["reason"]: DEAD_LETTERS.decode(r.value)
               for r in records}
    assert set(reasons) == {"unattributed", "not_json"}
    assert reasons["unattributed"]["source"] == "stripe"
    assert reasons["unattributed"]["payload"]["data"]["object"]["customer"] == "cus_nobody"


async def test_chargebee_needs_its_basic_auth(served: Served,
                                              consume_until: Callable[..., Any]) -> None:
    payload = body("chargebee_payment_failed")
    good = "Basic " + base64.b64encode(f"telltale:{CHARGEBEE_PASSWORD}".encode()).decode()
    status, _ = await served.post("/sources/acme/chargebee", payload, {})
    assert status == 401
    status, answer = await served.post("/sources/acme/chargebee", payload,
                                       {"Authorization": good})
    assert (status, answer["accepted"]) == (200, 1)
    records = await consume_until(served.settings.topics.events,
                                  lambda rs: any(e.account_id == "globex"
                                                 for e in _events(rs)))
    assert [e.name for e in _events(records) if e.account_id == "globex"] == [
        "Payment Failed"]


async def test_segment_destination_messages_are_verified_and_accepted(
        served: Served, consume_until: Callable[..., Any]) -> None:
    payload = body("segment_track")
    status, _ = await served.post("/sources/acme/segment", payload, {"X-Signature": "0" * 40})
    assert status == 401
    status, answer = await served.post("/sources/acme/segment", payload,
                                       segment_headers(payload))
    assert (status, answer["accepted"]) == (200, 1)
    unknown = orjson.dumps({**orjson.loads(payload), "type": "screenview"})
    status, answer = await served.post("/sources/acme/segment", unknown,
                                       segment_headers(unknown))
    assert status == 200 and "ignored" in answer
    records = await consume_until(served.settings.topics.events,
                                  lambda rs: any(e.user_id == "dana@acme.io"
                                                 for e in _events(rs)))
    event = next(e for e in _events(records) if e.user_id == "dana@acme.io")
    assert (event.name, event.account_id, event.source) == ("Report Published", "acme",
                                                             Source.SEGMENT)

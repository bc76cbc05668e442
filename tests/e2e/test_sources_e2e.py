"""From a vendor's webhook to a health change: a real ``telltale worker`` (collector with
its sources, resolve, score) gets the account through Segment's webhook destination and
then a failed invoice from Stripe, signed by Stripe's own library, twice as Stripe
retries; the account's health change names the payment failure, started once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from devstack.topics import Record
from streams.health_change import HEALTH_CHANGES
from streams.settings import Settings
from tests.sources.fixtures import payload
from tests.sources.vendors import SOURCES, signed

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

MODULES = ("agents.intake", "agents.resolve", "agents.score")


async def _post(url: str, raw: bytes, headers: dict[str, str]) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.post(
            url, data=raw, headers={"Content-Type": "application/json", **headers}) as answer:
        assert answer.status == 200, await answer.text()
        result: dict[str, Any] = orjson.loads(await answer.read())
        return result


async def _send(worker_url: str, source: str, raw: bytes) -> dict[str, Any]:
    """``raw`` posted to the worker as ``source`` sends it, signed afresh."""
    path, headers = signed(source, raw)
    return await _post(worker_url + path, raw, headers)


def _changes(records: list[Record]) -> list[dict[str, Any]]:
    return [dict(HEALTH_CHANGES.decode(r.value).wire) for r in records]


def _payment_failed(change: dict[str, Any]) -> bool:
    return any(s["type"] == "payment_failed" for s in change["signals_started"])


async def test_a_failed_stripe_invoice_starts_the_payment_failed_signal(
        settings: Settings, create_topics: Callable[..., Any], start_worker: Any,
        consume_until: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "sources.toml").write_text(SOURCES)
    settings = settings.replace(write_keys="wk-e2e=acme",
                                sources_config=tmp_path / "sources.toml")
    topics = settings.topics
    await create_topics(topics.events, topics.by_account, topics.health_changes,
                        partitions=settings.partitions)
    await create_topics(topics.events_dlq)
    args = [arg for module in MODULES for arg in ("--module", module)]
    worker = await asyncio.to_thread(start_worker, settings, *args, ready_timeout=180)
    try:
        when = datetime.now(UTC) - timedelta(minutes=5)
        await _send(worker.url, "segment", orjson.dumps({
            "type": "group", "messageId": "seg-group-1", "userId": "dana", "groupId": "acme",
            "timestamp": when.isoformat(),
            "traits": {"name": "Acme Corp", "seats": 30, "plan": "team", "arr": 42_000,
                       "renewal_date": (when + timedelta(days=75)).date().isoformat(),
                       "created_at": (when - timedelta(days=400)).isoformat()}}))
        await _send(worker.url, "segment", orjson.dumps({
            "type": "track", "messageId": "seg-track-1", "userId": "dana",
            "event": "Report Published", "timestamp": when.isoformat(),
            "context": {"groupId": "acme"}}))

        invoice = payload("stripe_invoice_payment_failed")
        invoice["created"] = int(time.time()) - 60
        invoice["data"]["object"]["subscription_details"] = None  # account from the mapping
        raw = orjson.dumps(invoice)
        # the second is Stripe's retry after a lost answer
        answers = [await _send(worker.url, "stripe", raw) for _ in range(2)]
        assert [(a["accepted"], a["duplicates"]) for a in answers] == [(1, 0), (0, 1)]

        records = await consume_until(
            topics.health_changes,
            lambda rs: any(_payment_failed(c) for c in _changes(rs)), timeout=150)
        changes = [c for c in _changes(records) if c["account_id"] == "acme"]
        started = [c for c in changes if _payment_failed(c)]
        assert len(started) == 1
        change = started[0]
        assert change["workspace"] == "acme"
        assert "payment" in change["explanation"].lower()
        assert "1,200" in change["explanation"]
        signal = next(s for s in change["signals_started"] if s["type"] == "payment_failed")
        assert signal["severity"] == "risk"
    finally:
        await asyncio.to_thread(worker.stop)

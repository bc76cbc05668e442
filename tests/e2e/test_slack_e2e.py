"""From an SDK client's calls to a Slack message: segment-analytics-python posts to the
collector of a real ``telltale worker`` running collector → resolve → score → notify (and
the page); a local server stands in for Slack's incoming webhook and records what arrives.
"""

from __future__ import annotations

import asyncio
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from streams.settings import Settings
from tests.fakes.http import RecordingServer

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300),
              pytest.mark.usefixtures("quiet_sdk_loggers")]

WRITE_KEY = "wk-slack-e2e"
TOKEN = "slack-e2e-token"
MODULES = ("agents.intake", "agents.resolve", "agents.score", "agents.notify",
           "agents.page")
REASON = "a payment of $1,200 failed"


def _get(url: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status), response.read().decode()


def _message_text(payload: dict[str, Any]) -> str:
    blocks = [Block.parse(b) for b in payload["blocks"]]
    assert all(b is not None for b in blocks), "slack_sdk did not recognise a block"
    return str([b.to_dict() for b in blocks if b is not None])


async def test_sdk_calls_end_as_a_valid_slack_alert_with_the_reason(
        settings: Settings, start_pipeline: Any, tmp_path: Path) -> None:
    from segment.analytics import Client as SegmentClient

    slack = await RecordingServer().start()
    settings = settings.replace(write_keys=f"{WRITE_KEY}=demo", api_tokens=f"{TOKEN}=demo",
                                slack_webhook_url=f"{slack.url}/services/T0/B0/E2E")
    worker = await start_pipeline(settings, MODULES)
    try:
        when = datetime.now(UTC) - timedelta(minutes=5)
        client = SegmentClient(WRITE_KEY, host=worker.url, upload_interval=0.05, timeout=10,
                               max_retries=3)
        client.identify("dana", {"name": "Dana Fox", "email": "dana@acme.example",
                                 "role": "admin"}, timestamp=when)
        client.group("dana", "acme", {
            "name": "Acme Corp", "seats": 30, "plan": "team", "arr": 42_000,
            "owner": "Riley Chen", "owner_slack_id": "U024BE7LH",
            "renewal_date": (when + timedelta(days=75)).date().isoformat(),
            "created_at": (when - timedelta(days=400)).isoformat(),
        }, timestamp=when)
        client.track("dana", "Logged In", {}, timestamp=when)
        client.track("dana", "Report Published", {"report": "weekly"}, timestamp=when)
        client.track("dana", "Payment Failed", {"amount": 1200}, timestamp=when)
        await asyncio.to_thread(client.flush)
        await asyncio.to_thread(client.shutdown)

        async with asyncio.timeout(150):
            while not any(REASON in _message_text(r.json()) for r in slack.requests):
                await asyncio.sleep(0.3)
        texts = [_message_text(r.json()) for r in slack.requests]
        alert = next(t for t in texts if REASON in t)
        assert "Acme Corp: health" in alert
        assert "<@U024BE7LH>" in alert
        link = f"{settings.public_url}/accounts/acme"
        assert link in alert
        status, page = await asyncio.to_thread(_get, link)
        assert status == 200 and "Acme Corp" in page and "<svg" in page
    finally:
        await asyncio.to_thread(worker.stop)
        await slack.stop()

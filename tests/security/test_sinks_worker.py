"""Hostile group traits sent by an SDK client to a real worker (collector → resolve → score
→ notify): the Slack alert that follows mentions nobody and escapes the account name, and
no CRM request is made with a forged record id, while a valid id on another account is
written to the configured HubSpot only."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streams.settings import Settings
from tests.agents.sinks.test_crm import HUBSPOT_BATCH_PATH, hubspot_api, hubspot_inputs
from tests.fakes.http import RecordingServer
from tests.security.test_sinks_slack import markup

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300),
              pytest.mark.usefixtures("quiet_sdk_loggers")]

WRITE_KEY = "wk-sinks-security"
MODULES = ("agents.intake", "agents.resolve", "agents.score", "agents.notify")
REASON = "a payment of $1,200 failed"


async def test_hostile_traits_from_an_sdk_reach_no_mention_and_no_crm_url(
        settings: Settings, start_pipeline: Any, tmp_path: Path) -> None:
    from segment.analytics import Client as SegmentClient

    slack, hubspot, elsewhere = [await RecordingServer().start() for _ in range(3)]
    hubspot.script = hubspot_api
    config = tmp_path / "notifications.toml"
    config.write_text(f"""
[slack.channels.cs]
webhook_url = "{slack.url}/services/T0/B0/X"

[hubspot]
access_token = "pat-test"
host = "{hubspot.url}"

[[rules]]
name = "everything"
to = ["slack:cs", "hubspot"]
""")
    settings = settings.replace(write_keys=f"{WRITE_KEY}=demo", notifications_config=config)
    worker = await start_pipeline(settings, MODULES)
    try:
        when = datetime.now(UTC) - timedelta(minutes=5)
        client = SegmentClient(WRITE_KEY, host=worker.url, upload_interval=0.05, timeout=10,
                               max_retries=3)
        other = elsewhere.url.removeprefix("http:")
        for user, account, traits in [
            ("dana", "acme", {"name": "<!channel> Acme", "owner": "Riley Chen",
                              "owner_slack_id": "<!here>", "hubspot_company_id": f"{other}/x",
                              "salesforce_account_id": f"{other}/services/x"}),
            ("sam", "globex", {"name": "Globex", "owner": "Kim Lee",
                               "owner_slack_id": "U0G9QF9C6", "hubspot_company_id": "9001"}),
        ]:
            client.identify(user, {"name": user.title()}, timestamp=when)
            client.group(user, account, {
                **traits, "seats": 30, "plan": "team", "arr": 42_000,
                "renewal_date": (when + timedelta(days=75)).date().isoformat(),
                "created_at": (when - timedelta(days=400)).isoformat()}, timestamp=when)
            client.track(user, "Logged In", {}, timestamp=when)
            client.track(user, "Payment Failed", {"amount": 1200}, timestamp=when)
        await asyncio.to_thread(client.flush)
        await asyncio.to_thread(client.shutdown)

        def alerts() -> dict[str, dict[str, Any]]:
            found: dict[str, dict[str, Any]] = {}
            for request in slack.requests:
                body = request.json()
                for name in ("Acme", "Globex"):
                    if REASON in body["text"] and name in body["text"]:
                        found[name] = body
            return found

        async with asyncio.timeout(150):
            while len(alerts()) < 2 or not hubspot.requests:
                await asyncio.sleep(0.3)
        await asyncio.sleep(1.0)  # let any CRM delivery still queued arrive
        acme, globex = alerts()["Acme"], alerts()["Globex"]
        assert markup(acme) == set()  # no <!channel>, no <!here>, no mention
        assert "&lt;!channel&gt; Acme" in acme["text"] and "Riley Chen" in str(acme["blocks"])
        assert markup(globex) == {"<@U0G9QF9C6>"}
        assert {r.path for r in hubspot.requests} == {HUBSPOT_BATCH_PATH}
        assert {i for ids in hubspot_inputs(hubspot.requests) for i in ids} == {"9001"}
        assert all(r.status == 200 for r in hubspot.requests)
        assert elsewhere.requests == []
    finally:
        await asyncio.to_thread(worker.stop)
        for server in (slack, hubspot, elsewhere):
            await server.stop()

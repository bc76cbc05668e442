"""The notify agent in a real worker, fed through Kafka by a writer that forges health
changes: forged and oversized messages are dead-lettered with their code and counted,
nothing of them reaches the read model, Slack, a webhook or HubSpot; hostile values the
schema allows are stopped at the sinks; a webhook that redirects is not followed."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from state.readmodel import ReadModel
from streams.health_change import MAX_CHANGE_BYTES
from streams.settings import Settings
from tests.agents.sinks.test_crm import HUBSPOT_BATCH_PATH, hubspot_api, hubspot_inputs
from tests.fakes.changes import make_change
from tests.fakes.http import Answer, Recorded, RecordingServer

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]


def _metrics(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        return str(response.read().decode())


async def test_forged_changes_on_the_topic_reach_nobody(
        settings: Settings, create_topics: Any, produce: Any, consume_until: Any,
        start_worker: Any, tmp_path: Path) -> None:
    slack, hook, hubspot, elsewhere = [await RecordingServer().start() for _ in range(4)]
    hubspot.script = hubspot_api

    def moved(_: Recorded) -> Answer:
        return 302, {"Location": f"{elsewhere.url}/stolen"}, b""

    moved_hook = await RecordingServer(moved).start()
    config = tmp_path / "notifications.toml"
    config.write_text(f"""
[slack.channels.cs]
webhook_url = "{slack.url}/services/T0/B0/X"

[[webhooks]]
name = "ops"
url = "{hook.url}/in"
secret = "s3cret"

[[webhooks]]
name = "moved"
url = "{moved_hook.url}/in"
secret = "s3cret"

[hubspot]
access_token = "pat-test"
host = "{hubspot.url}"

[delivery]
backoff_seconds = 0.05
max_backoff_seconds = 0.2

[[rules]]
name = "everything"
to = ["slack:cs", "hubspot"]
""")
    settings = settings.replace(notifications_config=config)
    topics = settings.topics
    await create_topics(topics.health_changes, topics.deliveries_dlq,
                        partitions=settings.partitions)
    worker = await asyncio.to_thread(start_worker, settings, "--module", "agents.lag",
                                     "--module", "agents.notify")
    readmodel = ReadModel.from_settings(settings)
    try:
        forged_score = make_change(account_id="forged1")
        forged_score["current"]["score"] = 1000
        forged_field = make_change(account_id="forged2", webhook_url="https://evil.example")
        oversized = orjson.dumps(make_change(account_id="forged3",
                                             explanation="x" * MAX_CHANGE_BYTES))
        hostile = make_change(account_id="hostile", account_name="<!channel> Hostile",
                              owner="Riley", owner_slack_id="!here",
                              external_ids={"hubspot_company_id": "//elsewhere/x"})
        genuine = make_change(account_id="acme", external_ids={"hubspot_company_id": "9001"})
        await produce(topics.health_changes, [
            (b"forged1", orjson.dumps(forged_score)), (b"forged2", orjson.dumps(forged_field)),
            (b"forged3", oversized), (b"forged4", b"\x00not json"),
            (b"hostile", orjson.dumps(hostile)), (b"acme", orjson.dumps(genuine))])

        def complete(records: list[Any]) -> bool:
            dead = [orjson.loads(r.value) for r in records]
            return (sum(d["destination"] == "readmodel" for d in dead) >= 4
                    and sum(d["destination"] == "webhook:moved" for d in dead) >= 2
                    and any(d["destination"] == "hubspot" for d in dead))

        records = await consume_until(topics.deliveries_dlq, complete, timeout=90)
        dead = [orjson.loads(r.value) for r in records]
        rejected = {d["code"]: d for d in dead if d["destination"] == "readmodel"}
        assert set(rejected) == {"bad_health_change", "too_large", "not_json"}
        paths = sorted(d["path"] for d in dead if d.get("code") == "bad_health_change")
        assert paths == ["", "/current/score"]
        assert all(len(d["raw"].encode()) <= 4096 for d in rejected.values())
        (refused,) = [d for d in dead if d["destination"] == "hubspot"]
        assert refused["ref"] == hostile["id"] and "not a HubSpot id" in refused["reason"]
        assert {d["ref"] for d in dead if d["destination"] == "webhook:moved"} == {
            hostile["id"], genuine["id"]}
        assert all("redirect" in d["reason"] for d in dead
                   if d["destination"] == "webhook:moved")

        await hook.wait_for(2, timeout=30)
        await slack.wait_for(2, timeout=30)
        await hubspot.wait_for(1, timeout=30)
        assert sorted(r.json()["account_id"] for r in hook.requests) == ["acme", "hostile"]
        bodies = [r.body.decode() for r in slack.requests]
        assert all("<!" not in body for body in bodies)
        assert any("&lt;!channel&gt; Hostile" in body and "Riley" in body for body in bodies)
        assert [r.path for r in hubspot.requests] == [HUBSPOT_BATCH_PATH]
        assert hubspot_inputs(hubspot.requests) == [["9001"]]
        assert elsewhere.requests == []
        assert [r.status for r in moved_hook.requests] == [302, 302]

        for account in ("forged1", "forged2", "forged3", "forged4"):
            assert await readmodel.account("demo", account) is None
        assert await readmodel.account("demo", "acme") is not None
        exposition = await asyncio.to_thread(_metrics, worker.metrics_url)
        assert 'telltale_events_dead_lettered_total{reason="bad_health_change"} 2.0' in (
            exposition)
        assert 'telltale_events_dead_lettered_total{reason="too_large"} 1.0' in exposition
    finally:
        await readmodel.clear()
        await readmodel.close()
        await asyncio.to_thread(worker.stop)
        for server in (slack, hook, hubspot, elsewhere, moved_hook):
            await server.stop()

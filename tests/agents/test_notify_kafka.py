"""The notify agent in a real worker: health changes produced to Kafka reach the read
model, the API, the page, a Slack stand-in and a webhook stand-in; the rebuild from the
topic gives the same Redis content as the live run."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
from slack_sdk.models.blocks import Block

from agents.notify import rebuild
from devstack.workers import settings_env
from state.readmodel import ReadModel
from streams.settings import Settings
from tests.fakes.changes import make_change, signal
from tests.fakes.http import Flaky, RecordingServer
from tests.fakes.portfolio import T0, portfolio_changes

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

TOKEN = "demo-api-token"


def _get(url: str, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status), response.read()


async def test_kafka_to_slack_webhook_read_model_and_rebuild(
        settings: Settings, create_topics: Any, produce: Any, consume_until: Any,
        start_worker: Any, tmp_path: Path) -> None:
    slack = await RecordingServer().start()
    hook = await RecordingServer(Flaky(failures=3, status=503)).start()
    config = tmp_path / "notifications.toml"
    config.write_text(f"""
[[webhooks]]
name = "ops"
url = "{hook.url}/telltale"
secret = "s3cret"

[delivery]
backoff_seconds = 0.05
max_backoff_seconds = 0.2
""")
    settings = settings.replace(slack_webhook_url=f"{slack.url}/services/T0/B0/XYZ",
                                notifications_config=config, api_tokens=f"{TOKEN}=demo")
    topics = settings.topics
    await create_topics(topics.health_changes, topics.deliveries_dlq,
                        partitions=settings.partitions)
    worker = await asyncio.to_thread(start_worker, settings, "--module", "agents.notify",
                                     "--module", "agents.api", "--module", "agents.page")
    readmodel = ReadModel.from_settings(settings)
    try:
        changes = portfolio_changes()
        messages = [(c["account_id"].encode(), orjson.dumps(c)) for c in changes]
        messages += messages[:5]  # redelivered duplicates
        messages.append((b"acme", b"{not a health change"))
        await produce(topics.health_changes, messages)
        await hook.wait_for(len(changes), timeout=60)
        # A burst of the same new alert: one Slack message, however often it arrives.
        silent = signal("nps_detractor", key="nps_detractor:acme", score=3,
                        text="NPS of 3 from Dana Fox, a detractor")
        burst = make_change(account_id="acme", account_name="Acme Corp", score=52,
                            previous_score=57, change_7d=-16, started=[silent],
                            now=T0 + 30 * 86_400)
        await produce(topics.health_changes,
                      [(b"acme", orjson.dumps(burst)) for _ in range(5)])
        await hook.wait_for(len(changes) + 1, timeout=60)
        await asyncio.sleep(1.0)  # let the Slack queue drain too

        accepted = hook.accepted()
        ids = [r.headers["X-Telltale-Change-Id"] for r in accepted]
        assert sorted(ids) == sorted([c["id"] for c in changes] + [burst["id"]])
        texts = []
        for request in slack.requests:
            blocks = [Block.parse(b) for b in request.json()["blocks"]]
            assert all(b is not None for b in blocks)
            texts.append(str([b.to_dict() for b in blocks if b is not None]))
        about_burst = [t for t in texts if "NPS of 3 from Dana Fox" in t]
        assert len(about_burst) == 1
        assert "Acme Corp: health 52 (−5)" in about_burst[0]
        assert any("Globex: health" in t and "<@U0G9QF9C6>" in t for t in texts)

        dead = await consume_until(topics.deliveries_dlq, lambda records: len(records) >= 1)
        reason = orjson.loads(dead[0].value)["reason"]
        assert reason.startswith("invalid health change")

        status, body = await asyncio.to_thread(
            _get, f"{worker.url}/api/v1/workspaces/demo/accounts?sort=score", TOKEN)
        page = orjson.loads(body)
        assert status == 200 and page["total"] == 8
        assert page["items"][0]["account_id"] == "globex"
        status, html = await asyncio.to_thread(_get, f"{worker.url}/today", TOKEN)
        assert status == 200 and b"Globex" in html and b"NPS of 3" not in html

        live = await readmodel.dump()
        acme = orjson.loads(live[f"{settings.topic_prefix}:rm:demo:acct:acme"])
        assert acme["score"] == 52 and acme["change_id"] == burst["id"]
        await readmodel.redis.set(f"{settings.topic_prefix}:rm:demo:acct:stray", b"{}")
        # The command as an operator runs it, configured from the environment.
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "agents.cli", "rebuild-read-model",
                             "--timeout", "60"],
            env={**os.environ, **settings_env(settings)}, capture_output=True, text=True,
            timeout=120)
        assert done.returncode == 0, done.stderr
        assert f"{len(changes) + 1} changes applied" in done.stdout
        assert await readmodel.dump() == live
        assert (await rebuild(settings, timeout=60)).changes == len(changes) + 1
        assert await readmodel.dump() == live
    finally:
        await readmodel.clear()
        await readmodel.close()
        await asyncio.to_thread(worker.stop)
        await slack.stop()
        await hook.stop()

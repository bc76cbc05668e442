from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from slack_sdk.models.blocks import Block

from agents.notify import Notifier
from agents.sinks import webhooks
from agents.sinks.routing import NotificationConfig, Rule
from state.readmodel import ReadModel
from streams.settings import Settings
from tests.fakes.changes import DAY, attention, make_change, reason, record, signal, with_attention
from tests.fakes.http import Flaky, RecordingServer

pytestmark = pytest.mark.integration


@pytest.fixture
async def slack_server() -> AsyncIterator[RecordingServer]:
    server = await RecordingServer().start()
    yield server
    await server.stop()


@pytest.fixture
async def hook_server() -> AsyncIterator[RecordingServer]:
    # Down for the first 6 requests (about 4 changes' worth of retries), then up.
    server = await RecordingServer(Flaky(failures=6, status=503)).start()
    yield server
    await server.stop()


class Harness:
    def __init__(self, notifier: Notifier, dead: list[dict[str, Any]]) -> None:
        self.notifier = notifier
        self.dead = dead


@pytest.fixture
async def harness(redis_url: str, unique_prefix: str, slack_server: RecordingServer,
                  hook_server: RecordingServer) -> AsyncIterator[Harness]:
    settings = Settings(redis_url=redis_url, topic_prefix=unique_prefix,
                        public_url="http://telltale.test")
    config = NotificationConfig.from_dict({
        "slack": {"channels": {"cs": {"webhook_url": slack_server.url + "/services/T/B/X"}}},
        "webhooks": [{"name": "ops", "url": hook_server.url + "/in", "secret": "s3cret"}],
        "delivery": {"backoff_seconds": 0.01, "max_backoff_seconds": 0.05,
                     "max_attempts": 10},
        "digest": {"channel": "cs", "hour": 8, "workspaces": {"other": 9}},
        "rules": [{"name": "Power user gone quiet", "signals": ["power_user_*"], "to": "slack:cs"},
                  {"name": "Band dropped", "reasons": ["band_changed"], "to": "slack:cs"}],
    })
    dead: list[dict[str, Any]] = []

    async def dead_letter(record: dict[str, Any]) -> None:
        dead.append(record)

    readmodel = ReadModel.from_settings(settings)
    notifier = Notifier(settings, config, readmodel, dead_letter)
    yield Harness(notifier, dead)
    await notifier.close()
    await readmodel.clear()
    await notifier.redis.delete(*[k async for k in notifier.redis.scan_iter(
        match=f"{unique_prefix}:notify:*")] or ["none"])
    await readmodel.close()


async def test_burst_of_identical_changes_sends_one_slack_message(
        harness: Harness, slack_server: RecordingServer) -> None:
    t0 = 1_780_000_000.0
    quiet = signal("power_user_inactive", key="power_user_inactive:acme-u0",
                   subject="acme-u0", days=22,
                   text="Dana, your main power user, has been inactive for 22 days")
    change = make_change(score=66, previous_score=68, started=[quiet], now=t0)
    outcomes = [await harness.notifier.handle(orjson.dumps(change)) for _ in range(5)]
    assert outcomes == ["notified"] + ["duplicate"] * 4
    # Later re-evaluations of the same signal carry new ids but are inside the cooldown.
    for i in range(1, 4):
        later = make_change(score=66 - i, previous_score=66, started=[quiet], now=t0 + i * 600)
        assert await harness.notifier.handle(orjson.dumps(later)) == "notified"
    await harness.notifier.dispatcher.drain(10)
    (request,) = slack_server.requests
    blocks = [Block.parse(b) for b in request.json()["blocks"]]
    assert all(b is not None for b in blocks)
    text = str([b.to_dict() for b in blocks if b is not None])
    assert "inactive for 22 days" in text and "<@U024BE7LH>" in text
    doc = await harness.notifier.readmodel.account("demo", "acme")
    assert doc is not None and doc.score == 63  # the read model still saw every change


async def test_webhook_down_for_a_while_gets_every_change_exactly_once(
        harness: Harness, hook_server: RecordingServer) -> None:
    t0 = 1_780_000_000.0
    changes = [make_change(account_id=f"a{i % 3}", score=50 - i, previous_score=60,
                           now=t0 + i * DAY) for i in range(12)]
    for change in changes:
        await harness.notifier.handle(orjson.dumps(change))
        await harness.notifier.handle(orjson.dumps(change))  # redelivered by Kafka
    await hook_server.wait_for(len(changes), timeout=20)
    await harness.notifier.dispatcher.drain(10)
    accepted = hook_server.accepted()
    assert sorted(r.headers["X-Telltale-Change-Id"] for r in accepted) == sorted(
        c["id"] for c in changes)
    assert len([r for r in hook_server.requests if r.status == 503]) == 6
    for request in accepted:
        assert webhooks.verify("s3cret", request.headers, request.body,
                               now=datetime.now(UTC).timestamp())
        assert request.json()["id"] == request.headers["X-Telltale-Change-Id"]
    # In order per destination: the retried first change went before the rest.
    assert [r.json()["id"] for r in accepted] == [c["id"] for c in changes]
    assert harness.dead == []


async def test_invalid_messages_are_dead_lettered_and_the_stream_goes_on(
        harness: Harness, slack_server: RecordingServer) -> None:
    assert await harness.notifier.handle(b"{not json") == "invalid"
    assert await harness.notifier.handle(orjson.dumps({"id": "x", "workspace": "demo"})) == (
        "invalid")
    assert await harness.notifier.handle(orjson.dumps([1, 2])) == "invalid"
    assert [d["reason"].split(":")[0] for d in harness.dead] == ["invalid health change"] * 3
    assert harness.dead[0]["raw"] == "{not json"
    assert await harness.notifier.handle(orjson.dumps(make_change())) == "notified"
    await harness.notifier.dispatcher.drain(10)
    assert len(slack_server.requests) == 1


async def test_slack_rate_limit_is_retried_after_the_requested_wait(
        harness: Harness, slack_server: RecordingServer) -> None:
    slack_server.script = Flaky(failures=2, status=429, retry_after="0")
    await harness.notifier.handle(orjson.dumps(make_change()))
    await harness.notifier.dispatcher.drain(10)
    assert [r.status for r in slack_server.requests] == [429, 429, 200]


async def test_daily_digest_goes_out_once_at_the_workspace_hour(
        harness: Harness, slack_server: RecordingServer) -> None:
    t0 = 1_780_000_000.0
    for i in range(5):
        quiet = attention(reason("account_inactive", since_day=int(t0 // DAY) - 21),
                          day=int(t0 // DAY), priority=100.0 - i)
        await harness.notifier.readmodel.apply(record(with_attention(make_change(
            account_id=f"risk{i}", account_name=f"Risky {i}", score=30 + i, previous_score=45,
            now=t0), quiet)))
    await harness.notifier.readmodel.apply(record(make_change(account_id="fine", score=90,
                                                       previous_score=88, now=t0)))
    await harness.notifier.readmodel.apply(record(make_change(workspace="other", now=t0)))
    at_eight = datetime(2026, 11, 23, 8, 0, 30, tzinfo=UTC)
    assert await harness.notifier.send_digests(datetime(2026, 11, 23, 7, 59, tzinfo=UTC)) == []
    assert await harness.notifier.send_digests(at_eight) == ["demo"]
    assert await harness.notifier.send_digests(at_eight.replace(minute=30)) == []
    await harness.notifier.dispatcher.drain(10)
    (request,) = slack_server.requests
    body = request.json()
    assert body["text"] == "5 accounts need attention today"
    assert "workspace" not in body
    assert "Risky 0" in str(body["blocks"][1])  # lowest score first
    assert all(Block.parse(b) is not None for b in body["blocks"])


async def test_unexpected_errors_dead_letter_and_redis_outages_retry(
        harness: Harness, unique_prefix: str) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    from devstack.process import free_port

    # A change whose users list is not a list is refused by the schema, before folding.
    odd = make_change(users="not a list of users")
    assert await harness.notifier.process(orjson.dumps(odd)) == "invalid"
    assert harness.dead[-1]["reason"].startswith("invalid health change")
    # So an unexpected error can only be a bug: a playbook rule that breaks on a valid
    # change stands in for one.
    broken = Rule(name="broken", to=("slack:cs",), min_arr="fifty")  # type: ignore[arg-type]
    harness.notifier.config = replace(harness.notifier.config, rules=(broken,))
    assert await harness.notifier.process(orjson.dumps(make_change())) == "invalid"
    assert harness.dead[-1]["reason"].startswith("unexpected error")
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0",
                        topic_prefix=unique_prefix)

    async def no_dead_letter(record: dict[str, Any]) -> None:
        raise AssertionError(record)

    offline = ReadModel.from_settings(settings)
    notifier = Notifier(settings, harness.notifier.config, offline, no_dead_letter)
    with pytest.raises(RedisConnectionError):
        await notifier.process(orjson.dumps(make_change()), redis_attempts=2)
    await notifier.close()
    await offline.close()


async def test_a_superseded_change_reaches_webhooks_but_neither_slack_nor_crm(
        harness: Harness, slack_server: RecordingServer, hook_server: RecordingServer) -> None:
    hook_server.script = lambda r: (200, {}, b"ok")
    t0 = 1_780_000_000.0
    newer = make_change(score=50, previous_score=75, now=t0 + 86_400)
    older = make_change(score=60, previous_score=75, now=t0)
    assert await harness.notifier.handle(orjson.dumps(newer)) == "notified"
    assert await harness.notifier.handle(orjson.dumps(older)) == "stale"
    await harness.notifier.dispatcher.drain(10)
    assert len(slack_server.requests) == 1
    assert [r.json()["id"] for r in hook_server.requests] == [newer["id"], older["id"]]
    doc = await harness.notifier.readmodel.account("demo", "acme")
    assert doc is not None and doc.score == 50

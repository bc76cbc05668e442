"""Each owner's morning digest: their own top accounts with reasons in words, at their
hour in their time zone, as a direct message or in a channel, once a day; everything from
events escaped for Slack."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from agents.notify import Notifier
from agents.sinks.dispatch import OwnerRoutes
from agents.sinks.routing import NotificationConfig
from state.readmodel import ReadModel
from streams.settings import Settings
from tests.fakes.changes import (
    DAY,
    TEST_PLAYBOOKS,
    attention,
    english,
    make_change,
    reason,
    record,
    with_attention,
)
from tests.fakes.http import Answer, Recorded, RecordingServer, ok

pytestmark = pytest.mark.integration

# 2026-11-23 07:00 UTC is 08:00 in Paris and 02:00 in New York.
SEVEN_UTC = datetime(2026, 11, 23, 7, 0, 30, tzinfo=UTC)
TODAY = int(SEVEN_UTC.timestamp() // DAY)


def owners_config(slack: RecordingServer) -> dict[str, Any]:
    return {
        "slack": {"channels": {"cs": {"webhook_url": slack.url + "/services/T/B/X"},
                               "emea": {"webhook_url": slack.url + "/services/T/B/EMEA"}},
                  "bot": {"token": "xoxb-test", "api_url": slack.url + "/api"}},
        "digest": {"channel": "cs", "hour": 8},
        "owners": {
            "riley@vendor.example": {"slack_user": "U024BE7LH", "time_zone": "Europe/Paris"},
            "sam@vendor.example": {"channel": "emea", "time_zone": "America/New_York"},
        },
    }


def slack_api(request: Recorded) -> Answer:
    """Incoming webhooks answer "ok"; the Web API answers JSON with "ok"."""
    if request.path.startswith("/api/"):
        return 200, {"Content-Type": "application/json"}, b'{"ok": true}'
    return ok(request)


@pytest.fixture
async def slack() -> AsyncIterator[RecordingServer]:
    server = await RecordingServer(slack_api).start()
    yield server
    await server.stop()


@pytest.fixture
async def notifier(redis_url: str, unique_prefix: str, slack: RecordingServer
                   ) -> AsyncIterator[Notifier]:
    settings = Settings(redis_url=redis_url, topic_prefix=unique_prefix,
                        public_url="http://telltale.test", worklist_per_owner=2)
    raw = owners_config(slack)
    config = NotificationConfig.from_dict(raw)
    owners = OwnerRoutes.from_dict(raw, config.slack_channels)

    dead: list[dict[str, Any]] = []

    async def dead_letter(record: dict[str, Any]) -> None:
        dead.append(record)

    readmodel = ReadModel.from_settings(settings)
    notifier = Notifier(settings, config, readmodel, dead_letter, owners=owners,
                        playbooks=TEST_PLAYBOOKS, render=english)
    yield notifier
    assert dead == []
    await notifier.close()
    await readmodel.clear()
    await notifier.redis.delete(*[k async for k in notifier.redis.scan_iter(
        match=f"{unique_prefix}:notify:*")] or ["none"])
    await readmodel.close()


async def apply(readmodel: ReadModel, account_id: str, owner: str, priority: float,
                name: str | None = None) -> None:
    quiet = reason("champion_quiet", subject=f"{account_id}-u0", since_day=TODAY - 9)
    change = make_change(account_id=account_id, account_name=name or account_id.title(),
                         owner=owner, now=SEVEN_UTC.timestamp() - DAY)
    await readmodel.apply(record(with_attention(change, attention(quiet, day=TODAY - 1,
                                                           priority=priority))))


def test_owner_routes_are_checked() -> None:
    channels = {"cs": "https://hooks.slack.com/x"}
    for owners, problem in (
            ({"a@x.example": {"slack_user": "U1AAA"}}, "needs slack.bot.token"),
            ({"a@x.example": {"channel": "nope"}}, "not a configured channel"),
            ({"a@x.example": {"channel": "cs", "time_zone": "Mars/Olympus"}}, "time zone"),
            ({"a@x.example": {"channel": "cs", "hour": 24}}, "between 0 and 23"),
            ({"a@x.example": {"channel": "cs", "slack_user": "U1AAA"}}, "exactly one"),
            ({"a@x.example": {"slack_user": "<!channel>"}}, "member id"),
            ({"a@x.example": {"channel": "cs", "colour": "red"}}, "unknown key")):
        with pytest.raises(ValueError, match=problem):
            OwnerRoutes.from_dict({"owners": owners}, channels)
    routes = OwnerRoutes.from_dict({"owners": {"a@x.example": {"channel": "cs"}}}, channels)
    assert routes.owners["a@x.example"].destination == "slack:cs"


async def test_each_owner_gets_their_list_at_their_hour_once(
        notifier: Notifier, slack: RecordingServer) -> None:
    readmodel = notifier.readmodel
    await apply(readmodel, "acme", "Riley Chen", 90.0, name="Acme & <Sons>")
    await apply(readmodel, "beta", "Riley Chen", 80.0)
    await apply(readmodel, "gamma", "Riley Chen", 70.0)  # third: beyond Riley's top 2
    await apply(readmodel, "delta", "Sam Ortiz", 60.0)

    assert await notifier.send_digests(SEVEN_UTC) == ["demo/riley@vendor.example"]
    assert await notifier.send_digests(SEVEN_UTC.replace(minute=40)) == []
    await notifier.dispatcher.drain(10)
    (dm,) = slack.requests
    assert dm.path == "/api/chat.postMessage"
    assert dm.headers["Authorization"] == "Bearer xoxb-test"
    body = dm.json()
    assert body["channel"] == "U024BE7LH" and body["text"] == "2 accounts need you today"
    assert all(Block.parse(b) is not None for b in body["blocks"])
    text = str(body["blocks"])
    assert "Acme &amp; &lt;Sons&gt;" in text and "<Sons>" not in text
    assert "Champion quiet acme-u0 for 9 days" in text
    assert "Beta" in text and "Gamma" not in text and "Delta" not in text

    # Sam's 08:00 in New York is 13:00 UTC; the team's channel digest is at 08:00 UTC.
    at_eight = SEVEN_UTC.replace(hour=8)
    assert await notifier.send_digests(at_eight) == ["demo"]
    at_one = SEVEN_UTC.replace(hour=13)
    assert await notifier.send_digests(at_one) == ["demo/sam@vendor.example"]
    await notifier.dispatcher.drain(10)
    team, sams = slack.requests[1:]
    assert team.path == "/services/T/B/X"
    assert team.json()["text"] == "4 accounts need attention today"
    assert sams.path == "/services/T/B/EMEA"
    assert sams.json()["text"] == "1 account needs you today"
    assert "Delta" in str(sams.json()["blocks"])


def test_the_shipped_example_owners_are_valid() -> None:
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "agents" / "sinks" / (
        "notifications.example.toml")
    config = NotificationConfig.load(example)
    routes = OwnerRoutes.load(example, config.slack_channels)
    assert {o: r.destination for o, r in routes.owners.items()} == {
        "riley@example.com": "slackdm:U024BE7LH", "sam@example.com": "slack:enterprise"}

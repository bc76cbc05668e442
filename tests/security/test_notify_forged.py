"""The notifier trusts no writer of the health-changes topic: a forged or malformed change
is dead-lettered with a code and the schema path of the problem, counted, and neither
stored in the read model nor forwarded to Slack, webhooks or a CRM. The real Notifier with
a real Redis; local servers stand in for Slack, a webhook receiver and HubSpot."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from agents import metrics
from agents.notify import DEAD_LETTER_PAYLOAD_BYTES, Notifier
from agents.sinks.routing import NotificationConfig
from scoring.attention import Attention, AttentionReason, ReasonType, Severity
from state.readmodel import ReadModel
from streams.health_change import MAX_CHANGE_BYTES, schema
from streams.settings import Settings
from tests.fakes.changes import make_change, signal
from tests.fakes.http import RecordingServer

pytestmark = pytest.mark.integration


@dataclass
class Stand:
    notifier: Notifier
    dead: list[dict[str, Any]]
    slack: RecordingServer
    hook: RecordingServer
    hubspot: RecordingServer

    def servers(self) -> list[RecordingServer]:
        return [self.slack, self.hook, self.hubspot]


def dead_lettered(code: str) -> float:
    value: float = metrics.EVENTS_DEAD_LETTERED.labels(reason=code)._value.get()
    return value


async def _stand(redis_url: str, prefix: str,
                 schema_document: dict[str, Any] | None = None) -> AsyncIterator[Stand]:
    slack, hook, hubspot = [await RecordingServer().start() for _ in range(3)]
    settings = Settings(redis_url=redis_url, topic_prefix=prefix,
                        public_url="http://telltale.test")
    config = NotificationConfig.from_dict({
        "slack": {"channels": {"cs": {"webhook_url": slack.url + "/services/T/B/X"}}},
        "webhooks": [{"name": "ops", "url": hook.url + "/in", "secret": "s3cret"}],
        "hubspot": {"access_token": "pat-test", "host": hubspot.url},
        "delivery": {"backoff_seconds": 0.01, "max_backoff_seconds": 0.05},
        "rules": [{"name": "everything", "to": ["slack:cs", "hubspot"]}],
    })
    dead: list[dict[str, Any]] = []

    async def dead_letter(record: dict[str, Any]) -> None:
        dead.append(record)

    readmodel = ReadModel.from_settings(settings)
    notifier = Notifier(settings, config, readmodel, dead_letter, schema=schema_document)
    yield Stand(notifier, dead, slack, hook, hubspot)
    await notifier.close()
    await readmodel.clear()
    keys = [k async for k in notifier.redis.scan_iter(match=f"{prefix}:notify:*")]
    if keys:
        await notifier.redis.delete(*keys)
    await readmodel.close()
    for server in (slack, hook, hubspot):
        await server.stop()


@pytest.fixture
async def stand(redis_url: str, unique_prefix: str) -> AsyncIterator[Stand]:
    async for s in _stand(redis_url, unique_prefix):
        yield s


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def forge(change: dict[str, Any]) -> None:
        *parents, last = path.strip("/").split("/")
        node: Any = change
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[int(last) if isinstance(node, list) else last] = value
    return forge


FORGERIES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("score out of range", _set("/current/score", 101), "/current/score"),
    ("score as text", _set("/current/score", "57"), "/current/score"),
    ("unknown band", _set("/current/band", "<!channel>"), "/current/band"),
    ("no id", lambda c: c.pop("id"), ""),
    ("empty id", _set("/id", ""), "/id"),
    ("wrong schema id", _set("/schema", "telltale.health-change/0"), "/schema"),
    ("event time not a time", _set("/event_time", "yesterday"), "/event_time"),
    ("unknown top-level field", _set("/forward_to", "https://evil.example"), ""),
    ("external id not text", _set("/external_ids/hubspot_company_id", 9001),
     "/external_ids/hubspot_company_id"),
    ("unknown external id", _set("/external_ids/zendesk_org_id", "1"), "/external_ids"),
    ("too many users", _set("/users", make_change(n_users=1)["users"] * 51), "/users"),
    ("signal without text", lambda c: c["signals_started"][0].pop("text"),
     "/signals_started/0"),
    ("reasons empty", _set("/reasons", []), "/reasons"),
    # Keys are event data too: the path that names one is bounded like the message.
    ("component with a long name", _set("/current/components/" + "<!channel>" * 50, {}),
     ("/current/components/" + "<!channel>" * 50)[:200]),
]


@pytest.mark.parametrize(("forgery", "path"), [(f, p) for _, f, p in FORGERIES],
                         ids=[name for name, _, _ in FORGERIES])
async def test_a_forged_change_is_dead_lettered_and_reaches_nobody(
        stand: Stand, forgery: Callable[[dict[str, Any]], None], path: str) -> None:
    change = make_change(started=[signal("power_user_inactive", subject="acme-u0", days=22)],
                         external_ids={"hubspot_company_id": "9001"})
    forgery(change)
    before = dead_lettered("bad_health_change")
    assert await stand.notifier.process(orjson.dumps(change)) == "invalid"
    await stand.notifier.dispatcher.drain(10)
    (record,) = stand.dead
    assert record["code"] == "bad_health_change" and record["path"] == path
    assert record["reason"].startswith(f"invalid health change: bad_health_change at {path or '/'}")
    assert dead_lettered("bad_health_change") == before + 1
    assert await stand.notifier.readmodel.account("demo", "acme") is None
    assert await stand.notifier.readmodel.workspaces() == []
    assert all(server.requests == [] for server in stand.servers())
    # The stream goes on: the next, genuine change is stored and delivered.
    genuine = make_change(external_ids={"hubspot_company_id": "9001"})
    assert await stand.notifier.process(orjson.dumps(genuine)) == "notified"
    await stand.notifier.dispatcher.drain(10)
    assert [len(server.requests) for server in stand.servers()] == [1, 1, 1]


async def test_size_and_nesting_are_bounded_before_parsing_and_schema_work(
        stand: Stand) -> None:
    huge = make_change(explanation="x" * MAX_CHANGE_BYTES)
    raw = orjson.dumps(huge)
    assert await stand.notifier.process(raw) == "invalid"
    deep = b'{"detail":' + b"[" * 1000 + b"]" * 1000 + b"}"
    assert await stand.notifier.process(deep) == "invalid"
    assert await stand.notifier.process(b"\xff{not json") == "invalid"
    assert [d["code"] for d in stand.dead] == ["too_large", "too_deep", "not_json"]
    for record in stand.dead:
        assert len(record["raw"].encode()) <= DEAD_LETTER_PAYLOAD_BYTES
    assert stand.dead[0]["raw"] == raw[:DEAD_LETTER_PAYLOAD_BYTES].decode()
    assert await stand.notifier.readmodel.workspaces() == []
    assert all(server.requests == [] for server in stand.servers())


#: Forgeries that pass the JSON Schema but not the typed record's decoding.
RECORD_FORGERIES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("a month 13 matches the time pattern", _set("/event_time", "2026-13-45T00:00:00Z"),
     "month must be in 1..12"),
    ("an attention reason key with a control character", _set("/attention", {
        "schema": "telltale.attention/1", "day": 20_600, "priority": 10.0,
        "reasons": [{"type": "champion_quiet", "severity": "high", "key": "quiet\x1fx",
                     "since_day": 20_590, "subject": None, "params": {}}],
        "expansion": [], "playbooks": []}), "attention reason key"),
]


@pytest.mark.parametrize(("forgery", "detail"), [(f, d) for _, f, d in RECORD_FORGERIES],
                         ids=[name for name, _, _ in RECORD_FORGERIES])
async def test_a_change_the_typed_record_refuses_is_dead_lettered_not_a_crash(
        stand: Stand, forgery: Callable[[dict[str, Any]], None], detail: str) -> None:
    change = make_change()
    forgery(change)
    assert await stand.notifier.process(orjson.dumps(change)) == "invalid"
    (record,) = stand.dead
    assert record["code"] == "bad_health_change" and detail in record["reason"]
    assert await stand.notifier.readmodel.workspaces() == []
    assert all(server.requests == [] for server in stand.servers())


async def test_values_the_schema_allows_are_still_checked_at_each_sink(stand: Stand) -> None:
    # The schema types these as strings only; the sinks hold the line on their syntax.
    forged = make_change(owner="Riley", owner_slack_id="!channel",
                         account_name="<!here> Acme",
                         external_ids={"hubspot_company_id": "../../owners/1"})
    assert await stand.notifier.process(orjson.dumps(forged)) == "notified"
    await stand.notifier.dispatcher.drain(10)
    (message,) = stand.slack.requests
    assert "<!" not in message.body.decode() and "Riley" in message.body.decode()
    assert stand.hubspot.requests == []
    (crm_dead,) = [d for d in stand.dead if d["destination"] == "hubspot"]
    assert crm_dead["reason"].startswith("permanent failure: hubspot update refused")


async def test_optional_top_level_fields_the_schema_declares_pass_through(
        redis_url: str, unique_prefix: str) -> None:
    attention = Attention(day=20_400, priority=42.0, reasons=(AttentionReason(
        ReasonType.CHAMPION_QUIET, Severity.HIGH, "champion_quiet:u1", 20_379, "u1",
        {"name": "Dana Reyes", "user_id": "u1"}),)).to_dict()
    async for stand in _stand(redis_url, unique_prefix, schema()):
        change = make_change(attention=attention, alert=True)
        assert await stand.notifier.process(orjson.dumps(change)) == "notified"
        await stand.notifier.dispatcher.drain(10)
        assert stand.dead == []
        (delivered,) = stand.hook.requests
        assert delivered.json()["attention"] == change["attention"]
        doc = await stand.notifier.readmodel.account("demo", "acme")
        assert doc is not None and doc.score == change["current"]["score"]

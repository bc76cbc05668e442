"""The notifier with per-workspace files: each workspace's changes go to its own Slack,
webhooks and CRM credentials, a workspace without a file to the shared ones, and each
team digest goes to the workspace's digest channel at its hour in its time zone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.notify import Notifier
from agents.workspaces import Workspaces
from state.readmodel import ReadModel
from streams.settings import Settings
from tests.agents.sinks.test_crm import hubspot_inputs
from tests.fakes.changes import DAY, attention, make_change, reason, record, with_attention
from tests.fakes.http import Answer, Recorded, RecordingServer

pytestmark = pytest.mark.integration


def hubspot_api(request: Recorded) -> Answer:
    """Any bearer token: the test looks at which one each company update came with."""
    results = [{"id": i["id"], "properties": {}, "archived": False,
                "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-06-01T00:00:00Z"}
               for i in request.json()["inputs"]]
    body = orjson.dumps({"status": "COMPLETE", "results": results,
                         "startedAt": "2026-06-01T00:00:00Z",
                         "completedAt": "2026-06-01T00:00:01Z"})
    return 200, {"Content-Type": "application/json"}, body


def acme_file(slack: RecordingServer, hubspot: RecordingServer) -> str:
    return f'''
time_zone = "Europe/Paris"
digest_channel = "cs-fr"
[notifications.slack.channels.cs-fr]
webhook_url = "{slack.url}/services/acme"
[notifications.hubspot]
access_token = "pat-acme"
host = "{hubspot.url}"
[[notifications.rules]]
name = "Band changed"
reasons = ["band_changed"]
to = ["slack:cs-fr"]
[notifications.digest]
hour = 9
[scoring.locale]
language = "fr"
currency = "EUR"
'''


def globex_file(hook: RecordingServer, hubspot: RecordingServer) -> str:
    return f'''
[[notifications.webhooks]]
name = "globex"
url = "{hook.url}/globex"
secret = "globex-secret"
[notifications.hubspot]
access_token = "pat-globex"
host = "{hubspot.url}"
'''


class Servers:
    def __init__(self) -> None:
        self.acme_slack = RecordingServer()
        self.shared_slack = RecordingServer()
        self.globex_hook = RecordingServer()
        self.hubspot = RecordingServer(hubspot_api)

    def all(self) -> list[RecordingServer]:
        return [self.acme_slack, self.shared_slack, self.globex_hook, self.hubspot]


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    found = Servers()
    for server in found.all():
        await server.start()
    yield found
    for server in found.all():
        await server.stop()


@pytest.fixture
async def notifier(redis_url: str, unique_prefix: str, servers: Servers, tmp_path: Path
                   ) -> AsyncIterator[Notifier]:
    directory = tmp_path / "workspaces"
    directory.mkdir()
    (directory / "acme.toml").write_text(acme_file(servers.acme_slack, servers.hubspot))
    (directory / "globex.toml").write_text(globex_file(servers.globex_hook, servers.hubspot))
    shared = tmp_path / "notifications.toml"
    shared.write_text(f'''
[slack.channels.shared]
webhook_url = "{servers.shared_slack.url}/services/shared"
[hubspot]
access_token = "pat-shared"
host = "{servers.hubspot.url}"
[[rules]]
name = "Band changed"
reasons = ["band_changed"]
to = ["slack:shared"]
[digest]
channel = "shared"
hour = 8
''')
    settings = Settings(redis_url=redis_url, topic_prefix=unique_prefix,
                        public_url="http://telltale.test", notifications_config=shared,
                        workspaces_dir=directory)
    workspaces = Workspaces.from_settings(settings)

    async def dead_letter(record: dict[str, Any]) -> None:
        raise AssertionError(f"nothing should be dead-lettered: {record}")

    readmodel = ReadModel.from_settings(settings)
    found = Notifier(settings, workspaces.shared.notifications, readmodel, dead_letter,
                     owners=workspaces.shared.owners, workspaces=workspaces)
    yield found
    await found.close()
    await readmodel.clear()
    await found.redis.delete(*[k async for k in found.redis.scan_iter(
        match=f"{unique_prefix}:notify:*")] or ["none"])
    await readmodel.close()


def _change(workspace: str, company: str, now: float = 1_780_000_000.0) -> dict[str, Any]:
    # 72 → 57: healthy to watch, an alert.
    return make_change(workspace=workspace, account_id=f"{workspace}-1", now=now,
                       external_ids={"hubspot_company_id": company})


async def test_each_workspace_reaches_only_its_own_destinations_and_credentials(
        notifier: Notifier, servers: Servers) -> None:
    for workspace, company in (("acme", "101"), ("globex", "202"), ("demo", "303")):
        assert await notifier.handle(orjson.dumps(_change(workspace, company))) == "notified"
    await notifier.dispatcher.drain(20)
    [acme] = servers.acme_slack.accepted()
    assert acme.path == "/services/acme" and b"acme-1" in acme.body
    [globex] = servers.globex_hook.accepted()
    assert globex.json()["workspace"] == "globex"
    [shared] = servers.shared_slack.accepted()
    assert b"demo-1" in shared.body, "a workspace without a file uses the shared file"
    tokens = {company: r.headers["Authorization"]
              for r in servers.hubspot.accepted() for company in hubspot_inputs([r])[0]}
    assert tokens == {"101": "Bearer pat-acme", "202": "Bearer pat-globex",
                      "303": "Bearer pat-shared"}


async def test_a_changed_file_moves_the_next_deliveries(
        notifier: Notifier, servers: Servers, tmp_path: Path) -> None:
    assert notifier.workspaces is not None and notifier.workspaces.poll() == []
    moved = await RecordingServer().start()
    try:
        path = tmp_path / "workspaces" / "acme.toml"
        path.write_text(acme_file(servers.acme_slack, servers.hubspot).replace(
            f"{servers.acme_slack.url}/services/acme", f"{moved.url}/services/acme-2"))
        (change,) = notifier.workspaces.poll()
        assert change.outcome == "applied"
        await notifier.handle(orjson.dumps(_change("acme", "101")))
        await notifier.dispatcher.drain(20)
        assert [r.path for r in moved.accepted()] == ["/services/acme-2"]
        assert servers.acme_slack.requests == []
    finally:
        await moved.stop()


async def test_a_team_digest_goes_out_at_the_hour_of_the_workspace_time_zone(
        notifier: Notifier, servers: Servers) -> None:
    t0 = 1_780_000_000.0
    for workspace in ("acme", "demo"):
        quiet = attention(reason("account_inactive", since_day=int(t0 // DAY) - 21),
                          day=int(t0 // DAY), priority=90.0)
        await notifier.readmodel.apply(record(with_attention(make_change(
            workspace=workspace, account_id=f"{workspace}-risk", account_name="Risky",
            score=30, previous_score=45, now=t0), quiet)))
    # 23 November 2026: Paris is UTC+1, so acme's 09:00 is 08:00 UTC, the shared hour.
    assert await notifier.send_digests(datetime(2026, 11, 23, 7, 0, tzinfo=UTC)) == []
    assert sorted(await notifier.send_digests(datetime(2026, 11, 23, 8, 0, tzinfo=UTC))) == [
        "acme", "demo"]
    # In June Paris is UTC+2: acme's 09:00 comes an hour before the shared 08:00 UTC.
    assert await notifier.send_digests(datetime(2026, 6, 1, 7, 0, tzinfo=UTC)) == ["acme"]
    assert await notifier.send_digests(datetime(2026, 6, 1, 8, 0, tzinfo=UTC)) == ["demo"]
    await notifier.dispatcher.drain(20)
    assert [r.path for r in servers.acme_slack.accepted()] == ["/services/acme"] * 2
    assert [r.path for r in servers.shared_slack.accepted()] == ["/services/shared"] * 2
    assert all("Risky" in r.body.decode() for r in servers.acme_slack.accepted())
    # Each in its workspace's language: acme's [scoring.locale] is French.
    assert all("1 compte demande de l'attention aujourd'hui" in r.body.decode()
               for r in servers.acme_slack.accepted())
    assert all("1 account needs attention today" in r.body.decode()
               for r in servers.shared_slack.accepted())

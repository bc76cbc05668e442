"""Two workspaces, each with its own file, in one real ``telltale worker`` on the real
broker: each workspace's changes carry its own scoring version and reach only its own
webhook and Slack channel; a file rewritten while the worker runs applies to that
workspace's next changes, the same state judged by the new rules, and leaves the other
workspace as it was."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.envelope import ENVELOPES, Envelope, kafka_key
from streams.events import Event, EventType, Source
from streams.settings import Settings
from tests.e2e.test_pipeline_support import DAY, T0, Message, group_event, produce_messages
from tests.fakes.http import RecordingServer

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

WORKER_ARGS = ("--module", "agents.score", "--module", "agents.notify")


def workspace_file(version: str, slack: RecordingServer, hook: RecordingServer, *,
                   healthy: int, watch: int) -> str:
    return f'''
time_zone = "Europe/Paris"
digest_channel = "cs"

[scoring]
version = "{version}"
[scoring.bands]
healthy = {healthy}
watch = {watch}
hysteresis = 0

[notifications.slack.channels.cs]
webhook_url = "{slack.url}/services/T0/B0/{version}"
[[notifications.webhooks]]
name = "feed"
url = "{hook.url}/telltale"
secret = "{version}-secret"
[[notifications.rules]]
name = "Band changed"
reasons = ["band_changed"]
to = ["slack:cs"]
'''


def activity(workspace: str, account: str, day: int, *, first: bool) -> Message:
    """One account's envelope for ``day``: its traits on the first day, then activity."""
    base = T0 + day * DAY + 9 * 3600
    events: list[Event] = []
    if first:
        events.append(group_event(workspace, account, f"{account}-u0", base, 0, {
            "name": f"Account {account}", "seats": 5, "plan": "pro", "arr": 24_000,
            "created_at": "2023-06-01T00:00:00Z", "renewal_date": "2024-12-31"}))
    for i, name in enumerate(("Logged In", "Report Published", "Workflow Completed")):
        events.append(Event(
            workspace=workspace, message_id=f"{account}-{day}-{i}", type=EventType.TRACK,
            timestamp=base + 60 * (i + 1), received_at=base + 60 * (i + 1),
            source=Source.KAFKA, name=name, user_id=f"{account}-u{i % 2}",
            account_id=account))
    return Message(kafka_key(workspace, account),
                   ENVELOPES.encode(Envelope(workspace, account, events)))


def versions(records: list[Any]) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(workspace, account) → [(config_version, band)] of its changes, in order."""
    out: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for record in records:
        change = orjson.loads(record.value)
        out.setdefault((change["workspace"], change["account_id"]), []).append(
            (change["config_version"], change["current"]["band"]))
    return out


async def wait_for_log(worker: Any, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in worker.log():
        assert time.monotonic() < deadline, f"{text!r} not logged; log:\n{worker.log()[-3000:]}"
        await asyncio.sleep(0.2)


async def test_each_workspace_is_scored_and_notified_by_its_own_file_changed_live(
        settings: Settings, kafka_bootstrap: str, create_topics: Any, consume_until: Any,
        start_worker: Any, tmp_path: Path) -> None:
    servers = {name: await RecordingServer().start()
               for name in ("acme-slack", "acme-hook", "globex-slack", "globex-hook")}
    directory = tmp_path / "workspaces"
    directory.mkdir()
    # acme: nearly every score is healthy; globex: the default cut-offs.
    acme = directory / "acme.toml"
    acme.write_text(workspace_file("acme-1", servers["acme-slack"], servers["acme-hook"],
                                   healthy=2, watch=1))
    (directory / "globex.toml").write_text(workspace_file(
        "globex-1", servers["globex-slack"], servers["globex-hook"], healthy=70, watch=40))
    settings = settings.replace(replay=True, workspaces_dir=directory,
                                workspaces_poll_seconds=0.5)
    names = settings.topics
    await create_topics(names.by_account, names.health_changes,
                        partitions=settings.partitions)
    await create_topics(names.events_dlq, names.deliveries_dlq)
    worker = await asyncio.to_thread(start_worker, settings, *WORKER_ARGS,
                                     ready_timeout=180)
    try:
        await produce_messages(kafka_bootstrap, names.by_account, [
            activity("acme", "a1", 0, first=True), activity("globex", "g1", 0, first=True)])
        first = versions(await consume_until(
            names.health_changes, lambda rs: {("acme", "a1"), ("globex", "g1")}
            <= set(versions(rs)), timeout=90))
        assert first[("acme", "a1")][0] == ("acme-1", "healthy")
        assert first[("globex", "g1")][0][0] == "globex-1"

        # acme's file is replaced while the worker runs: every score is now at risk.
        staged = directory / "acme.toml.new"
        staged.write_text(workspace_file("acme-2", servers["acme-slack"],
                                         servers["acme-hook"], healthy=100, watch=99))
        staged.replace(acme)
        await wait_for_log(worker, "workspace acme: configuration applied")
        await produce_messages(kafka_bootstrap, names.by_account, [
            activity("acme", "a1", 1, first=False), activity("globex", "g1", 1, first=False),
            activity("acme", "a2", 1, first=True), activity("globex", "g2", 1, first=True)])
        done = {("acme", "a2"), ("globex", "g2")}
        records = await consume_until(
            names.health_changes,
            lambda rs: done <= set(versions(rs))
            and any(v == "acme-2" for v, _ in versions(rs).get(("acme", "a1"), [])),
            timeout=90)
        after = versions(records)
        # The account's state from before, judged by the new cut-offs: it changes band.
        assert after[("acme", "a1")][-1] == ("acme-2", "at_risk"), after[("acme", "a1")]
        assert after[("acme", "a2")] == [("acme-2", "at_risk")]
        assert {v for v, _ in after[("globex", "g1")]} == {"globex-1"}
        assert {v for v, _ in after[("globex", "g2")]} == {"globex-1"}

        # Every change went to its own workspace's webhook, and only there.
        changes = [orjson.loads(r.value) for r in records]
        for workspace in ("acme", "globex"):
            ids = sorted(c["id"] for c in changes if c["workspace"] == workspace)
            hook = servers[f"{workspace}-hook"]
            await hook.wait_for(len(ids), timeout=30)
            assert sorted(r.json()["id"] for r in hook.accepted()) == ids
        # The band change is an alert: to acme's Slack channel, by its new file's URL.
        deadline = time.monotonic() + 30
        while not [r for r in servers["acme-slack"].accepted()
                   if r.path == "/services/T0/B0/acme-2" and b"Account a1" in r.body]:
            assert time.monotonic() < deadline, servers["acme-slack"].requests
            await asyncio.sleep(0.2)
        assert not [r for r in servers["globex-slack"].requests if b"Account a" in r.body]
        assert not [r for r in servers["acme-slack"].requests if b"Account g" in r.body]

        with urllib.request.urlopen(f"{worker.metrics_url}/metrics", timeout=10) as response:
            exposition = response.read().decode()
        info = [sample.labels for family in text_string_to_metric_families(exposition)
                if family.name == "telltale_workspace_config_info"
                for sample in family.samples if sample.value == 1]
        assert sorted((i["workspace"], i["scoring_version"]) for i in info) == [
            ("acme", "acme-2"), ("globex", "globex-1")], "the old version's series is gone"
    finally:
        for server in servers.values():
            await server.stop()

"""Real SDK clients → collector → Kafka → resolve agent (a real ``telltale worker``) →
canonical, account-attributed events on the by-account topic.

Python clients (segment-analytics-python, rudder-sdk-python, posthog) post to a collector
in this process, where faults can be injected to prove that client retries never double
count; the Node client (@segment/analytics-node, installed with npm) posts to the
collector served by the worker itself, which shows one process running everything.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agents.collector import Collector, create_collector_app
from devstack.process import free_port
from devstack.topics import Record
from devstack.workers import WorkerProcess, start_worker
from streams.envelope import ENVELOPES, Envelope
from streams.events import Event, EventType, Source
from streams.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300),
              pytest.mark.usefixtures("quiet_sdk_loggers")]

KEY = "wk-e2e"
ROOT = Path(__file__).resolve().parents[2]
NODE_SCRIPT = Path(__file__).resolve().parent / "node" / "send_events.mjs"


@dataclass
class Pipeline:
    settings: Settings
    worker: WorkerProcess
    collector: Collector
    collector_url: str


async def _start(settings: Settings, tmp_path: Path, create_topics: Callable[..., Any],
                 modules: list[str]) -> tuple[WorkerProcess, web.AppRunner, Pipeline]:
    topics = settings.topics
    await create_topics(topics.events, topics.by_account, partitions=settings.partitions)
    await create_topics(topics.events_dlq)
    args = [arg for module in modules for arg in ("--module", module)]
    worker = await asyncio.to_thread(start_worker, settings, args,
                                     log_path=tmp_path / "worker.log", ready_timeout=180)
    collector = Collector(settings)
    runner = web.AppRunner(create_collector_app(settings, collector))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return worker, runner, Pipeline(settings, worker, collector, f"http://127.0.0.1:{port}")


@pytest.fixture
async def pipeline(settings: Settings, tmp_path: Path, create_topics: Callable[..., Any]
                   ) -> AsyncIterator[Pipeline]:
    settings = settings.replace(write_keys=f"{KEY}=acme")
    worker, runner, pipe = await _start(settings, tmp_path, create_topics,
                                        ["agents.resolve"])
    try:
        yield pipe
    finally:
        await runner.cleanup()
        await asyncio.to_thread(worker.stop)


def _events(records: list[Record]) -> list[Event]:
    found: list[Event] = []
    for record in records:
        decoded = ENVELOPES.decode(record.value)
        if isinstance(decoded, Envelope):
            found.extend(decoded.events)
    return found


def _of(records: list[Record], user: str) -> list[Event]:
    return [e for e in _events(records) if e.user_id == user]



def _assert_attributed(events: list[Event], user: str, account: str, when: datetime,
                       source: Source) -> None:
    assert {e.account_id for e in events} == {account}
    assert {e.user_id for e in events} == {user}
    assert {e.source for e in events} == {source}
    for event in events:
        # Same clock on both ends: the corrected time is the client's time, within the
        # time the request took.
        assert abs(event.timestamp - when.timestamp()) < 5.0, event


async def test_python_sdks_reach_the_by_account_topic_exactly_once(
    pipeline: Pipeline, consume_until: Callable[..., Any]
) -> None:
    from posthog import Posthog
    from rudderstack.analytics import Client as RudderClient
    from segment.analytics import Client as SegmentClient

    url = pipeline.collector_url
    when = datetime.now(UTC) - timedelta(hours=1)

    # Segment: the first answer is a 500 after Kafka acknowledged the batch (the reply
    # "got lost"); the client resends the same message ids.
    segment = SegmentClient(KEY, host=url, upload_interval=0.05, timeout=5, max_retries=3)
    pipeline.collector.inject_fault("error_after_ack")
    segment.identify("seg-u", {"email": "seg@example.test", "role": "admin"}, timestamp=when)
    segment.group("seg-u", "acct-seg", {"name": "Seg Co", "seats": 10, "plan": "pro"},
                  timestamp=when)
    segment.track("seg-u", "Report Published", {"report": "weekly"}, timestamp=when)
    segment.page("seg-u", name="Pricing", timestamp=when)
    await asyncio.to_thread(segment.flush)

    # RudderStack (gzip by default): a track before the user's group call waits for it.
    rudder = RudderClient(KEY, host=url, upload_interval=0.05, timeout=5, max_retries=3)
    rudder.track("rud-u", "Workflow Completed", {"steps": 3}, timestamp=when)
    await asyncio.to_thread(rudder.flush)
    rudder.identify("rud-u", {"email": "rud@example.test"}, timestamp=when)
    rudder.group("rud-u", "acct-rud", {"name": "Rud Co"}, timestamp=when)
    rudder.page("rud-u", name="Upgrade", timestamp=when)
    await asyncio.to_thread(rudder.flush)

    # PostHog: the first request times out on the client's side after being accepted.
    posthog = Posthog(KEY, host=url, flush_interval=0.05, timeout=1, max_retries=3,
                      enable_local_evaluation=False)
    pipeline.collector.inject_fault("delay_after_ack", delay=2.5)
    posthog.capture("Report Published", distinct_id="ph-u", timestamp=when,
                    groups={"company": "acct-ph"}, properties={"report": "daily"})
    posthog.group_identify("company", "acct-ph", {"name": "PH Co", "arr": 60000},
                           timestamp=when)
    posthog.set(distinct_id="ph-u", properties={"email": "ph@example.test"}, timestamp=when)
    posthog.capture("$pageview", distinct_id="ph-u", timestamp=when,
                    groups={"company": "acct-ph"}, properties={"$pathname": "/pricing"})
    await asyncio.to_thread(posthog.flush)
    for client in (segment, rudder, posthog):
        await asyncio.to_thread(client.shutdown)

    # A final event of each user: anything duplicated would have arrived before it
    # (one user's events share one partition from the collector to the by-account topic).
    segment = SegmentClient(KEY, host=url, upload_interval=0.05)
    for user in ("seg-u", "rud-u", "ph-u"):
        segment.track(user, "Logged In", {"marker": True}, timestamp=when)
    await asyncio.to_thread(segment.flush)
    await asyncio.to_thread(segment.shutdown)

    def complete(records: list[Record]) -> bool:
        return all(any(e.properties.get("marker") for e in _of(records, user))
                   for user in ("seg-u", "rud-u", "ph-u"))

    records = await consume_until(pipeline.settings.topics.by_account, complete,
                                  timeout=90)
    seg = [e for e in _of(records, "seg-u") if not e.properties.get("marker")]
    rud = [e for e in _of(records, "rud-u") if not e.properties.get("marker")]
    ph = [e for e in _events(records)
          if (e.user_id == "ph-u" or e.account_id == "acct-ph")
          and not e.properties.get("marker")]

    assert sorted((e.type.value, e.name) for e in seg) == [
        ("group", None), ("identify", None), ("page", "Pricing"),
        ("track", "Report Published")]
    assert len({e.message_id for e in seg}) == 4  # the retried batch counted once
    _assert_attributed(seg, "seg-u", "acct-seg", when, Source.SEGMENT)
    identify = next(e for e in seg if e.type is EventType.IDENTIFY)
    assert identify.traits == {"email": "seg@example.test", "role": "admin"}
    group = next(e for e in seg if e.type is EventType.GROUP)
    assert group.traits == {"name": "Seg Co", "seats": 10, "plan": "pro"}

    assert sorted((e.type.value, e.name) for e in rud) == [
        ("group", None), ("identify", None), ("page", "Upgrade"),
        ("track", "Workflow Completed")]
    _assert_attributed(rud, "rud-u", "acct-rud", when, Source.RUDDERSTACK)
    assert next(e for e in rud if e.type is EventType.IDENTIFY).traits == {
        "email": "rud@example.test"}

    assert sorted((e.type.value, e.name or "") for e in ph) == [
        ("group", ""), ("identify", ""), ("page", "/pricing"), ("track", "Report Published")]
    assert len({e.message_id for e in ph}) == 4  # the timed-out request counted once
    assert {e.account_id for e in ph} == {"acct-ph"}
    assert {e.source for e in ph} == {Source.POSTHOG}
    person = [e for e in ph if e.type is not EventType.GROUP]
    for event in person:
        assert event.user_id == "ph-u"
    for event in ph:
        if event.type is not EventType.IDENTIFY:  # posthog.set has no timestamp option
            assert abs(event.timestamp - when.timestamp()) < 5.0
    assert next(e for e in ph if e.type is EventType.GROUP).traits == {
        "name": "PH Co", "arr": 60000}

    markers = [e for e in _events(records) if e.properties.get("marker")]
    assert len(markers) == 3
    ids = [e.message_id for e in _events(records)]
    assert len(ids) == len(set(ids)), "an event reached the by-account topic twice"


def _npm_install() -> None:
    if (ROOT / "node_modules" / "@segment" / "analytics-node").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=ROOT, check=True,
                   capture_output=True, timeout=240)


async def test_node_sdk_through_the_worker_served_collector(
    settings: Settings, tmp_path: Path, create_topics: Callable[..., Any],
    consume_until: Callable[..., Any]
) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    await asyncio.to_thread(_npm_install)
    settings = settings.replace(write_keys=f"{KEY}=acme")
    worker, runner, _unused = await _start(settings, tmp_path, create_topics,
                                           ["agents.intake", "agents.resolve"])
    try:
        when = datetime.now(UTC) - timedelta(minutes=30)
        stamp = when.isoformat().replace("+00:00", "Z")
        done = await asyncio.to_thread(
            subprocess.run, [node, str(NODE_SCRIPT), worker.url, KEY, "node-u", "acct-node",
                             stamp], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        records = await consume_until(settings.topics.by_account,
                                      lambda rs: len(_of(rs, "node-u")) >= 4, timeout=60)
    finally:
        await runner.cleanup()
        await asyncio.to_thread(worker.stop)
    events = _of(records, "node-u")
    assert sorted((e.type.value, e.name) for e in events) == [
        ("group", None), ("identify", None), ("page", "Pricing"),
        ("track", "Report Published")]
    _assert_attributed(events, "node-u", "acct-node", when, Source.SEGMENT)
    assert all(e.message_id.startswith("node-next-") for e in events)
    assert next(e for e in events if e.type is EventType.GROUP).traits == {
        "name": "Node Co", "seats": 12, "plan": "pro"}

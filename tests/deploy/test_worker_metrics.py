"""A running ``telltale worker`` serves a lint-clean ``/metrics`` after real traffic, and
its counters moved by exactly what was sent."""

from __future__ import annotations

import base64
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents.app import MODULES
from devstack.process import free_port
from devstack.workers import WorkerProcess
from streams.settings import Settings
from tests.deploy.promtool import promtool

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

WRITE_KEY = "metrics-test-key"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


PIPELINE = ("agents.intake", "agents.resolve", "agents.score", "agents.notify",
            "agents.lag")


def _worker_args() -> list[str]:
    """The production worker (``agents.app.MODULES``) once it holds the whole pipeline;
    until then exactly the pipeline's modules: collector → resolve → score → notify, with
    ``/metrics`` and the samplers."""
    if set(PIPELINE) <= set(MODULES):
        return []
    return [arg for module in PIPELINE for arg in ("--module", module)]


def _get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


def _post(url: str, body: bytes, write_key: str) -> int:
    auth = base64.b64encode(f"{write_key}:".encode()).decode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Basic {auth}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _scrape(worker: WorkerProcess) -> tuple[bytes, Samples]:
    status, body, content_type = _get(worker.metrics_url + "/metrics")
    assert status == 200, body[:500]
    assert content_type.startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return body, samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _wait_for(worker: WorkerProcess, check: Callable[[Samples], bool],
              timeout: float = 60.0) -> tuple[bytes, Samples]:
    deadline = time.monotonic() + timeout
    while True:
        body, samples = _scrape(worker)
        if check(samples) or time.monotonic() > deadline:
            return body, samples
        time.sleep(0.5)


def _track(i: int, **extra: Any) -> dict[str, Any]:
    return {"type": "track", "messageId": f"m-{uuid.uuid4().hex}", "userId": f"u{i}",
            "event": "Report Published", "context": {"groupId": "acme",
                                                     "library": {"name": "analytics-python"}},
            "timestamp": "2026-11-20T10:00:00Z", **extra}


@pytest.fixture
def worker(settings: Settings, start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    configured = settings.replace(write_keys=f"{WRITE_KEY}=demo", metrics_interval=0.5)
    return start_worker(configured, *_worker_args(), ready_timeout=150)


def test_scrape_after_traffic_passes_promtool_and_counts_exactly(
        worker: WorkerProcess, promtool_bin: Path) -> None:
    _, before = _scrape(worker)
    tracks = [_track(i) for i in range(4)]
    first = {"batch": [
        *tracks,
        {"type": "identify", "messageId": f"m-{uuid.uuid4().hex}", "userId": "u0",
         "traits": {"email": "dana@acme.test"}},
        {"type": "group", "messageId": f"m-{uuid.uuid4().hex}", "userId": "u0",
         "groupId": "acme", "traits": {"name": "Acme", "arr": 42000}},
        _track(9, event=""),                              # no event name
        {**_track(8), "userId": None},                    # nobody did it
    ]}
    url = worker.url + "/v1/batch"
    assert _post(url, orjson.dumps(first), WRITE_KEY) == 200
    retry = {"batch": tracks[:2]}                          # an SDK retrying two events
    assert _post(url, orjson.dumps(retry), WRITE_KEY) == 200
    assert _post(url, b"{not json", WRITE_KEY) == 400
    assert _post(url, orjson.dumps(first), "wrong-key") == 401

    events_topic = worker.settings.topics.events

    def events_lag(samples: Samples) -> list[float]:
        return [value for (name, labels), value in samples.items()
                if name == "telltale_consumer_lag_messages"
                and dict(labels)["topic"] == events_topic]

    def accounts(samples: Samples, name: str = "telltale_accounts") -> float:
        return sum(value for (metric, labels), value in samples.items()
                   if metric == name and dict(labels)["workspace"] == "demo")

    # Settled: Acme was scored, its change reached the read model and the portfolio, and
    # the events topic was consumed and committed up to its high-water mark.
    body, after = _wait_for(worker, lambda s: (
        accounts(s) == 1 and bool(events_lag(s)) and sum(events_lag(s)) == 0))

    def moved(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert moved("telltale_events_received_total", source="segment", type="track") == 8
    assert moved("telltale_events_received_total", source="segment", type="identify") == 1
    assert moved("telltale_events_received_total", source="segment", type="group") == 1
    assert moved("telltale_events_accepted_total", source="segment") == 6
    assert moved("telltale_events_deduplicated_total", source="segment") == 2
    assert moved("telltale_events_dead_lettered_total", reason="missing_event_name") == 1
    assert moved("telltale_events_dead_lettered_total", reason="missing_identity") == 1
    assert moved("telltale_http_requests_total", route="/v1/batch", status="200") == 2
    assert moved("telltale_http_requests_total", route="/v1/batch", status="400") == 1
    assert moved("telltale_http_requests_total", route="/v1/batch", status="401") == 1

    # Every accepted event went through resolve; Acme's tracks reached the score agent,
    # which emitted at least one change, each timed and each applied to the read model.
    assert moved("telltale_events_processed_total", agent="resolve") == 6
    assert moved("telltale_events_processed_total", agent="score") >= 4
    assert moved("telltale_messages_processed_total", agent="score") >= 1
    changes = moved("telltale_event_to_change_latency_seconds_count")
    assert changes >= 1
    assert moved("telltale_event_to_change_latency_seconds_bucket", le="60.0") == changes
    assert sum(value - _value(before, name, **dict(labels))
               for (name, labels), value in after.items()
               if name == "telltale_health_changes_total") >= changes
    assert moved("telltale_deliveries_total", destination="readmodel", outcome="sent") == changes

    # The samplers ran on the (only, hence leader) worker: one account, in one band,
    # one forecast stage and one lifecycle stage, without any per-account label.
    assert accounts(after, "telltale_accounts_by_forecast") == 1
    assert accounts(after, "telltale_accounts_by_lifecycle") == 1
    assert not any("acme" in str(labels) for _name, labels in after)
    assert _value(after, "telltale_recovery_remaining_messages") == 0
    # One series per partition of the events topic this worker owns, all caught up.
    assert events_lag(after) == [0.0] * worker.settings.partitions
    assert any(name == "telltale_table_keys" for name, _ in after)
    assert _value(after, "telltale_portfolio_refreshed_timestamp_seconds") > 0

    result = promtool(promtool_bin, "check", "metrics", stdin=body)
    assert result.returncode == 0, result.output


def test_two_workers_split_partitions_and_only_the_leader_reports_the_portfolio(
        settings: Settings, start_worker: Callable[..., WorkerProcess],
        tmp_path: Path) -> None:
    base = settings.replace(write_keys=f"{WRITE_KEY}=demo", metrics_interval=0.5)
    first = start_worker(base, *_worker_args(), ready_timeout=150)
    second = start_worker(base.replace(web_port=free_port(), metrics_port=free_port(),
                                       data_dir=tmp_path / "data-2",
                                       public_url="http://127.0.0.1"),
                          *_worker_args(), ready_timeout=150)
    events_topic = base.topics.events

    def lag_partitions(samples: Samples) -> list[int]:
        return sorted(int(dict(labels)["partition"]) for (name, labels) in samples
                      if name == "telltale_consumer_lag_messages"
                      and dict(labels)["topic"] == events_topic)

    def reporting(samples: Samples) -> bool:
        return any(name == "telltale_portfolio_refreshed_timestamp_seconds"
                   for name, _ in samples)

    deadline = time.monotonic() + 90
    while True:
        scrapes = [_scrape(first)[1], _scrape(second)[1]]
        owned = [lag_partitions(s) for s in scrapes]
        settled = (sorted(owned[0] + owned[1]) == list(range(base.partitions))
                   and all(owned) and [reporting(s) for s in scrapes].count(True) == 1)
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # Each events partition is reported by exactly one worker, so sum() over workers is
    # the topic's lag; exactly one worker (the leader) publishes the portfolio.
    assert sorted(owned[0] + owned[1]) == list(range(base.partitions)), owned
    assert all(owned), owned
    assert [reporting(s) for s in scrapes].count(True) == 1
    follower = scrapes[0] if reporting(scrapes[1]) else scrapes[1]
    assert _value(follower, "telltale_portfolio_refreshes_total", outcome="skipped") >= 1
    assert not any(name == "telltale_accounts" for name, _ in follower)

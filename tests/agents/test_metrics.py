"""agents.metrics: names, types and labels of the contract, a lint-clean exposition, and
portfolio gauges that come from the read model without per-account labels."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents import lag, metrics
from devstack.process import free_port
from state.readmodel import ReadModel
from streams.settings import Settings
from tests.deploy.promtool import promtool
from tests.fakes.changes import make_change, record, signal

# The metrics contract shared by every agent:
# family name (as the text format announces it) → type, labels.
CONTRACT: dict[str, tuple[str, tuple[str, ...]]] = {
    "telltale_events_received_total": ("counter", ("source", "type")),
    "telltale_events_accepted_total": ("counter", ("source",)),
    "telltale_events_deduplicated_total": ("counter", ("source",)),
    "telltale_events_dead_lettered_total": ("counter", ("reason",)),
    "telltale_events_moved_total": ("counter", ("kind",)),
    "telltale_http_requests_total": ("counter", ("route", "status")),
    "telltale_messages_processed_total": ("counter", ("agent",)),
    "telltale_events_processed_total": ("counter", ("agent",)),
    "telltale_consumer_lag_messages": ("gauge", ("topic", "partition")),
    "telltale_event_to_change_latency_seconds": ("histogram", ()),
    "telltale_table_keys": ("gauge", ("table",)),
    "telltale_recovery_remaining_messages": ("gauge", ()),
    "telltale_health_changes_total": ("counter", ("reason",)),
    "telltale_deliveries_total": ("counter", ("destination", "outcome")),
    "telltale_accounts": ("gauge", ("workspace", "band")),
    "telltale_accounts_by_forecast": ("gauge", ("workspace", "stage")),
    "telltale_accounts_by_lifecycle": ("gauge", ("workspace", "stage")),
    "telltale_arr_usd": ("gauge", ("workspace", "band")),
    "telltale_active_signals": ("gauge", ("workspace", "signal")),
}

PORTFOLIO = {
    "accounts": 4,
    "accounts_by_band": {"healthy": 2, "watch": 1, "at_risk": 1},
    "accounts_by_forecast": {"commit": 1, "best_case": 2, "none": 1},
    "accounts_by_lifecycle": {"mature": 3, "onboarding": 1},
    "arr_by_band": {"healthy": 90_000.0, "watch": 12_000.0, "at_risk": 50_000.0},
    "active_signals": {"power_user_inactive": 2, "ticket_spike": 1},
}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _value(text: str, name: str, **labels: str) -> float:
    return _samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def _scrape() -> str:
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain; version=0.0.4")
    return body.decode()


def _exercise_every_metric() -> None:
    metrics.EVENTS_RECEIVED.labels(source="segment", type="track").inc(3)
    metrics.EVENTS_ACCEPTED.labels(source="segment").inc(2)
    metrics.EVENTS_DEDUPLICATED.labels(source="segment").inc()
    metrics.EVENTS_DEAD_LETTERED.labels(reason="invalid_json").inc()
    metrics.EVENTS_MOVED.labels(kind="held").inc()
    metrics.HTTP_REQUESTS.labels(route="/v1/batch", status="200").inc()
    metrics.MESSAGES_PROCESSED.labels(agent="score").inc()
    metrics.EVENTS_PROCESSED.labels(agent="score").inc(2)
    metrics.CONSUMER_LAG.labels(topic="t.events", partition="0").set(5)
    metrics.EVENT_TO_CHANGE_LATENCY.observe(0.2)
    metrics.TABLE_KEYS.labels(table="accounts").set(10)
    metrics.RECOVERY_REMAINING.set(0)
    metrics.HEALTH_CHANGES.labels(reason="band_changed").inc()
    metrics.DELIVERIES.labels(destination="slack", outcome="sent").inc()
    metrics.DELIVERY_LATENCY.labels(destination="slack").observe(0.05)
    metrics.PORTFOLIO_REFRESHES.labels(outcome="ok").inc(0)


@pytest.fixture
def snapshot() -> Iterator[metrics.PortfolioSnapshot]:
    yield metrics.SNAPSHOT
    metrics.SNAPSHOT.clear()


def test_contract_metrics_have_their_types_labels_and_help(
        snapshot: metrics.PortfolioSnapshot) -> None:
    _exercise_every_metric()
    snapshot.replace({"demo": PORTFOLIO})
    families = {f.name: f for f in text_string_to_metric_families(_scrape())}
    text = _scrape()
    for name, (kind, labels) in CONTRACT.items():
        # The parser strips `_total` from counter family names.
        family = families.get(name.removesuffix("_total") if kind == "counter" else name)
        assert family is not None, f"{name} is not exported"
        assert family.type == kind, name
        assert f"# HELP {name} " in text, f"{name} has no HELP"
        sample_labels = {tuple(sorted(s.labels)) for s in family.samples
                         if not s.name.endswith("_bucket")}
        assert sample_labels == {tuple(sorted(labels))}, name


def test_exposition_passes_promtool_check_metrics(
        promtool_bin: Path, snapshot: metrics.PortfolioSnapshot) -> None:
    _exercise_every_metric()
    snapshot.replace({"demo": PORTFOLIO, "acme-eu": PORTFOLIO})
    body, _ = metrics.exposition()
    result = promtool(promtool_bin, "check", "metrics", stdin=body)
    assert result.returncode == 0, result.output


def test_promtool_check_metrics_flags_a_badly_named_counter(promtool_bin: Path) -> None:
    bad = b"# HELP telltale_events counted\n# TYPE telltale_events counter\ntelltale_events 1\n"
    result = promtool(promtool_bin, "check", "metrics", stdin=bad)
    assert result.returncode != 0
    assert "_total" in result.output


def test_counters_move_by_what_was_counted() -> None:
    before = _scrape()
    metrics.EVENTS_RECEIVED.labels(source="posthog", type="track").inc(7)
    metrics.EVENTS_DEAD_LETTERED.labels(reason="missing_field").inc(2)
    metrics.DELIVERIES.labels(destination="webhook", outcome="failed").inc()
    for seconds in (0.004, 0.3, 45.0):
        metrics.EVENT_TO_CHANGE_LATENCY.observe(seconds)
    after = _scrape()

    def moved(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert moved("telltale_events_received_total", source="posthog", type="track") == 7
    assert moved("telltale_events_dead_lettered_total", reason="missing_field") == 2
    assert moved("telltale_deliveries_total", destination="webhook", outcome="failed") == 1
    assert moved("telltale_event_to_change_latency_seconds_count") == 3
    assert moved("telltale_event_to_change_latency_seconds_bucket", le="0.005") == 1
    assert moved("telltale_event_to_change_latency_seconds_bucket", le="0.5") == 2
    assert moved("telltale_event_to_change_latency_seconds_bucket", le="60.0") == 3
    assert moved("telltale_event_to_change_latency_seconds_sum") == pytest.approx(45.304)


def test_latency_buckets_span_milliseconds_to_a_minute() -> None:
    buckets = metrics.LATENCY_BUCKETS_SECONDS
    assert buckets[0] == 0.005 and buckets[-1] == 60.0
    assert list(buckets) == sorted(buckets)


def test_portfolio_gauges_render_the_snapshot(snapshot: metrics.PortfolioSnapshot) -> None:
    snapshot.replace({"demo": PORTFOLIO}, now=1_780_000_000.0)
    text = _scrape()
    assert _value(text, "telltale_accounts", workspace="demo", band="healthy") == 2
    assert _value(text, "telltale_arr_usd", workspace="demo", band="at_risk") == 50_000
    assert _value(text, "telltale_accounts_by_forecast", workspace="demo", stage="none") == 1
    assert _value(text, "telltale_accounts_by_lifecycle", workspace="demo",
                  stage="onboarding") == 1
    assert _value(text, "telltale_active_signals", workspace="demo",
                  signal="power_user_inactive") == 2
    assert _value(text, "telltale_portfolio_refreshed_timestamp_seconds") == 1_780_000_000.0


def test_portfolio_gauges_skip_malformed_figures(snapshot: metrics.PortfolioSnapshot) -> None:
    snapshot.replace({"demo": {"accounts_by_band": {"healthy": "many", "watch": True,
                                                    "at_risk": 3},
                               "arr_by_band": None}})
    portfolio = [s for s in _samples(_scrape()) if s[0] == "telltale_accounts"]
    assert portfolio == [("telltale_accounts", (("band", "at_risk"), ("workspace", "demo")))]


def test_cleared_snapshot_exports_no_portfolio_samples(
        snapshot: metrics.PortfolioSnapshot) -> None:
    snapshot.replace({"demo": PORTFOLIO})
    snapshot.clear()
    names = {name for name, _labels in _samples(_scrape())}
    assert not names & {"telltale_accounts", "telltale_arr_usd", "telltale_active_signals",
                        "telltale_portfolio_refreshed_timestamp_seconds"}


@pytest.mark.parametrize(("is_leader", "outcome", "kept"), [
    (False, "skipped", False),
    (True, "failed", True),
], ids=["non_leader_clears_its_snapshot", "unreachable_read_model_keeps_the_last_snapshot"])
async def test_a_refresh_without_the_read_model(
        snapshot: metrics.PortfolioSnapshot, is_leader: bool, outcome: str, kept: bool) -> None:
    snapshot.replace({"demo": PORTFOLIO}, now=1_780_000_000.0)
    before = _value(_scrape(), "telltale_portfolio_refreshes_total", outcome=outcome)
    unreachable = ReadModel.from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        assert not await lag.refresh_portfolio(unreachable, ["demo"], is_leader=is_leader)
    finally:
        await unreachable.close()
    assert snapshot.read() == (({"demo": PORTFOLIO}, 1_780_000_000.0) if kept else ({}, None))
    after = _value(_scrape(), "telltale_portfolio_refreshes_total", outcome=outcome)
    assert after - before == 1


def test_workspaces_come_from_write_keys_and_api_tokens() -> None:
    settings = Settings(write_keys="k1=demo,k2=acme", api_tokens="t1=acme,t2=globex")
    assert lag.workspaces_of(settings) == ["acme", "demo", "globex"]


@pytest.mark.integration
async def test_leader_publishes_the_read_model_portfolio(
        redis_url: str, unique_prefix: str, snapshot: metrics.PortfolioSnapshot) -> None:
    model = ReadModel.from_url(redis_url, unique_prefix)
    try:
        t0 = 1_780_000_000.0
        await model.apply(record(make_change(account_id="a1", score=25, previous_score=60,
                                      arr=100_000.0, now=t0,
                                      started=[signal("power_user_inactive", subject="u1")])))
        await model.apply(record(make_change(account_id="a2", score=80, previous_score=75,
                                      arr=8_000.0, now=t0, workspace="acme")))
        assert await lag.refresh_portfolio(model, ["demo"], is_leader=True)
        text = _scrape()
    finally:
        await model.clear()
        await model.close()
    assert _value(text, "telltale_accounts", workspace="demo", band="at_risk") == 1
    assert _value(text, "telltale_arr_usd", workspace="demo", band="at_risk") == 100_000
    assert _value(text, "telltale_active_signals", workspace="demo",
                  signal="power_user_inactive") == 1
    # A workspace the read model holds but configuration does not name is reported too.
    assert _value(text, "telltale_accounts", workspace="acme", band="healthy") == 1
    # No series carries an account id.
    assert all("a1" not in str(labels) and "a2" not in str(labels)
               for _name, labels in _samples(text))

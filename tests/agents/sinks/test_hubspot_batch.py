"""HubSpot writes go out as batch updates: the changes waiting at one moment share one
request, and each caller still learns the outcome of its own change. Against the local
HubSpot of ``test_crm`` over real sockets, through the official client."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from agents.sinks import DeliveryError
from agents.sinks.crm import HUBSPOT_BATCH_LIMIT, HubSpotSync, hubspot_properties
from agents.sinks.dispatch import Dispatcher, Job
from streams.health_change import HealthChangeRecord
from tests.agents.sinks.test_crm import HubSpotCompanies, hubspot_api, hubspot_inputs
from tests.fakes.changes import make_record
from tests.fakes.http import Flaky, RecordingServer

T0 = 1_780_000_000.0


@pytest.fixture
def sync(hubspot: RecordingServer) -> HubSpotSync:
    return HubSpotSync("pat-test", host=hubspot.url)


def change(company: str, *, now: float = T0, score: int = 57,
           account: str | None = None) -> HealthChangeRecord:
    return make_record(account_id=account or f"acct-{company}", now=now, score=score,
                       external_ids={"hubspot_company_id": company})


async def send_all(sync: HubSpotSync, changes: Sequence[HealthChangeRecord]
                   ) -> list[bool | BaseException]:
    """Each change sent by its own caller at the same moment, as the dispatcher does."""
    return await asyncio.gather(*(sync.send(c) for c in changes), return_exceptions=True)


def dispatcher_for(sync: HubSpotSync, dead: list[dict[str, Any]],
                   sleeps: list[float] | None = None) -> Dispatcher:
    async def send(job: Job) -> None:
        assert job.change is not None
        await sync.send(job.change)

    async def dead_letter(record: dict[str, Any]) -> None:
        dead.append(record)

    async def sleep(seconds: float) -> None:
        (sleeps if sleeps is not None else []).append(seconds)

    return Dispatcher(send, dead_letter, max_attempts=3, sleep=sleep,
                      batch_limits={"hubspot": HUBSPOT_BATCH_LIMIT})


def job(c: HealthChangeRecord) -> Job:
    return Job("hubspot", "change", c.wire, c.id, change=c)


async def test_queued_changes_go_out_in_one_batch_request(
        hubspot: RecordingServer, sync: HubSpotSync) -> None:
    dead: list[dict[str, Any]] = []
    dispatcher = dispatcher_for(sync, dead)
    changes = [change(str(9000 + n)) for n in range(7)]
    for c in changes:
        assert dispatcher.submit(job(c))
    await dispatcher.drain(10)
    await dispatcher.close()
    assert dead == []
    assert [r.status for r in hubspot.requests] == [200]
    inputs = hubspot.requests[0].json()["inputs"]
    assert [i["id"] for i in inputs] == [str(9000 + n) for n in range(7)]
    assert [i["properties"] for i in inputs] == [hubspot_properties(c) for c in changes]
    sync.close()


async def test_one_failing_id_in_a_207_fails_only_its_own_change(
        hubspot: RecordingServer, sync: HubSpotSync) -> None:
    hubspot.script = HubSpotCompanies(missing=frozenset({"9002"}),
                                      throttled=frozenset({"9004"}))
    outcomes = await send_all(sync, [change(c) for c in ("9001", "9002", "9003", "9004")])
    assert hubspot_inputs(hubspot.requests) == [["9001", "9002", "9003", "9004"]]
    assert hubspot.requests[0].status == 207
    updated, missing, also_updated, throttled = outcomes
    assert updated is True and also_updated is True
    assert isinstance(missing, DeliveryError) and not missing.retryable
    assert "company 9002" in missing.reason and "OBJECT_NOT_FOUND" in missing.reason
    assert isinstance(throttled, DeliveryError) and throttled.retryable
    assert "company 9004" in throttled.reason and "RATE_LIMITS" in throttled.reason
    sync.close()


async def test_a_refused_batch_fails_every_change_with_its_retry_after(
        hubspot: RecordingServer, sync: HubSpotSync) -> None:
    hubspot.script = Flaky(failures=1, status=429, retry_after="7", then=hubspot_api)
    outcomes = await send_all(sync, [change(c) for c in ("9001", "9002", "9003")])
    assert [r.status for r in hubspot.requests] == [429]
    for company, outcome in zip(("9001", "9002", "9003"), outcomes, strict=True):
        assert isinstance(outcome, DeliveryError), outcome
        assert outcome.retryable and outcome.retry_after == 7.0
        assert f"company {company}" in outcome.reason
    assert len({id(outcome) for outcome in outcomes}) == 3  # each caller its own error


async def test_the_dispatcher_retries_a_refused_batch_together(
        hubspot: RecordingServer, sync: HubSpotSync) -> None:
    hubspot.script = Flaky(failures=1, status=429, retry_after="7", then=hubspot_api)
    dead: list[dict[str, Any]] = []
    sleeps: list[float] = []
    dispatcher = dispatcher_for(sync, dead, sleeps)
    for c in (change("9001"), change("9002"), change("9003")):
        dispatcher.submit(job(c))
    await dispatcher.drain(10)
    await dispatcher.close()
    assert dead == [] and sleeps == [7.0, 7.0, 7.0]
    assert [r.status for r in hubspot.requests] == [429, 200]
    assert hubspot_inputs(hubspot.requests) == [["9001", "9002", "9003"]] * 2
    sync.close()


async def test_a_permanent_failure_in_a_batch_dead_letters_only_that_change(
        hubspot: RecordingServer, sync: HubSpotSync) -> None:
    hubspot.script = HubSpotCompanies(missing=frozenset({"9002"}))
    dead: list[dict[str, Any]] = []
    dispatcher = dispatcher_for(sync, dead)
    changes = [change("9001"), change("9002"), change("9003")]
    for c in changes:
        dispatcher.submit(job(c))
    await dispatcher.drain(10)
    await dispatcher.close()
    assert len(hubspot.requests) == 1, "a permanent failure is not retried"
    (letter,) = dead
    assert letter["ref"] == changes[1].id and letter["attempts"] == 1
    assert letter["reason"].startswith("permanent failure: hubspot refused company 9002")
    sync.close()


@pytest.mark.parametrize("newer_first", [False, True])
async def test_two_changes_for_one_company_send_only_the_newest(
        hubspot: RecordingServer, sync: HubSpotSync, newer_first: bool) -> None:
    older = change("9001", now=T0, score=57, account="a")
    newer = change("9001", now=T0 + 60, score=40, account="b")
    other = change("9002")
    sent = [newer, older, other] if newer_first else [older, newer, other]
    assert await send_all(sync, sent) == [True, True, True]
    (inputs,) = [r.json()["inputs"] for r in hubspot.requests]
    assert [i["id"] for i in inputs] == ["9001", "9002"]  # HubSpot refuses duplicate ids
    assert inputs[0]["properties"] == hubspot_properties(newer)
    assert inputs[0]["properties"]["telltale_health_score"] == "40"
    sync.close()


async def test_a_superseded_change_does_not_share_the_newest_ones_failure(
        hubspot: RecordingServer, sync: HubSpotSync) -> None:
    """Retrying or dead-lettering the older change could only put older health back."""
    hubspot.script = Flaky(failures=1, status=503, then=hubspot_api)
    older, newer = change("9001", now=T0), change("9001", now=T0 + 60, score=40)
    superseded, failed = await send_all(sync, [older, newer])
    assert superseded is True
    assert isinstance(failed, DeliveryError) and failed.retryable
    assert hubspot_inputs(hubspot.requests) == [["9001"]]
    sync.close()


async def test_more_than_a_batch_of_changes_takes_several_requests(
        hubspot: RecordingServer, sync: HubSpotSync) -> None:
    changes = [change(str(10_000 + n)) for n in range(2 * HUBSPOT_BATCH_LIMIT + 50)]
    assert await send_all(sync, changes) == [True] * len(changes)
    assert [len(ids) for ids in hubspot_inputs(hubspot.requests)] == [100, 100, 50]
    assert [r.status for r in hubspot.requests] == [200, 200, 200]
    sent = [company for ids in hubspot_inputs(hubspot.requests) for company in ids]
    assert sent == [str(10_000 + n) for n in range(len(changes))]
    sync.close()


async def test_the_dispatcher_hands_over_at_most_a_batch_at_a_time(
        hubspot: RecordingServer, sync: HubSpotSync) -> None:
    dead: list[dict[str, Any]] = []
    dispatcher = dispatcher_for(sync, dead)
    for n in range(HUBSPOT_BATCH_LIMIT + 30):
        dispatcher.submit(job(change(str(20_000 + n))))
    await dispatcher.drain(20)
    await dispatcher.close()
    assert dead == []
    assert [len(ids) for ids in hubspot_inputs(hubspot.requests)] == [100, 30]
    sync.close()


async def test_a_malformed_id_is_refused_before_sending_and_the_batch_goes_on(
        hubspot: RecordingServer, sync: HubSpotSync) -> None:
    outcomes = await send_all(sync, [change("9001"), change("//elsewhere/x"),
                                     change("9002")])
    first, refused, second = outcomes
    assert first is True and second is True
    assert isinstance(refused, DeliveryError) and not refused.retryable
    assert "not a HubSpot id" in refused.reason
    assert hubspot_inputs(hubspot.requests) == [["9001", "9002"]]
    sync.close()


async def test_closing_fails_the_changes_still_waiting_retryably(
        hubspot: RecordingServer) -> None:
    sync = HubSpotSync("pat-test", host=hubspot.url, batch_wait_seconds=5.0)
    waiting = asyncio.create_task(sync.send(change("9001")))
    await asyncio.sleep(0.05)
    sync.close()
    with pytest.raises(DeliveryError) as info:
        await waiting
    assert info.value.retryable and hubspot.requests == []
    assert await HubSpotSync("pat-test", host=hubspot.url).send(change("9001"))


async def test_jobs_sent_together_that_are_not_done_are_left_at_shutdown() -> None:
    """A batch in flight at shutdown: the jobs of it still being sent are handed back,
    the finished ones are not."""
    release = asyncio.Event()

    async def send(job: Job) -> None:
        if job.ref != "quick":
            await release.wait()

    async def dead_letter(record: dict[str, Any]) -> None:
        raise AssertionError(record)

    dispatcher = Dispatcher(send, dead_letter, batch_limits={"hubspot": 100})
    for ref in ("slow-1", "quick", "slow-2"):
        dispatcher.submit(Job("hubspot", "change", {}, ref))
    left = await dispatcher.close(timeout=0.1, keep_leftovers=True)
    assert sorted(j.ref for j in left) == ["slow-1", "slow-2"]


@pytest.mark.integration
async def test_the_notifier_sends_its_queued_hubspot_writes_as_one_batch(
        redis_url: str, unique_prefix: str, hubspot: RecordingServer) -> None:
    """The notifier's own dispatcher and send path, with a real Redis behind it."""
    from agents.notify import Notifier, change_job
    from agents.sinks.routing import NotificationConfig
    from state.readmodel import ReadModel
    from streams.settings import Settings

    settings = Settings(redis_url=redis_url, topic_prefix=unique_prefix)
    config = NotificationConfig.from_dict({
        "hubspot": {"access_token": "pat-test", "host": hubspot.url},
        "rules": [{"name": "everything", "to": ["hubspot"]}]})
    dead: list[dict[str, Any]] = []

    async def dead_letter(record: dict[str, Any]) -> None:
        dead.append(record)

    readmodel = ReadModel.from_settings(settings)
    notifier = Notifier(settings, config, readmodel, dead_letter)
    try:
        for n in range(5):
            notifier.dispatcher.submit(change_job("hubspot", change(str(9100 + n))))
        await notifier.dispatcher.drain(10)
    finally:
        await notifier.close()
        await notifier.redis.delete(*[k async for k in notifier.redis.scan_iter(
            match=f"{unique_prefix}:*")] or ["none"])
        await readmodel.close()
    assert dead == []
    assert hubspot_inputs(hubspot.requests) == [[str(9100 + n) for n in range(5)]]

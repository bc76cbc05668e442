from __future__ import annotations

import asyncio
from typing import Any

from agents import metrics
from agents.sinks import DeliveryError
from agents.sinks.dispatch import Dispatcher, Job, backoff


def test_backoff_doubles_with_jitter_caps_and_honours_retry_after() -> None:
    for attempt, full in ((1, 1.0), (2, 2.0), (3, 4.0), (10, 30.0)):
        wait = backoff(attempt, 1.0, 30.0)
        assert full / 2 <= wait <= full
    assert backoff(3, 1.0, 30.0, retry_after=7.0) == 7.0
    assert backoff(3, 1.0, 30.0, retry_after=700.0) == 30.0


class Script:
    """Fails each destination's first ``failures[dest]`` attempts with ``error``."""

    def __init__(self, failures: dict[str, int], error: DeliveryError) -> None:
        self.failures = failures
        self.error = error
        self.calls: list[tuple[str, str]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, job: Job) -> None:
        await self.gate.wait()
        self.calls.append((job.destination, job.ref))
        if self.failures.get(job.destination, 0) > 0:
            self.failures[job.destination] -= 1
            raise self.error


def sent(destination: str) -> float:
    return metrics.DELIVERIES.labels(destination=destination, outcome="sent")._value.get()


async def test_retries_then_delivers_in_order_and_honours_retry_after() -> None:
    script = Script({"slack:a": 2}, DeliveryError("429", retry_after=3.0))
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    dead: list[dict[str, Any]] = []

    async def dead_letter(record: dict[str, Any]) -> None:
        dead.append(record)

    before = sent("slack")
    dispatcher = Dispatcher(script, dead_letter, max_attempts=5, sleep=sleep)
    for ref in ("c1", "c2"):
        assert dispatcher.submit(Job("slack:a", "change", {"workspace": "w"}, ref))
    await dispatcher.drain(5)
    await dispatcher.close()
    assert script.calls == [("slack:a", "c1")] * 3 + [("slack:a", "c2")]
    assert sleeps == [3.0, 3.0]
    assert dead == [] and sent("slack") - before == 2


async def test_gives_up_after_max_attempts_and_dead_letters_with_reason() -> None:
    script = Script({"webhook:w": 99}, DeliveryError("HTTP 503"))
    dead: list[dict[str, Any]] = []

    async def dead_letter(record: dict[str, Any]) -> None:
        dead.append(record)

    async def no_sleep(_: float) -> None:
        return None

    dispatcher = Dispatcher(script, dead_letter, max_attempts=3, sleep=no_sleep)
    dispatcher.submit(Job("webhook:w", "change", {"workspace": "w", "account_id": "a"}, "c1"))
    await dispatcher.drain(5)
    await dispatcher.close()
    (record,) = dead
    assert record["attempts"] == 3 and record["destination"] == "webhook:w"
    assert record["reason"] == "gave up after 3 attempts: HTTP 503"
    assert record["account_id"] == "a" and record["ref"] == "c1"


async def test_permanent_failure_is_not_retried() -> None:
    script = Script({"hubspot": 1}, DeliveryError("HTTP 404", retryable=False))
    dead: list[dict[str, Any]] = []

    async def dead_letter(record: dict[str, Any]) -> None:
        dead.append(record)

    dispatcher = Dispatcher(script, dead_letter, max_attempts=5)
    dispatcher.submit(Job("hubspot", "change", {}, "c1"))
    await dispatcher.drain(5)
    await dispatcher.close()
    assert len(script.calls) == 1 and dead[0]["reason"] == "permanent failure: HTTP 404"


async def test_a_stuck_destination_holds_up_neither_others_nor_the_caller() -> None:
    slow = Script({}, DeliveryError("x"))
    slow.gate.clear()  # every send waits until released
    fast_calls: list[str] = []

    async def send(job: Job) -> None:
        if job.destination == "slack:slow":
            await slow(job)
        else:
            fast_calls.append(job.ref)

    dead: list[dict[str, Any]] = []

    async def dead_letter(record: dict[str, Any]) -> None:
        dead.append(record)

    dispatcher = Dispatcher(send, dead_letter, queue_size=2)
    assert dispatcher.submit(Job("slack:slow", "change", {}, "s0"))
    await asyncio.sleep(0.01)  # s0 is now in flight, stuck
    accepted = [dispatcher.submit(Job("slack:slow", "change", {}, f"s{i}")) for i in (1, 2, 3)]
    for i in range(2):
        dispatcher.submit(Job("webhook:fast", "change", {}, f"f{i}"))
    await asyncio.sleep(0.05)
    # Two wait in the full queue, the third overflowed; the other destination went on.
    assert accepted == [True, True, False]
    assert fast_calls == ["f0", "f1"]
    slow.gate.set()
    await dispatcher.drain(5)
    await dispatcher.close()
    assert [r["ref"] for r in dead] == ["s3"]
    assert dead[0]["reason"] == "delivery queue full (2)"


async def test_shutdown_dead_letters_what_was_not_delivered() -> None:
    stuck = Script({}, DeliveryError("x"))
    stuck.gate.clear()
    dead: list[dict[str, Any]] = []

    async def dead_letter(record: dict[str, Any]) -> None:
        dead.append(record)

    dispatcher = Dispatcher(stuck, dead_letter)
    for ref in ("c1", "c2", "c3"):
        dispatcher.submit(Job("webhook:w", "change", {}, ref))
    await asyncio.sleep(0.01)
    await dispatcher.close(timeout=0.1)
    assert sorted(r["ref"] for r in dead) == ["c1", "c2", "c3"]
    assert {r["reason"] for r in dead} == {"not delivered before shutdown"}
    assert not dispatcher.submit(Job("webhook:w", "change", {}, "c4"))
    await asyncio.sleep(0.01)
    assert dead[-1]["ref"] == "c4" and dead[-1]["reason"] == "notifier is shutting down"
    # closing again (a shutdown handler after a test's own stop) finds nothing left and
    # does not wait out its timeout on the jobs the first close took over
    async with asyncio.timeout(1.0):
        assert await dispatcher.close(timeout=30.0) == []
    assert len(dead) == 4

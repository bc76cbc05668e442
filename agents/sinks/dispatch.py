"""Delivery without blocking the stream: one bounded queue and one worker per destination.

The notify agent only *submits* (``put_nowait``); a worker sends, retrying retryable
failures with exponential backoff and jitter (or the destination's ``Retry-After``), in
order, so one slow or failing destination never delays another nor the stream. After
``max_attempts`` (or a permanent failure, or a full queue) the delivery is written to the
deliveries dead-letter topic with its reason. Every outcome is counted in
``telltale_deliveries_total{destination,outcome}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agents import metrics
from agents.sinks import DeliveryError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Job:
    """One thing to deliver: a health change or a digest, to one destination."""

    destination: str
    kind: str  # "change" or "digest"
    body: Mapping[str, Any]
    ref: str  # change id, or digest key
    attempts: int = 0
    enqueued_at: float = field(default_factory=time.monotonic)
    outbox_field: str | None = None  # where the durable copy sits (agents/sinks/outbox.py)

    @property
    def destination_kind(self) -> str:
        """Bounded metric label: slack, webhook, hubspot or salesforce."""
        return self.destination.split(":", 1)[0]


Send = Callable[[Job], Awaitable[None]]
DeadLetter = Callable[[dict[str, Any]], Awaitable[None]]


def backoff(attempt: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): the destination's
    Retry-After when it gave one (capped), else ``base * 2**(attempt-1)`` with jitter."""
    if retry_after is not None:
        return min(retry_after, cap)
    return min(cap, base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


def dead_letter_record(job: Job, reason: str) -> dict[str, Any]:
    body = job.body
    return {
        "v": 1,
        "destination": job.destination,
        "kind": job.kind,
        "ref": job.ref,
        "reason": reason,
        "attempts": job.attempts,
        "workspace": body.get("workspace"),
        "account_id": body.get("account_id"),
        "failed_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "body": dict(body),
    }


class Dispatcher:
    """Per-destination queues and workers. ``submit`` never waits."""

    def __init__(self, send: Send, dead_letter: DeadLetter, *, max_attempts: int = 8,
                 backoff_seconds: float = 1.0, max_backoff_seconds: float = 300.0,
                 queue_size: int = 10_000,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 on_done: Callable[[Job], Awaitable[None]] | None = None) -> None:
        self.send = send
        self.dead_letter = dead_letter
        self.on_done = on_done
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.queue_size = queue_size
        self.sleep = sleep
        self._queues: dict[str, asyncio.Queue[Job]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._pending_dead_letters: set[asyncio.Task[None]] = set()
        self._in_flight: dict[str, Job] = {}
        self._closed = False

    def submit(self, job: Job) -> bool:
        """Queue a delivery. False when it could not be queued (full, or shutting down):
        it is then dead-lettered in the background with that reason."""
        if self._closed:
            self._background_dead_letter(job, "notifier is shutting down")
            return False
        queue = self._queues.get(job.destination)
        if queue is None:
            queue = self._queues[job.destination] = asyncio.Queue(self.queue_size)
            self._workers[job.destination] = asyncio.create_task(
                self._work(job.destination, queue), name=f"telltale.deliver.{job.destination}")
        try:
            queue.put_nowait(job)
        except asyncio.QueueFull:
            self._background_dead_letter(job, f"delivery queue full ({self.queue_size})")
            return False
        return True

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until every queued delivery has been sent or dead-lettered."""
        async with asyncio.timeout(timeout):
            for queue in list(self._queues.values()):
                await queue.join()
            while self._pending_dead_letters:
                await asyncio.gather(*self._pending_dead_letters, return_exceptions=True)

    async def close(self, timeout: float = 5.0, *, keep_leftovers: bool = False) -> list[Job]:
        """Stop accepting, give queued deliveries ``timeout`` seconds, then stop. What is
        still queued or being retried is dead-lettered, so a shutdown loses nothing, or,
        with ``keep_leftovers``, returned to a caller that keeps it durably elsewhere."""
        self._closed = True
        with contextlib.suppress(TimeoutError):
            await self.drain(timeout)
        for task in self._workers.values():
            task.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        left = list(self._in_flight.values())
        for queue in self._queues.values():
            while not queue.empty():
                left.append(queue.get_nowait())
        self._in_flight.clear()
        if keep_leftovers:
            return left
        for job in left:
            await self._dead_letter(job, "not delivered before shutdown")
        return []

    def _background_dead_letter(self, job: Job, reason: str) -> None:
        task = asyncio.create_task(self._dead_letter(job, reason))
        self._pending_dead_letters.add(task)
        task.add_done_callback(self._pending_dead_letters.discard)

    async def _dead_letter(self, job: Job, reason: str) -> None:
        metrics.DELIVERIES.labels(destination=job.destination_kind, outcome="dead_lettered").inc()
        log.warning("dead-lettering %s %s to %s after %d attempts: %s",
                    job.kind, job.ref, job.destination, job.attempts, reason)
        try:
            await self.dead_letter(dead_letter_record(job, reason))
        except Exception:  # the DLQ itself failing must not kill the worker
            log.exception("could not write dead letter for %s to %s", job.ref, job.destination)
            return  # keep the durable copy, if any: it is not in the DLQ
        await self._done(job)

    async def _done(self, job: Job) -> None:
        if self.on_done is None:
            return
        try:
            await self.on_done(job)
        except Exception:
            log.warning("could not mark %s to %s done", job.ref, job.destination,
                        exc_info=True)

    async def _work(self, destination: str, queue: asyncio.Queue[Job]) -> None:
        while True:
            job = await queue.get()
            self._in_flight[destination] = job
            try:
                await self._deliver(job)
            except asyncio.CancelledError:
                queue.task_done()
                raise  # shutting down: close() dead-letters the job left in flight
            except Exception:
                log.exception("delivery worker for %s hit a bug", destination)
            self._in_flight.pop(destination, None)
            queue.task_done()

    async def _deliver(self, job: Job) -> None:
        kind = job.destination_kind
        while True:
            job.attempts += 1
            started = time.perf_counter()
            try:
                await self.send(job)
            except DeliveryError as exc:
                metrics.DELIVERY_LATENCY.labels(destination=kind).observe(
                    time.perf_counter() - started)
                metrics.DELIVERIES.labels(destination=kind, outcome="failed").inc()
                if not exc.retryable:
                    await self._dead_letter(job, f"permanent failure: {exc.reason}")
                    return
                if job.attempts >= self.max_attempts:
                    await self._dead_letter(job, f"gave up after {job.attempts} attempts: "
                                                 f"{exc.reason}")
                    return
                await self.sleep(backoff(job.attempts, self.backoff_seconds,
                                         self.max_backoff_seconds, exc.retry_after))
            except Exception as exc:
                metrics.DELIVERIES.labels(destination=kind, outcome="failed").inc()
                await self._dead_letter(job, f"unexpected error: {exc!r}")
                return
            else:
                metrics.DELIVERY_LATENCY.labels(destination=kind).observe(
                    time.perf_counter() - started)
                metrics.DELIVERIES.labels(destination=kind, outcome="sent").inc()
                await self._done(job)
                return

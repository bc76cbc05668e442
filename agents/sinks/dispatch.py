"""Delivery without blocking the stream: one bounded queue and one worker per destination.

The notify agent only *submits* (``put_nowait``); a worker sends, retrying retryable
failures with exponential backoff and jitter (or the destination's ``Retry-After``), in
order, so one slow or failing destination never delays another nor the stream. After
``max_attempts`` (or a permanent failure, or a full queue) the delivery is written to the
deliveries dead-letter topic with its reason. Every outcome is counted in
``telltale_deliveries_total{destination,outcome}``.

A destination that writes many deliveries in one request (HubSpot's batch update) is
named in ``batch_limits``: its worker takes up to that many queued deliveries at once and
sends them together, each still retried and dead-lettered on its own. The next ones are
taken only when all of those are done, so no delivery overtakes an earlier one that is
being retried, as with one at a time.

The ``[owners]`` table of the notifications file (:class:`OwnerRoutes`) says where each
owner's daily digest goes (a direct message or a channel) and at what hour of which time
zone; ``agents/sinks/digest.py`` builds those digests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agents import metrics
from agents.sinks import DeliveryError
from agents.sinks.routing import read_notifications_file
from streams.health_change import HealthChangeRecord

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
    # The decoded health change of a "change" job (``body`` is its wire dict).
    change: HealthChangeRecord | None = field(default=None, repr=False, compare=False)

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
                 on_done: Callable[[Job], Awaitable[None]] | None = None,
                 batch_limits: Mapping[str, int] | None = None) -> None:
        self.send = send
        self.dead_letter = dead_letter
        self.on_done = on_done
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.queue_size = queue_size
        self.sleep = sleep
        # Destination kind -> queued deliveries its worker sends at once (others: 1).
        self.batch_limits = dict(batch_limits or {})
        self._queues: dict[str, asyncio.Queue[Job]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._pending_dead_letters: set[asyncio.Task[None]] = set()
        self._in_flight: dict[str, list[Job]] = {}
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
        left = [job for jobs in self._in_flight.values() for job in jobs]
        for queue in self._queues.values():
            while not queue.empty():
                left.append(queue.get_nowait())
                queue.task_done()  # taken over here: a later drain must not wait for it
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
        limit = self.batch_limits.get(destination.split(":", 1)[0], 1)
        while True:
            jobs = [await queue.get()]
            while len(jobs) < limit and not queue.empty():
                jobs.append(queue.get_nowait())
            in_flight = self._in_flight[destination] = list(jobs)
            try:
                # Sent together: the sends of a batching destination join one request.
                await asyncio.gather(*(self._deliver_one(destination, job, in_flight)
                                       for job in jobs))
            except asyncio.CancelledError:
                for _ in jobs:
                    queue.task_done()
                raise  # shutting down: close() dead-letters the jobs left in flight
            self._in_flight.pop(destination, None)
            for _ in jobs:
                queue.task_done()

    async def _deliver_one(self, destination: str, job: Job, in_flight: list[Job]) -> None:
        try:
            await self._deliver(job)
        except Exception:
            log.exception("delivery worker for %s hit a bug", destination)
        in_flight[:] = [other for other in in_flight if other is not job]

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


# ---------------------------------------------------------------------- owner destinations

SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")
"""A Slack member id: the only thing a direct digest is addressed to or mentions."""
SLACK_API_URL = "https://slack.com/api"


@dataclass(frozen=True, slots=True)
class OwnerRoute:
    """Where and when one owner's daily digest goes: a direct message to ``slack_user``
    (needs a bot token) or a configured Slack ``channel``, at ``hour`` (0-23; None: the
    digest hour) in the owner's ``time_zone`` (IANA name)."""

    owner: str
    time_zone: str = "UTC"
    slack_user: str | None = None
    channel: str | None = None
    hour: int | None = None

    @property
    def destination(self) -> str:
        return f"slackdm:{self.slack_user}" if self.slack_user else f"slack:{self.channel}"


@dataclass(frozen=True, slots=True)
class OwnerRoutes:
    """The ``[owners]`` table of the notifications file, and the Slack bot (``[slack.bot]``
    ``token``, ``api_url``) that sends direct messages."""

    owners: Mapping[str, OwnerRoute] = field(default_factory=dict)
    bot_token: str | None = None
    api_url: str = SLACK_API_URL

    @classmethod
    def load(cls, path: Path | None, slack_channels: Mapping[str, str]) -> OwnerRoutes:
        """Read them from the notifications file (None: nobody has a route)."""
        if path is None:
            return cls()
        return cls.from_dict(read_notifications_file(path), slack_channels)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], slack_channels: Mapping[str, str]
                  ) -> OwnerRoutes:
        """Checked against the configured channels; raises ValueError listing every
        problem."""
        problems: list[str] = []
        bot = (raw.get("slack") or {}).get("bot") or {}
        token = bot.get("token")
        api_url = str(bot.get("api_url") or SLACK_API_URL)
        if token is not None and (not isinstance(token, str) or not token.startswith("xox")):
            problems.append("slack.bot.token must be a Slack bot token (xoxb-...)")
        if not api_url.startswith(("https://", "http://")):
            problems.append("slack.bot.api_url must be an http(s) URL")
        owners: dict[str, OwnerRoute] = {}
        table = raw.get("owners") or {}
        if not isinstance(table, Mapping):
            problems.append("owners must be a table of owner = { ... }")
            table = {}
        for owner, spec in table.items():
            where = f"owners.{owner!r}"
            if not isinstance(spec, Mapping):
                problems.append(f"{where} must be a table")
                continue
            unknown = sorted(set(spec) - {"slack_user", "channel", "time_zone", "hour"})
            if unknown:
                problems.append(f"{where}: unknown key {unknown[0]!r}")
            user, channel = spec.get("slack_user"), spec.get("channel")
            if (user is None) == (channel is None):
                problems.append(f"{where} needs exactly one of slack_user and channel")
            if user is not None and not (isinstance(user, str)
                                         and SLACK_USER_ID.fullmatch(user)):
                problems.append(f"{where}.slack_user must be a Slack member id (U...)")
            if user is not None and not token:
                problems.append(f"{where}: a direct message needs slack.bot.token")
            if channel is not None and channel not in slack_channels:
                problems.append(f"{where}.channel {channel!r} is not a configured channel")
            zone = spec.get("time_zone", "UTC")
            try:
                ZoneInfo(str(zone))
            except (ZoneInfoNotFoundError, ValueError):
                problems.append(f"{where}.time_zone {zone!r} is not a time zone")
            hour = spec.get("hour")
            if hour is not None and (not isinstance(hour, int) or not 0 <= hour <= 23):
                problems.append(f"{where}.hour must be between 0 and 23")
            owners[str(owner)] = OwnerRoute(str(owner), str(zone), user, channel, hour)
        if problems:
            raise ValueError("invalid owners in the notifications config:\n  "
                             + "\n  ".join(problems))
        return cls(owners, token, api_url.rstrip("/"))

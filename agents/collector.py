"""The HTTP collector: what Segment, RudderStack and PostHog SDKs post, onto the events
topic.

Routes (aiohttp; served by the worker's web server through ``agents/intake.py``, or on
its own by :func:`create_collector_app`):

- ``POST /v1/batch`` (also ``/v1/import``): Segment and RudderStack batches.
- ``POST /v1/track|identify|group|page|screen|alias``: one Segment call.
- ``POST /batch/``, ``/capture/``, ``/e/``: PostHog batches or single captures.

Answers, exactly: **200** only once Kafka acknowledged every accepted event (acks=all,
idempotent producer); **400** when the body is not JSON, not a batch, nested deeper than
orjson writes (255 levels) outside a batch's messages, or its compression is broken;
**401** for a missing or unknown write key (Basic auth user, ``writeKey`` in the body, or
PostHog's ``api_key``); **408** when the body takes longer than a minute to arrive;
**413** when the body, as sent or after decompression, exceeds 500 KB for a batch or
32 KB for a single call (at once when its ``Content-Length`` says so, before any
back-pressure), when a batch holds more than ``collector_max_messages`` messages, or
when its shared ``context`` alone is above 32 KB; **429** with ``Retry-After`` when too
many bytes or requests are in flight; **503** with ``Retry-After`` when Kafka or Redis is
unavailable or slower than ``redis_timeout_seconds``, and when a message id is still
being accepted by an earlier attempt (every SDK retries it, with the same message ids).
Inside a batch a message that cannot be accepted does not fail the batch: it goes to the
dead-letter topic with its reason and the rest are accepted. Each message, merged with
the batch's context, is measured first (above 32 KB: ``message_too_large``; too deep to
write back: ``too_deep``); ids with control characters are ``bad_identity``. A dead
letter keeps at most ``dlq_payload_max_bytes`` of its message, and one request's dead
letters at most ``dlq_request_max_bytes`` in all (then reason, sizes and id only).

The body is read to its end however many network reads it takes, with the limit
enforced while reading, so a batch split over TCP segments is read whole and an
oversize one is refused without being held in memory.

Deduplication: per (workspace, message id) in Redis, all of one request's ids in one
round trip (small Lua scripts). Before producing, an id is marked *pending* under the
request's own token for ``dedup_pending_seconds``; once Kafka acknowledged its events it
becomes *seen* for ``dedup_ttl_seconds``; if producing fails the request's pending marks
are released, so the client's retry is accepted. A retry that finds its id pending (the
original still in flight, or its worker died between marking and producing) gets 503
until the original settles or the mark expires: never a 200 "duplicate" for events that
may never reach Kafka. Why here and not as state
in the resolve stage: retries are a property of HTTP clients and arrive at whichever
worker the load balancer picks, so the only place every retry meets its original is a
store shared by all collectors; Redis expires keys by itself (``dedup_ttl_seconds``,
48 h by default, over Segment's 24 h); memory is bounded by traffic, not by how
active a user is (a per-user id list in RocksDB would grow with every event and be
re-serialised on each one); and dropping a duplicate before Kafka means nothing
downstream ever sees it. When Redis cannot be reached the collector answers 503 rather
than risk double counting.

Keys: every accepted event belongs to its user (or anonymous) id; a group call without
a person (PostHog ``$groupidentify``) to its account. Every event goes to the partition
of the events topic that Kafka's default partitioner gives that key, where the resolve
agent keeps the person's identity.

Group commit: events do not travel one message each, nor one message per request. The
events of every request accepted within ``collector_linger_ms`` of each other that go to
the same partition (and workspace) travel as one batch envelope (:mod:`streams.envelope`),
in the order they were accepted, up to 900 KB a message (under Kafka's default 1 MB). A
request is answered once every message carrying its events is acknowledged. Under load
messages grow by themselves, and the per-message cost of every stage after this one is
shared by more events; when traffic is light a request waits at most the linger.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import secrets
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from redis import asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from agents import metrics
from agents.basic_auth import basic_credentials
from state.readmodel import redis_client
from streams.dlq import DEAD_LETTERS, DeadLetter
from streams.envelope import ENVELOPES, KeyPartitions, kafka_key
from streams.events import Event, EventType, Source
from streams.normalize import (
    MAX_DEPTH,
    MAX_MESSAGE_BYTES,
    MAX_MESSAGE_ID_CHARS,
    NormalizeContext,
    Rejection,
    normalize,
    parse_time_lenient,
    segment_family_source,
)
from streams.settings import Settings

log = logging.getLogger(__name__)

SEGMENT_CALLS = ("track", "identify", "group", "page", "screen", "alias")
_CONTENT_ENCODINGS = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})
POSTHOG_ROUTES = ("/batch/", "/batch", "/capture/", "/capture", "/e/", "/e")
FAULT_ENV = "TELLTALE_COLLECTOR_TEST_FAULT"
"""Test-only: ``kind:delay`` makes the first request misbehave (see ``inject_fault``), for
tests that drive a worker in another process."""
FAULT_KINDS = frozenset({"error_before", "error_after_ack", "delay_after_ack",
                         "delay_after_mark"})


@dataclass(frozen=True, slots=True)
class CollectorLimits:
    """Bounds of one collector process (bytes are after decompression)."""

    max_batch_bytes: int = 500 * 1024
    """Largest batch body, 500 KB as the Segment HTTP API documents."""
    max_message_bytes: int = MAX_MESSAGE_BYTES
    """Largest single-call body (and message inside a batch), 32 KB."""
    max_inflight_bytes: int = 64 * 1024 * 1024
    """Bodies being processed at once before new requests get 429."""
    max_inflight_requests: int = 512
    retry_after_seconds: int = 1
    produce_timeout_seconds: float = 30.0
    read_timeout_seconds: float = 60.0
    """Longest a body may take to arrive (a slow sender holds a connection, not more)."""


# A message id is "1" once its events are acknowledged (seen) or the request's own token
# while they are being produced (pending, short expiry). One script per step, each one
# round trip for all of a request's ids: a third of the cost of a pipeline of SETs.
# Mark: 1 = pending for this request now, 0 = seen (or twice in this request), 2 = pending
# for another request still in flight.
_MARK_PENDING = """
local marks = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, ARGV[1], 'NX', 'EX', ARGV[2]) then
    marks[i] = 1
  else
    local held = redis.call('GET', key)
    if held == '1' or held == ARGV[1] then marks[i] = 0 else marks[i] = 2 end
  end
end
return marks
"""
_CONFIRM_SEEN = """
for i, key in ipairs(KEYS) do redis.call('SET', key, '1', 'EX', ARGV[1]) end
return #KEYS
"""
# Only this request's own pending marks: another request may hold the id by now.
_RELEASE_PENDING = """
local released = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
    released = released + 1
  end
end
return released
"""
_SEEN, _MARKED, _IN_FLIGHT = 0, 1, 2


MAX_JOINED_BYTES = 900 * 1024
"""Largest envelope the group commit makes: under Kafka's default 1 MB message limit."""


@dataclass(slots=True)
class _Gathering:
    """Events of one or more requests on their way to one partition, as one message."""

    key: str
    """The first person's id: the message's Kafka key (every person in it shares its
    partition)."""
    done: asyncio.Future[None]
    encoded: list[bytes] = field(default_factory=list)
    size: int = 0


class GroupCommit:
    """Joins the events of requests accepted close together into one envelope per
    (workspace, partition) of the events topic; see the module docstring."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, linger_seconds: float) -> None:
        self.producer = producer
        self.topic = topic
        self.linger = linger_seconds
        self._open: dict[tuple[str, int], _Gathering] = {}
        self._ready: deque[tuple[str, int, _Gathering]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._sender: asyncio.Task[None] | None = None
        self._partition_of: KeyPartitions | None = None

    async def add(self, workspace: str, events: Iterable[Event]) -> list[asyncio.Future[None]]:
        """Queue ``events``; returns the futures of the messages that will carry them
        (done when Kafka acknowledges them, or failed with the producer's error)."""
        partition_of = await self._partitions()
        by_key: dict[str, list[Event]] = {}
        for event in events:
            key = event.actor or event.account_id or event.message_id
            by_key.setdefault(key, []).append(event)
        waits: list[asyncio.Future[None]] = []
        for key, group in by_key.items():
            partition = partition_of(kafka_key(workspace, key))
            encoded = [orjson.dumps(event.to_wire()) for event in group]
            size = sum(map(len, encoded)) + len(encoded)
            slot = (workspace, partition)
            gathering = self._open.get(slot)
            if gathering is not None and gathering.size + size > MAX_JOINED_BYTES:
                self._ready.append((workspace, partition, self._open.pop(slot)))
                gathering = None
            if gathering is None:
                gathering = _Gathering(key, asyncio.get_running_loop().create_future())
                self._open[slot] = gathering
            gathering.encoded += encoded
            gathering.size += size
            if gathering.done not in waits:
                waits.append(gathering.done)
        if self._ready:
            self._flush()
        elif self._open and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.linger, self._flush)
        return waits

    async def close(self) -> None:
        """Send what is gathered and wait until it has been handed to the producer."""
        self._flush()
        if self._sender is not None:
            await self._sender

    async def _partitions(self) -> KeyPartitions:
        if self._partition_of is None:
            partitions = await self.producer.partitions_for(self.topic)
            self._partition_of = KeyPartitions(len(partitions))
        return self._partition_of

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._ready.extend((ws, partition, g) for (ws, partition), g in self._open.items())
        self._open = {}
        if self._ready and (self._sender is None or self._sender.done()):
            self._sender = asyncio.ensure_future(self._send_ready())

    async def _send_ready(self) -> None:
        # One sender at a time, first gathered first sent: a partition's messages keep
        # the order in which their requests were accepted.
        while self._ready:
            workspace, partition, gathering = self._ready.popleft()
            try:
                value = ENVELOPES.encode_joined(workspace, gathering.key, gathering.encoded)
                sent = await self.producer.send(self.topic, value,
                                                key=kafka_key(workspace, gathering.key),
                                                partition=partition)
            except Exception as exc:
                _settle(gathering.done, exc)
                continue
            sent.add_done_callback(functools.partial(_settle_from, gathering.done))


def _settle(done: asyncio.Future[None], exc: BaseException | None) -> None:
    if done.done():
        return
    if exc is None:
        done.set_result(None)
    else:
        done.set_exception(exc)
        done.exception()  # retrieved: a failure nobody waits for any more is not an error


def _settle_from(done: asyncio.Future[None], sent: asyncio.Future[Any]) -> None:
    _settle(done, asyncio.CancelledError() if sent.cancelled() else sent.exception())


@dataclass(frozen=True, slots=True)
class _Received:
    at: float
    """Epoch seconds the request was read."""
    check_each: bool
    """Whether messages must be measured one by one (see :func:`_may_hold_unfit`)."""
    fault: tuple[str, float] | None = None
    """The injected fault this request plays, if any (tests only)."""


@dataclass(slots=True)
class _Outcome:
    accepted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)


class _Reply(Exception):
    """Ends a request early with a status (and optional headers)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True, slots=True)
class Accepted:
    """What :meth:`Collector.accept` did with a list of messages."""

    accepted: int
    duplicates: int
    dead_lettered: int


class CollectorUnavailable(Exception):
    """Kafka or Redis cannot take messages now: answer ``status`` with ``headers``
    (503 or 429, with ``Retry-After``) so that the sender retries."""

    def __init__(self, status: int, headers: dict[str, str]) -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers


class Collector:
    """State shared by the collector's handlers: producer, Redis, limits, write keys."""

    def __init__(self, settings: Settings, limits: CollectorLimits | None = None) -> None:
        self.settings = settings
        self.limits = limits or CollectorLimits()
        self.workspaces_by_key = Settings.parse_pairs(settings.write_keys)
        self.topics = settings.topics
        self.producer: AIOKafkaProducer | None = None
        self.group_commit: GroupCommit | None = None
        self.redis: aioredis.Redis | None = None
        self._mark_pending: AsyncScript | None = None
        self._confirm_seen: AsyncScript | None = None
        self._release_pending: AsyncScript | None = None
        # Pending marks name their request: this process, then a request counter.
        self._token_prefix = "p:" + secrets.token_hex(8) + ":"
        self._tokens = itertools.count()
        # Pending marks that may have been set without an answer (Redis timed out) or
        # could not be released: released before the next marking, so that a client's
        # retry here is not held off until they expire.
        self._orphans: deque[tuple[list[str], str]] = deque(maxlen=1024)
        self._inflight_bytes = 0
        self._inflight_requests = 0
        self._faults: list[tuple[str, float]] = []
        self._start_lock = asyncio.Lock()
        configured = os.environ.get(FAULT_ENV)
        if configured:
            kind, _, delay = configured.partition(":")
            self.inject_fault(kind, delay=float(delay or 0))

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        async with self._start_lock:
            if self.producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.settings.kafka_bootstrap,
                    **self.settings.kafka_security.aiokafka_options(),
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=2,
                    max_batch_size=1024 * 1024,
                    max_request_size=4 * 1024 * 1024,
                    compression_type=None,
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self.producer = producer
                self.group_commit = GroupCommit(producer, self.topics.events,
                                                self.settings.collector_linger_ms / 1000)
            if self.redis is None:
                self.redis = redis_client(self.settings.redis_url,
                                          self.settings.redis_timeout_seconds)
                self._mark_pending = self.redis.register_script(_MARK_PENDING)
                self._confirm_seen = self.redis.register_script(_CONFIRM_SEEN)
                self._release_pending = self.redis.register_script(_RELEASE_PENDING)

    async def stop(self) -> None:
        group_commit, self.group_commit = self.group_commit, None
        if group_commit is not None:
            await group_commit.close()
        producer, self.producer = self.producer, None
        if producer is not None:
            await producer.stop()
        redis, self.redis = self.redis, None
        if redis is not None:
            await redis.aclose()

    # ----------------------------------------------------------------- test seam

    def inject_fault(self, kind: str, times: int = 1, delay: float = 0.0) -> None:
        """Make the next ``times`` requests misbehave, to prove that retries are safe.

        ``error_before``: answer 500 before doing anything. ``error_after_ack``: accept
        and produce everything, then answer 500 as if the reply was lost.
        ``delay_after_ack``: produce, then stall ``delay`` seconds before answering (a
        client timeout). ``delay_after_mark``: stall ``delay`` seconds between marking
        the ids pending and producing (a slow produce, or a crash in between).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}")
        self._faults.extend([(kind, delay)] * times)

    def _take_fault(self) -> tuple[str, float] | None:
        return self._faults.pop(0) if self._faults else None

    # ----------------------------------------------------------------- handlers

    def routes(self) -> list[web.RouteDef]:
        table = [web.post("/v1/batch", self.segment_batch),
                 web.post("/v1/import", self.segment_batch)]
        table += [web.post(f"/v1/{call}", self.segment_single) for call in SEGMENT_CALLS]
        table += [web.post(path, self.posthog) for path in POSTHOG_ROUTES]
        return table

    async def segment_batch(self, request: web.Request) -> web.Response:
        return await self._serve(request, "/v1/batch", self._segment_batch)

    async def segment_single(self, request: web.Request) -> web.Response:
        return await self._serve(request, "/v1/{call}", self._segment_single)

    async def posthog(self, request: web.Request) -> web.Response:
        return await self._serve(request, "/batch/", self._posthog)

    async def _serve(
        self,
        request: web.Request,
        route: str,
        handle: Callable[[web.Request, Any, _Received], Awaitable[_Outcome]],
    ) -> web.Response:
        status = 500
        admitted = False
        reserved = 0
        try:
            fault = self._take_fault()
            if fault is not None and fault[0] == "error_before":
                raise _Reply(500, "injected failure")
            limit = self.limits.max_message_bytes if route == "/v1/{call}" else \
                self.limits.max_batch_bytes
            declared = request.content_length
            if declared is not None and declared > limit:
                # Before back-pressure: a body that can never fit is 413, never a 429
                # that SDKs would retry for ever. JSON compresses, so a compressed body
                # over the limit inflates over it too.
                raise _Reply(413, f"body is larger than {limit} bytes")
            reserved = limit if declared is None else declared
            self._admit(reserved)
            admitted = True
            body = await self._read_body(request, limit)
            self._inflight_bytes += len(body) - reserved
            reserved = len(body)
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise _Reply(400, "body is not JSON") from None
            received = _Received(time.time(), _may_hold_unfit(body), fault)
            outcome = await handle(request, payload, received)
            if fault is not None and fault[0] in ("error_after_ack", "delay_after_ack"):
                if fault[0] == "error_after_ack":
                    raise _Reply(500, "injected failure after acknowledgement")
                await asyncio.sleep(fault[1])
            status = 200
            return web.json_response(
                {"success": True, "status": 1, "accepted": outcome.accepted,
                 "duplicates": outcome.duplicates, "rejected": outcome.dead_lettered},
                dumps=_dumps_text,
            )
        except _Reply as reply:
            status = reply.status
            return web.json_response({"success": False, "error": reply.message},
                                     status=reply.status, headers=reply.headers,
                                     dumps=_dumps_text)
        except (KafkaError, RedisError, OSError) as exc:  # e.g. not connected yet
            log.warning("collector could not reach Kafka or Redis: %s", exc)
            status = 503
            return web.json_response({"success": False, "error": "retry later"}, status=503,
                                     headers={"Retry-After": str(self.limits.retry_after_seconds)},
                                     dumps=_dumps_text)
        except Exception:  # never let one request take the worker down
            log.exception("collector failed on %s", route)
            status = 500
            return web.json_response({"success": False, "error": "internal error"},
                                     status=500, dumps=_dumps_text)
        finally:
            if admitted:
                self._inflight_requests -= 1
                self._inflight_bytes -= reserved
            metrics.HTTP_REQUESTS.labels(route=route, status=str(status)).inc()

    def _admit(self, declared: int) -> None:
        """Back-pressure: refuse (429) while too many bytes or requests are in flight."""
        limits = self.limits
        if (self._inflight_requests >= limits.max_inflight_requests
                or self._inflight_bytes + declared > limits.max_inflight_bytes):
            raise _Reply(429, "collector is busy, retry later",
                         {"Retry-After": str(limits.retry_after_seconds)})
        self._inflight_requests += 1
        self._inflight_bytes += declared

    async def _read_body(self, request: web.Request, limit: int) -> bytes:
        """The whole body, however many network reads it takes, refused (413) as soon as
        more than ``limit`` bytes arrived either as sent or after decompression."""
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in _CONTENT_ENCODINGS:
            raise _Reply(400, f"unsupported Content-Encoding {encoding!r}")
        # aiohttp inflates gzip/deflate bodies itself, in bounded steps and only as fast
        # as they are read, so stopping at the limit bounds a compression bomb; counting
        # what arrived compressed too bounds a stream that inflates to little, and the
        # read timeout one that inflates to nothing at all.
        content = request.content
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.limits.read_timeout_seconds):
                async for chunk in content.iter_any():
                    size += len(chunk)
                    if size > limit or (content.total_compressed_bytes or 0) > limit:
                        raise _Reply(413, f"body is larger than {limit} bytes")
                    chunks.append(chunk)
        except (HttpProcessingError, RequestPayloadError):
            raise _Reply(400, f"body is not valid {encoding or 'HTTP'}") from None
        except TimeoutError:
            raise _Reply(408, f"body did not arrive within "
                              f"{self.limits.read_timeout_seconds:g} s") from None
        return b"".join(chunks)

    # ----------------------------------------------------------------- sources

    async def _segment_batch(self, request: web.Request, payload: Any,
                             received: _Received) -> _Outcome:
        if not isinstance(payload, dict) or not isinstance(payload.get("batch"), list):
            raise _Reply(400, "expected a JSON object with a batch list")
        workspace = self._workspace(request, payload.get("writeKey"))
        messages: list[Any] = payload["batch"]
        self._check_batch(payload, messages, received)
        sent_at = parse_time_lenient(payload.get("sentAt"))
        shared_context = payload.get("context")
        if isinstance(shared_context, dict):
            messages = [_with_context(m, shared_context) for m in messages]
        return await self._accept(workspace, messages, received, sent_at,
                                  segment_family_source)

    async def _segment_single(self, request: web.Request, payload: Any,
                              received: _Received) -> _Outcome:
        if not isinstance(payload, dict):
            raise _Reply(400, "expected a JSON object")
        workspace = self._workspace(request, payload.get("writeKey"))
        self._check_single(payload, received)
        call = request.path.rstrip("/").rsplit("/", 1)[-1]
        message = {**payload, "type": call}
        return await self._accept(workspace, [message], received, None,
                                  segment_family_source)

    async def _posthog(self, request: web.Request, payload: Any,
                       received: _Received) -> _Outcome:
        sent_at: float | None = None
        if isinstance(payload, list):
            messages = payload
            api_key = next((_posthog_key(m) for m in messages if _posthog_key(m)), None)
        elif isinstance(payload, dict) and isinstance(payload.get("batch"), list):
            messages = payload["batch"]
            api_key = payload.get("api_key") or next(
                (_posthog_key(m) for m in messages if _posthog_key(m)), None)
            sent_at = parse_time_lenient(payload.get("sent_at") or payload.get("sentAt"))
        elif isinstance(payload, dict) and "event" in payload:
            messages = [payload]
            api_key = _posthog_key(payload)
        else:
            raise _Reply(400, "expected a PostHog batch or event")
        workspace = self._workspace(request, api_key)
        if messages and messages[0] is payload:
            self._check_single(payload, received)
        else:
            self._check_batch(payload, messages, received)
        return await self._accept(workspace, messages, received, sent_at,
                                  lambda _m: Source.POSTHOG)

    def _workspace(self, request: web.Request, body_key: Any) -> str:
        key = _basic_auth_user(request.headers.get("Authorization"))
        if not key and isinstance(body_key, str):
            key = body_key
        workspace = self.workspaces_by_key.get(key) if key else None
        if workspace is None:
            raise _Reply(401, "unknown or missing write key",
                         {"WWW-Authenticate": 'Basic realm="telltale"'})
        return workspace

    # ----------------------------------------------------------------- bounds

    def _check_batch(self, payload: dict[str, Any] | list[Any], messages: list[Any],
                     received: _Received) -> None:
        """Refuse a batch whose cost does not depend on its messages' content: too many
        messages (413), fields of its own too deep to write back (400), a shared context
        above the message limit (413: merged into every message, it would make each one
        too large). Messages themselves are measured one by one, and dead-lettered."""
        cap = self.settings.collector_max_messages
        if len(messages) > cap:
            raise _Reply(413, f"batch has {len(messages)} messages, more than {cap}")
        if not received.check_each or not isinstance(payload, dict):
            return
        own = {key: value for key, value in payload.items() if key != "batch"}
        if _written_size(own) is None:
            raise _Reply(400, f"batch fields are nested deeper than {MAX_DEPTH} levels")
        context = payload.get("context")
        if isinstance(context, dict):
            context_size = _written_size(context)
            if context_size is not None and context_size > self.limits.max_message_bytes:
                raise _Reply(413, f"batch context is {context_size} bytes, larger than "
                                  f"{self.limits.max_message_bytes}")

    def _check_single(self, payload: Any, received: _Received) -> None:
        """A single call's body is its message: too deep to write back is 400."""
        if received.check_each and _written_size(payload) is None:
            raise _Reply(400, f"body is nested deeper than {MAX_DEPTH} levels")

    # ----------------------------------------------------------------- accept

    async def accept(self, workspace: str, messages: list[dict[str, Any]], source: Source,
                     received_at: float) -> Accepted:
        """Take Segment-spec ``messages`` of ``workspace`` as an SDK's batch is taken: each
        checked and normalised, deduplicated by message id, sent with the group commit,
        the bad ones dead-lettered. Used by other intakes (billing and support webhooks);
        raises :class:`CollectorUnavailable` when Kafka or Redis cannot take them now."""
        try:
            outcome = await self._accept(workspace, list(messages), _Received(received_at, True),
                                         None, lambda _message: source)
        except _Reply as reply:
            raise CollectorUnavailable(reply.status, reply.headers) from None
        return Accepted(outcome.accepted, outcome.duplicates, outcome.dead_lettered)

    async def dead_letter(self, workspace: str, dead: DeadLetter) -> None:
        """Send ``dead`` to the events dead-letter topic and wait for Kafka's ack; raises
        :class:`CollectorUnavailable` when Kafka cannot take it now."""
        try:
            await self._produce(workspace, [], [dead])
        except _Reply as reply:
            raise CollectorUnavailable(reply.status, reply.headers) from None

    async def _accept(self, workspace: str, messages: list[Any], received: _Received,
                      sent_at: float | None, source_of: Callable[[Any], Source]
                      ) -> _Outcome:
        outcome = _Outcome()
        events: list[Event] = []
        # Counted per request and added once: a labelled counter costs microseconds.
        seen: Counter[tuple[str, str]] = Counter()
        contexts: dict[Source, NormalizeContext] = {}
        received_at = received.at
        for message in messages:
            source = source_of(message)
            ctx = contexts.get(source)
            if ctx is None:
                ctx = contexts[source] = NormalizeContext(
                    workspace, received_at, source, sent_at, check_size=received.check_each)
            result = normalize(message, ctx)
            seen[(source.value, _type_label(message))] += 1
            if isinstance(result, Rejection):
                outcome.dead_letters.append(DeadLetter(
                    result.reason, result.detail, source.value, workspace, received_at,
                    payload=message, message_id=_message_id_of(message)))
            else:
                events.append(result)
        token = self._token_prefix + str(next(self._tokens))
        fresh, duplicates = await self._deduplicate(workspace, events, token)
        try:
            if received.fault is not None and received.fault[0] == "delay_after_mark":
                await asyncio.sleep(received.fault[1])
            await self._produce(workspace, fresh, outcome.dead_letters)
        except BaseException:
            await self._release(workspace, fresh, token)
            raise
        await self._confirm(workspace, fresh)
        outcome.accepted = len(fresh)
        outcome.duplicates = len(duplicates)
        outcome.dead_lettered = len(outcome.dead_letters)
        for (source_label, type_label), count in seen.items():
            metrics.EVENTS_RECEIVED.labels(source=source_label, type=type_label).inc(count)
        for source_label, count in Counter(e.source.value for e in fresh).items():
            metrics.EVENTS_ACCEPTED.labels(source=source_label).inc(count)
        for source_label, count in Counter(e.source.value for e in duplicates).items():
            metrics.EVENTS_DEDUPLICATED.labels(source=source_label).inc(count)
        for reason, count in Counter(d.reason for d in outcome.dead_letters).items():
            metrics.EVENTS_DEAD_LETTERED.labels(reason=reason).inc(count)
        return outcome

    def _dedup_key(self, workspace: str, message_id: str) -> str:
        return f"{self.settings.topic_prefix}:dedup:{workspace}:{message_id}"

    async def _deduplicate(self, workspace: str, events: list[Event], token: str
                           ) -> tuple[list[Event], list[Event]]:
        """Split ``events`` into (first seen, already seen) in one Redis round trip,
        marking the first seen pending under ``token``. An id pending for a request
        still in flight (a retry racing its original, or one whose worker died before
        producing) is 503: only the original's outcome says whether it is a duplicate."""
        if not events:
            return [], []
        await self.start()
        assert self._mark_pending is not None
        keys = [self._dedup_key(workspace, e.message_id) for e in events]
        try:
            await self._release_orphans()
            marks = await self._mark_pending(
                keys=keys, args=[token, self.settings.dedup_pending_seconds])
        except (RedisError, OSError) as exc:
            # A timed-out script may still run once Redis answers again.
            self._orphans.append((keys, token))
            log.warning("dedup store unavailable: %s", exc)
            raise self._unavailable("deduplication store unavailable") from None
        fresh: list[Event] = []
        seen: list[Event] = []
        in_flight = 0
        for event, mark in zip(events, marks, strict=True):
            if mark == _MARKED:
                fresh.append(event)
            elif mark == _SEEN:
                seen.append(event)
            else:  # _IN_FLIGHT
                in_flight += 1
        if in_flight:
            await self._release(workspace, fresh, token)
            raise self._unavailable(f"{in_flight} messages are still being accepted by an "
                                    "earlier attempt")
        return fresh, seen

    async def _confirm(self, workspace: str, events: list[Event]) -> None:
        """Pending → seen, for ``dedup_ttl_seconds``, once Kafka acknowledged ``events``."""
        if not events or self._confirm_seen is None:
            return
        try:
            await self._confirm_seen(
                keys=[self._dedup_key(workspace, e.message_id) for e in events],
                args=[self.settings.dedup_ttl_seconds])
        except (RedisError, OSError) as exc:
            # The events are in Kafka: answer 200. The pending marks expire, and a late
            # retry is then caught by the score stage's recent message ids per user.
            log.error("could not confirm dedup marks after an acknowledged produce: %s", exc)

    async def _release(self, workspace: str, events: list[Event], token: str) -> None:
        """Drop this request's pending marks so that the client's retry is accepted."""
        if not events or self._release_pending is None:
            return
        keys = [self._dedup_key(workspace, e.message_id) for e in events]
        try:
            await self._release_pending(keys=keys, args=[token])
        except (RedisError, OSError) as exc:
            self._orphans.append((keys, token))
            log.error("could not release dedup marks after a failed produce: %s", exc)

    async def _release_orphans(self) -> None:
        """Release the pending marks of earlier requests that Redis did not answer (see
        ``_orphans``); raises, leaving them queued, while Redis still does not answer."""
        assert self._release_pending is not None
        while self._orphans:
            keys, token = self._orphans[0]
            await self._release_pending(keys=keys, args=[token])
            self._orphans.popleft()

    def _unavailable(self, why: str) -> _Reply:
        return _Reply(503, f"{why}, retry later",
                      {"Retry-After": str(self.limits.retry_after_seconds)})

    async def _produce(self, workspace: str, events: list[Event],
                       dead_letters: list[DeadLetter]) -> None:
        if not events and not dead_letters:
            return
        await self.start()
        producer, group_commit = self.producer, self.group_commit
        assert producer is not None and group_commit is not None
        try:
            # Shielded: a message's future is shared with the other requests it carries,
            # and one request giving up must not cancel it for them.
            futures: list[asyncio.Future[Any]] = [
                asyncio.shield(done) for done in await group_commit.add(workspace, events)
            ]
            futures += [
                await producer.send(self.topics.events_dlq, value, key=DEAD_LETTERS.key(dead))
                for dead, value in zip(dead_letters, self._dead_letter_values(dead_letters),
                                       strict=True)
            ]
            await asyncio.wait_for(asyncio.gather(*futures),
                                   timeout=self.limits.produce_timeout_seconds)
        except (KafkaError, TimeoutError) as exc:
            log.warning("events not acknowledged by Kafka: %s", exc)
            raise self._unavailable("events not acknowledged by Kafka") from None


    def _dead_letter_values(self, dead_letters: list[DeadLetter]) -> list[bytes]:
        """Records of one request's dead letters: each keeps a prefix of its message of at
        most ``dlq_payload_max_bytes``, until the request's ``dlq_request_max_bytes`` are
        spent; later ones keep reason, sizes and message id only. A small request (a
        gzip bomb of tiny messages under a shared context) cannot become megabytes of
        dead letters."""
        allowance = self.settings.dlq_request_max_bytes
        values: list[bytes] = []
        for dead in dead_letters:
            value = DEAD_LETTERS.encode(dead, min(self.settings.dlq_payload_max_bytes, allowance))
            allowance = max(allowance - len(value), 0)
            values.append(value)
        return values


def _may_hold_unfit(body: bytes) -> bool:
    """Whether a message in ``body`` could be above 32 KB or deeper than orjson writes.

    A message (even merged with a batch's context) is no larger than the body, and no
    deeper than the body has brackets: below both, messages need not be measured.
    """
    return len(body) > MAX_MESSAGE_BYTES or body.count(b"{") + body.count(b"[") > MAX_DEPTH


def _written_size(value: Any) -> int | None:
    """Bytes of ``value`` as JSON, or ``None`` when it is too deep to write."""
    try:
        return len(orjson.dumps(value))
    except TypeError:  # orjson.JSONEncodeError: the recursion limit, for parsed JSON
        return None


def _message_id_of(message: Any) -> str | None:
    """The id a client gave a message (Segment ``messageId``, PostHog ``uuid``), for its
    dead letter; only a plausible one (a string of at most 100 characters)."""
    if not isinstance(message, dict):
        return None
    value = message.get("messageId", message.get("uuid"))
    return value if isinstance(value, str) and 0 < len(value) <= MAX_MESSAGE_ID_CHARS \
        else None


def _basic_auth_user(header: str | None) -> str | None:
    """The write key of a Basic ``Authorization`` header: the user name (what the Segment
    and RudderStack SDKs send), or the password when the user name is empty."""
    credentials = basic_credentials(header)
    if credentials is None:
        return None
    user, password = credentials
    return user or password or None


def _posthog_key(message: Any) -> str | None:
    if not isinstance(message, dict):
        return None
    key = message.get("api_key") or message.get("token")
    props = message.get("properties")
    if not key and isinstance(props, dict):
        key = props.get("token")
    return key if isinstance(key, str) else None


def _with_context(message: Any, shared: dict[str, Any]) -> Any:
    """A batch-level ``context`` applies to each message, under its own context."""
    if not isinstance(message, dict):
        return message
    own = message.get("context")
    merged = {**shared, **own} if isinstance(own, dict) else shared
    return {**message, "context": merged}


_TYPE_LABELS = {t.value for t in EventType}


def _type_label(message: Any) -> str:
    """Bounded label for the received counter: a Segment type, or ``other``."""
    if isinstance(message, dict):
        raw = message.get("type")
        if isinstance(raw, str) and raw in _TYPE_LABELS:
            return raw
        event = message.get("event")
        if isinstance(event, str):
            return {"$identify": "identify", "$groupidentify": "group",
                    "$pageview": "page", "$screen": "screen",
                    "$create_alias": "alias"}.get(event, "track")
    return "other"


def _dumps_text(value: Any) -> str:
    return orjson.dumps(value).decode()


# --------------------------------------------------------------------- assembly

COLLECTOR_KEY: web.AppKey[Collector] = web.AppKey("collector", Collector)


def create_collector_app(settings: Settings, collector: Collector | None = None
                         ) -> web.Application:
    """A stand-alone aiohttp application serving only the collector routes."""
    collector = collector or Collector(settings)
    app = web.Application()
    app[COLLECTOR_KEY] = collector
    app.add_routes(collector.routes())

    async def on_startup(_app: web.Application) -> None:
        await collector.start()

    async def on_cleanup(_app: web.Application) -> None:
        await collector.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app

"""The HTTP collector: what Segment, RudderStack and PostHog SDKs post, onto the events
topic.

Routes (aiohttp; served by the worker's web server through :func:`register`, or on its
own by :func:`create_collector_app`):

- ``POST /v1/batch`` (also ``/v1/import``): Segment and RudderStack batches.
- ``POST /v1/track|identify|group|page|screen|alias``: one Segment call.
- ``POST /batch/``, ``/capture/``, ``/e/``: PostHog batches or single captures.

Answers, exactly: **200** only once Kafka acknowledged every accepted event (acks=all,
idempotent producer); **400** when the body is not JSON, not a batch, or its compression
is broken; **401** for a missing or unknown write key (Basic auth user, ``writeKey`` in
the body, or PostHog's ``api_key``); **413** when the body (after decompression) exceeds
500 KB for a batch or 32 KB for a single call; **429** with ``Retry-After`` when too many
bytes or requests are in flight; **503** with ``Retry-After`` when Kafka or Redis is
unavailable (every SDK retries it, with the same message ids). Inside a batch a message
that cannot be accepted (including one above 32 KB) does not fail the batch: it goes to
the dead-letter topic with its reason and the rest are accepted.

Deduplication: Redis ``SET key NX EX ttl`` per (workspace, message id), all of one
request's ids in one round trip (a small Lua script), *before* producing. Why here and not as state
in the resolve stage: retries are a property of HTTP clients and arrive at whichever
worker the load balancer picks, so the only place every retry meets its original is a
store shared by all collectors; Redis expires keys by itself (``dedup_ttl_seconds``,
48 h by default, over Segment's 24 h); memory is bounded by traffic, not by how
active a user is (a per-user id list in RocksDB would grow with every event and be
re-serialised on each one); and dropping a duplicate before Kafka means nothing
downstream ever sees it. If producing fails after the ids were marked, the marks are
removed again so the client's retry is not mistaken for a duplicate. When Redis cannot
be reached the collector answers 503 rather than risk double counting.

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
import base64
import binascii
import functools
import logging
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
from agents.settings import Settings
from streams.dlq import DeadLetter
from streams.envelope import KeyPartitions, encode_joined_envelope, kafka_key
from streams.events import Event, EventType, Source
from streams.normalize import (
    MAX_MESSAGE_BYTES,
    NormalizeContext,
    Rejection,
    normalize,
    parse_time_lenient,
    segment_family_source,
)

log = logging.getLogger(__name__)

SEGMENT_CALLS = ("track", "identify", "group", "page", "screen", "alias")
_CONTENT_ENCODINGS = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})
POSTHOG_ROUTES = ("/batch/", "/batch", "/capture/", "/capture", "/e/", "/e")



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


# SET key 1 NX EX ttl for every key, in one command: a third of the cost of a pipeline of
# SETs (fewer bytes to pack and parse), and still one round trip per request.
_MARK_SEEN = """
local marks = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, '1', 'NX', 'EX', ARGV[1]) then marks[i] = 1 else marks[i] = 0 end
end
return marks
"""


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
                value = encode_joined_envelope(workspace, gathering.key, gathering.encoded)
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
    check_size: bool
    """Whether messages must be measured one by one (the body is above 32 KB)."""


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
        self._mark_seen: AsyncScript | None = None
        self._inflight_bytes = 0
        self._inflight_requests = 0
        self._faults: list[tuple[str, float]] = []
        self._start_lock = asyncio.Lock()

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        async with self._start_lock:
            if self.producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.settings.kafka_bootstrap,
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
                self.redis = aioredis.Redis.from_url(self.settings.redis_url)
                self._mark_seen = self.redis.register_script(_MARK_SEEN)

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
        client timeout).
        """
        if kind not in {"error_before", "error_after_ack", "delay_after_ack"}:
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
            reserved = request.content_length or 0
            self._admit(reserved)
            admitted = True
            body = await self._read_body(request, route)
            self._inflight_bytes += len(body) - reserved
            reserved = len(body)
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise _Reply(400, "body is not JSON") from None
            received = _Received(time.time(), check_size=len(body) > MAX_MESSAGE_BYTES)
            outcome = await handle(request, payload, received)
            if fault is not None:
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

    async def _read_body(self, request: web.Request, route: str) -> bytes:
        limit = self.limits.max_message_bytes if route == "/v1/{call}" else \
            self.limits.max_batch_bytes
        if request.content_length is not None and request.content_length > limit:
            # Compressed JSON is never larger than the JSON itself.
            raise _Reply(413, f"body is larger than {limit} bytes")
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in _CONTENT_ENCODINGS:
            raise _Reply(400, f"unsupported Content-Encoding {encoding!r}")
        # aiohttp inflates gzip/deflate bodies itself, in bounded steps and only as fast
        # as they are read, so reading at most limit + 1 bytes bounds a compression bomb.
        try:
            body = await request.content.read(limit + 1)
        except (HttpProcessingError, RequestPayloadError):
            raise _Reply(400, f"body is not valid {encoding}") from None
        if len(body) > limit:
            raise _Reply(413, f"body is larger than {limit} bytes")
        return body

    # ----------------------------------------------------------------- sources

    async def _segment_batch(self, request: web.Request, payload: Any,
                             received: _Received) -> _Outcome:
        if not isinstance(payload, dict) or not isinstance(payload.get("batch"), list):
            raise _Reply(400, "expected a JSON object with a batch list")
        workspace = self._workspace(request, payload.get("writeKey"))
        sent_at = parse_time_lenient(payload.get("sentAt"))
        shared_context = payload.get("context")
        messages: list[Any] = payload["batch"]
        if isinstance(shared_context, dict):
            messages = [_with_context(m, shared_context) for m in messages]
        return await self._accept(workspace, messages, received, sent_at,
                                  segment_family_source)

    async def _segment_single(self, request: web.Request, payload: Any,
                              received: _Received) -> _Outcome:
        if not isinstance(payload, dict):
            raise _Reply(400, "expected a JSON object")
        workspace = self._workspace(request, payload.get("writeKey"))
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

    # ----------------------------------------------------------------- accept

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
                    workspace, received_at, source, sent_at, check_size=received.check_size)
            result = normalize(message, ctx)
            seen[(source.value, _type_label(message))] += 1
            if isinstance(result, Rejection):
                outcome.dead_letters.append(DeadLetter(
                    result.reason, result.detail, source.value, workspace, received_at,
                    payload=message))
            else:
                events.append(result)
        fresh, duplicates = await self._deduplicate(workspace, events)
        try:
            await self._produce(workspace, fresh, outcome.dead_letters)
        except BaseException:
            await self._forget(workspace, fresh)
            raise
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

    async def _deduplicate(self, workspace: str, events: list[Event]
                           ) -> tuple[list[Event], list[Event]]:
        """Split ``events`` into (first seen, already seen) in one Redis round trip."""
        if not events:
            return [], []
        await self.start()
        assert self._mark_seen is not None
        try:
            marks = await self._mark_seen(
                keys=[self._dedup_key(workspace, e.message_id) for e in events],
                args=[self.settings.dedup_ttl_seconds])
        except (RedisError, OSError) as exc:
            log.warning("dedup store unavailable: %s", exc)
            raise _Reply(503, "deduplication store unavailable, retry later",
                         {"Retry-After": str(self.limits.retry_after_seconds)}) from None
        fresh: list[Event] = []
        seen: list[Event] = []
        for event, marked in zip(events, marks, strict=True):
            (fresh if marked else seen).append(event)
        return fresh, seen

    async def _forget(self, workspace: str, events: list[Event]) -> None:
        if not events or self.redis is None:
            return
        try:
            await self.redis.delete(*(self._dedup_key(workspace, e.message_id)
                                      for e in events))
        except (RedisError, OSError) as exc:  # the retry will be taken for a duplicate
            log.error("could not release dedup marks after a failed produce: %s", exc)

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
                await producer.send(self.topics.events_dlq, dead.to_bytes(), key=dead.key())
                for dead in dead_letters
            ]
            await asyncio.wait_for(asyncio.gather(*futures),
                                   timeout=self.limits.produce_timeout_seconds)
        except (KafkaError, TimeoutError) as exc:
            log.warning("events not acknowledged by Kafka: %s", exc)
            raise _Reply(503, "events not acknowledged by Kafka, retry later",
                         {"Retry-After": str(self.limits.retry_after_seconds)}) from None


def _basic_auth_user(header: str | None) -> str | None:
    """The write key of a Basic ``Authorization`` header: the user name (what the Segment
    and RudderStack SDKs send), or the password when the user name is empty."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, _, password = decoded.partition(":")
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


def register(app: Any, settings: Settings) -> None:
    """Serve the collector from the Faust worker's own web server (same port as the API,
    page and ``/metrics``). Its producer starts with the app and stops before it."""
    collector = Collector(settings)
    web_app: web.Application = app.web.web_app
    web_app.router.add_routes(collector.routes())
    from agents.sources import mount as mount_sources  # sources build on the collector

    mount_sources(web_app.router, collector)

    @app.task
    async def start_collector() -> None:
        try:
            await collector.start()
        except (KafkaError, RedisError, OSError) as exc:  # the first request retries
            log.warning("collector not started yet: %s", exc)

    async def stop_collector(*_args: Any, **_kwargs: Any) -> None:
        await collector.stop()

    app.on_before_shutdown.connect(stop_collector)

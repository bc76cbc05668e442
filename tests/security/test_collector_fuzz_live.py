"""A seeded fuzz run through the live collector (real Kafka, real Redis, real sockets):
valid, malformed and hostile payloads mixed, many per request. Whatever arrives, the
answer is documented (no 5xx but a documented 503), every accepted event is on the
events topic exactly once, and every rejected payload has a reason: the request's
status, or a dead letter with a documented reason.

Each generated payload knows what must become of it: accepted, a given reason, or
"either" (random JSON in its fields: accepted or dead-lettered, but never both, never
twice, never lost).
"""

from __future__ import annotations

import asyncio
import gzip
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest

from streams.normalize import REASONS
from tests.security.harness import AUTH, Live

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SEED = 20_261_202
PAYLOADS = 10_000
CONCURRENCY = 6
EITHER = "either"
ACCEPT = "accept"
DEEP = "<deep>"
"""Placeholder replaced by JSON nested 300 levels (orjson will not write it)."""
DEEP_JSON = orjson.dumps(DEEP)
NESTED = b'{"k":' * 300 + b"1" + b"}" * 300
HOSTILE_TEXT = ["u\x00", "u\x1f", "a\nb", "\u202eu", "x" * 300, "", " ", "😀", "\ud7ff"]
DOCUMENTED_STATUSES = {200, 400, 401, 408, 413, 503}


@dataclass
class Tally:
    """What was sent and what came back."""

    expected: dict[str, str] = field(default_factory=dict)
    """message id → ACCEPT, EITHER or the reason it must be dead-lettered with."""
    untracked: Counter[str] = field(default_factory=Counter)
    """Reasons expected for messages without a usable id (not an object, bad id)."""
    duplicates_sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    body_rejections: Counter[str] = field(default_factory=Counter)
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    payloads: int = 0
    requests: int = 0
    acknowledged: list[dict[str, Any]] = field(default_factory=list)
    """Messages whose request was answered 200 and that must be accepted: resent later."""


class Generator:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.serial = 0

    def new_id(self) -> str:
        self.serial += 1
        return f"fz-{self.serial}"

    def json_value(self, depth: int = 0) -> Any:
        rng = self.rng
        roll = rng.random()
        if depth < 3 and roll < 0.15:
            return [self.json_value(depth + 1) for _ in range(rng.randrange(3))]
        if depth < 3 and roll < 0.3:
            return {rng.choice(["a", "$set", "groupId", "k" * 200]): self.json_value(depth + 1)
                    for _ in range(rng.randrange(3))}
        return rng.choice([None, True, False, 0, -1, 2**63 - 1, -(2**63), 1.5e308, 1e-300,
                           "", "x", "2024-05-01T10:00:00Z", 1_714_557_600_000,
                           *HOSTILE_TEXT])

    def segment(self) -> tuple[Any, str | None, str]:
        """(message, its id or None, what must become of it)."""
        rng, mid = self.rng, self.new_id()
        user = f"user-{rng.randrange(200)}"
        base: dict[str, Any] = {"type": "track", "messageId": mid, "userId": user,
                                "event": "Report Published",
                                "timestamp": "2024-05-01T10:00:00Z"}
        kind = rng.choices(
            ["track", "identify", "group", "page", "missing_identity", "unknown_type",
             "bad_identity", "bad_timestamp", "skew", "message_too_large", "too_deep",
             "missing_group_id", "missing_event_name", "not_an_object", "bad_message_id",
             "either"],
            weights=[30, 6, 5, 5, 4, 3, 6, 3, 2, 1, 2, 2, 2, 2, 2, 25])[0]
        if kind == "track":
            return {**base, "properties": {"n": rng.randrange(100)}}, mid, ACCEPT
        if kind == "identify":
            return ({"type": "identify", "messageId": mid, "userId": user,
                     "traits": {"plan": "pro"}}, mid, ACCEPT)
        if kind == "group":
            return ({"type": "group", "messageId": mid, "userId": user,
                     "groupId": f"acct-{rng.randrange(20)}"}, mid, ACCEPT)
        if kind == "page":
            return {**base, "type": "page", "name": "Home"}, mid, ACCEPT
        if kind == "missing_identity":
            return {**base, "userId": None}, mid, kind
        if kind == "unknown_type":
            return {**base, "type": rng.choice(["click", 5, ["track"]])}, mid, kind
        if kind == "bad_identity":
            where = rng.choice(["userId", "anonymousId", "context"])
            bad = rng.choice(["u\x00", "u\x1f1", "a\nb", "\u202eu", "u\x85", "x" * 300,
                              [1], {"id": 1}])
            if where == "context":
                return {**base, "context": {"groupId": bad}}, mid, kind
            return {**base, where: bad}, mid, kind
        if kind == "bad_timestamp":
            return {**base, "timestamp": rng.choice(["yesterday", 0, "3000-01-01"])}, mid, \
                kind
        if kind == "skew":
            return ({**base, "originalTimestamp": "2001-01-01T00:00:00Z",
                     "sentAt": "2099-01-01T00:00:00Z"}, mid, "bad_timestamp")
        if kind == "message_too_large":
            return {**base, "properties": {"pad": "x" * 40_000}}, mid, kind
        if kind == "too_deep":
            return {**base, "properties": DEEP}, mid, kind
        if kind == "missing_group_id":
            return {**base, "type": "group"}, mid, kind
        if kind == "missing_event_name":
            return {**base, "event": None}, mid, kind
        if kind == "not_an_object":
            return rng.choice([5, "text", None, [base]]), None, kind
        if kind == "bad_message_id":
            return {**base, "messageId": rng.choice([7, "m" * 101, ""])}, None, kind
        fuzzed = dict(base)
        for name in rng.sample(["type", "userId", "anonymousId", "event", "timestamp",
                                "sentAt", "properties", "traits", "context", "groupId",
                                "originalTimestamp"], rng.randrange(1, 4)):
            fuzzed[name] = self.json_value()
        return fuzzed, mid, EITHER

    def posthog(self) -> tuple[Any, str | None, str]:
        rng, mid = self.rng, self.new_id()
        base: dict[str, Any] = {"event": "Logged In", "uuid": mid,
                                "distinct_id": f"user-{rng.randrange(200)}",
                                "properties": {"$groups": {"company": "acct-1"}}}
        kind = rng.choices(["ok", "bad_identity", "missing_identity", "either"],
                           weights=[60, 10, 10, 20])[0]
        if kind == "ok":
            return base, mid, ACCEPT
        if kind == "bad_identity":
            return {**base, "distinct_id": rng.choice(["u\x00", "\u2066u", "a\rb"])}, mid, \
                kind
        if kind == "missing_identity":
            return {**base, "distinct_id": None}, mid, kind
        fuzzed = dict(base)
        for name in rng.sample(["event", "distinct_id", "timestamp", "properties",
                                "sent_at"], rng.randrange(1, 3)):
            fuzzed[name] = self.json_value()
        return fuzzed, mid, EITHER


@dataclass(frozen=True)
class Request:
    path: str
    body: bytes
    headers: dict[str, str]
    messages: list[tuple[Any, str | None, str]]
    """What each message must become; empty for a request refused as a whole."""
    refused: str | None = None
    """For a hostile body: why it must be refused (its answer must not be 200)."""


def _encode(value: Any) -> bytes:
    return orjson.dumps(value).replace(DEEP_JSON, NESTED)


def hostile_body(gen: Generator) -> Request:
    """One payload that is the whole request: refused with a 4xx and a reason."""
    rng = gen.rng
    # Closed after the answer: a server may close a connection whose body it refused,
    # and a pooled connection reused at that moment would fail the next request.
    auth = {"Authorization": AUTH, "Content-Type": "application/json", "Connection": "close"}
    kind = rng.choice(["bad_json", "not_a_batch", "bad_gzip", "deep_body", "oversize",
                       "too_many", "unknown_key", "bad_encoding", "random_bytes",
                       "deep_batch_field"])
    body: bytes
    headers = dict(auth)
    path = "/v1/batch"
    if kind == "bad_json":
        body = b'{"batch": [' + bytes(rng.randrange(256) for _ in range(30))
    elif kind == "not_a_batch":
        body = orjson.dumps(rng.choice([[1, 2], {"batch": 5}, "x", 3, {"events": []}]))
    elif kind == "bad_gzip":
        body = gzip.compress(b'{"batch": []}')[:-6] + b"\x00\x01"
        headers["Content-Encoding"] = "gzip"
    elif kind == "deep_body":
        path = "/v1/track"
        body = _encode({"userId": "u", "event": "x", "properties": DEEP})
    elif kind == "oversize":
        body = orjson.dumps({"batch": [{"pad": "x" * 1000}] * 600})
        if rng.random() < 0.5:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
    elif kind == "too_many":
        body = orjson.dumps({"batch": [{}] * 2501})
    elif kind == "unknown_key":
        headers["Authorization"] = "Basic bm9wZTo="  # "nope:"
        body = orjson.dumps({"batch": [{"type": "track"}]})
    elif kind == "bad_encoding":
        headers["Content-Encoding"] = "br"
        body = orjson.dumps({"batch": []})
    elif kind == "deep_batch_field":
        body = _encode({"batch": [], "context": {"x": DEEP}})
    else:
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    return Request(path, body, headers, [], refused=kind)


def batch_request(gen: Generator, tally: Tally, size: int) -> Request:
    rng = gen.rng
    posthog = rng.random() < 0.2
    messages = [gen.posthog() if posthog else gen.segment() for _ in range(size)]
    resent: list[tuple[Any, str | None, str]] = []
    if tally.acknowledged and rng.random() < 0.3:
        # SDK retries: messages already acknowledged come again, now duplicates.
        pool = [m for m in tally.acknowledged if ("uuid" in m) == posthog]
        resent = [(m, None, "duplicate") for m in rng.sample(pool, min(len(pool), 3))]
    if rng.random() < 0.1:
        # The same message twice in one request: the second is a duplicate.
        valid = [m for m in messages if m[2] == ACCEPT]
        if valid:
            resent.append((valid[0][0], None, "duplicate"))
    everything = messages + resent
    if posthog:
        wrapper: dict[str, Any] = {"api_key": "ignored", "batch": [m for m, _, _ in everything]}
        path = "/batch/"
    else:
        wrapper = {"batch": [m for m, _, _ in everything], "sentAt": "2024-05-01T10:00:00Z"}
        if rng.random() < 0.3:
            wrapper["context"] = {"library": {"name": "analytics-fuzz"}}
        path = "/v1/batch"
    body = _encode(wrapper)
    headers = {"Authorization": AUTH, "Content-Type": "application/json"}
    if rng.random() < 0.3:
        body = gzip.compress(body, compresslevel=1)
        headers["Content-Encoding"] = "gzip"
    return Request(path, body, headers, everything)


async def _send(session: aiohttp.ClientSession, url: str, request: Request,
                tally: Tally) -> None:
    for _attempt in range(20):
        async with session.post(url + request.path, data=request.body,
                                headers=request.headers) as reply:
            raw = await reply.read()
        # aiohttp itself refuses an encoding it cannot decode (br) with a plain-text 400.
        answer = orjson.loads(raw) if reply.content_type == "application/json" else \
            {"error": raw.decode(errors="replace")}
        tally.statuses[reply.status] += 1
        assert reply.status in DOCUMENTED_STATUSES, (reply.status, answer, request.refused)
        if reply.status == 503:  # a documented retry: the SDK waits and sends it again
            assert "Retry-After" in reply.headers
            await asyncio.sleep(0.2)
            continue
        if request.refused is not None:
            assert reply.status != 200, (request.refused, answer)
            assert answer["error"], request.refused
            tally.body_rejections[f"{request.refused}:{reply.status}"] += 1
            return
        assert reply.status == 200, (reply.status, answer)
        tally.accepted += answer["accepted"]
        tally.duplicates += answer["duplicates"]
        tally.rejected += answer["rejected"]
        tally.acknowledged += [m for m, _, fate in request.messages
                               if fate == ACCEPT and isinstance(m, dict)]
        return
    raise AssertionError(f"still 503 after 20 attempts: {request.path}")


async def _drive(live: Live, requests: list[Request], tally: Tally) -> None:
    queue: asyncio.Queue[Request] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            request = queue.get_nowait()
            # Resent duplicates refer to messages acknowledged by then (generation order).
            await _send(session, live.url, request, tally)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))


async def test_ten_thousand_hostile_payloads_get_documented_outcomes(
    serve_collector: Callable[..., Any]
) -> None:
    live: Live = await serve_collector()
    rng = random.Random(SEED)
    tally = Tally()
    gen = Generator(rng)
    started = time.monotonic()
    # Generated in rounds so that resent messages were acknowledged before being resent.
    while tally.payloads < PAYLOADS:
        target = min(tally.payloads + 1000, PAYLOADS)
        requests = generate_round(rng, gen, tally, target)
        tally.requests += len(requests)
        await _drive(live, requests, tally)
    sent_seconds = time.monotonic() - started

    final = await live.send("/v1/batch", {"batch": [{"type": "track", "userId": "last",
                                                      "event": "x", "messageId": "last"}]})
    assert final.status == 200, "the collector no longer answers after the fuzz run"
    events = await live.events()
    dead = [orjson.loads(r.value) for r in await live.dead_letters()]
    seconds = time.monotonic() - started

    on_topic = Counter(e.message_id for e in events)
    dead_by_id: dict[str, list[str]] = {}
    untracked: Counter[str] = Counter()
    for record in dead:
        assert record["reason"] in REASONS, record
        if "message_id" in record:
            dead_by_id.setdefault(record["message_id"], []).append(record["reason"])
        else:
            untracked[record["reason"]] += 1
    fates = Counter(tally.expected.values())
    summary = (f"{tally.payloads} payloads in {tally.requests} requests, {sent_seconds:.1f} s "
               f"sending, {seconds:.1f} s in all; statuses {dict(tally.statuses)}; "
               f"accepted {tally.accepted}, duplicates {tally.duplicates} "
               f"(resent {tally.duplicates_sent}), dead-lettered {tally.rejected}; "
               f"expected {dict(fates)}; dead-letter reasons "
               f"{dict(Counter(r['reason'] for r in dead))}; whole-request refusals "
               f"{dict(tally.body_rejections)}")
    print("\n" + summary)

    assert [i for i, n in on_topic.items() if n > 1] == [], summary
    assert tally.accepted + 1 == len(events), summary
    assert tally.rejected == len(dead), summary
    assert tally.duplicates == tally.duplicates_sent, summary
    assert untracked == tally.untracked, summary
    wrong: list[tuple[str, str, int, list[str]]] = []
    for mid, fate in tally.expected.items():
        reasons = dead_by_id.get(mid, [])
        arrived = on_topic.get(mid, 0)
        if fate == ACCEPT:
            ok = arrived == 1 and not reasons
        elif fate == EITHER:
            ok = (arrived == 1 and not reasons) or (arrived == 0 and len(reasons) == 1)
        else:
            ok = arrived == 0 and reasons == [fate]
        if not ok:
            wrong.append((mid, fate, arrived, reasons))
    assert wrong == [], f"{len(wrong)} payloads with the wrong outcome, e.g. {wrong[:5]}; " \
                        f"{summary}"
    assert set(on_topic) - set(tally.expected) == {"last"}, summary
    assert seconds < 240, summary


def generate_round(rng: random.Random, gen: Generator, tally: Tally, target: int
                   ) -> list[Request]:
    """Requests until ``target`` payloads; resent messages count as duplicates sent."""
    requests: list[Request] = []
    while tally.payloads < target:
        if rng.random() < 0.25:
            requests.append(hostile_body(gen))
            tally.payloads += 1
            continue
        request = batch_request(gen, tally, rng.randrange(10, 40))
        for _message, mid, fate in request.messages:
            tally.payloads += 1
            if fate == "duplicate":
                tally.duplicates_sent += 1
            elif mid is None:
                tally.untracked[fate] += 1
            else:
                tally.expected[mid] = fate
        requests.append(request)
    return requests

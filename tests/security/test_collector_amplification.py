"""A small request must not cost much more than its size: a gzip bomb of tiny rejected
messages under a large shared context yields bounded dead letters, and batches beyond
the message cap, or with a context above the message limit, are refused outright."""

from __future__ import annotations

import gzip
from typing import Any

import orjson

from tests.security.conftest import ServeCollector
from tests.security.harness import Live, track

GZIP = {"Content-Encoding": "gzip"}


def _rejected_messages(count: int) -> list[dict[str, Any]]:
    # No user id: every one is dead-lettered (missing_identity), after the merge.
    return [{"type": "track", "event": "x", "messageId": f"m-{i}"} for i in range(count)]


async def test_a_gzip_bomb_of_rejected_messages_yields_bounded_dead_letters(
    live: Live
) -> None:
    context = {"pad": "x" * 31_000}  # just under 32 KB, merged into all 2,500 messages
    raw = orjson.dumps({"context": context, "batch": _rejected_messages(2500)})
    body = gzip.compress(raw)
    assert len(body) < 10_000
    answer = await live.send("/v1/batch", body, headers=GZIP)
    assert (answer.status, answer.body["rejected"]) == (200, 2500), answer

    records = await live.dead_letters()
    total = sum(len(r.value) for r in records)
    unbounded = 2500 * 31_000
    settings = live.settings
    # Per-record prefixes until the request's allowance is spent, then ~300 bytes each.
    bound = settings.dlq_request_max_bytes + settings.dlq_payload_max_bytes + 2500 * 400
    print(f"\ngzip bomb: {len(body)} bytes sent, {len(raw)} inflated, {len(records)} dead "
          f"letters, {total} bytes (unbounded: {unbounded})")
    assert len(records) == 2500
    assert total < bound, f"{total} bytes of dead letters for {len(body)} bytes sent"
    decoded = [orjson.loads(r.value) for r in records]
    assert {d["reason"] for d in decoded} == {"missing_identity"}
    assert sorted(d["message_id"] for d in decoded) == sorted(f"m-{i}" for i in range(2500))
    assert all(d["truncated"] and d["payload_bytes"] > 31_000 for d in decoded)
    assert all(len(d.get("payload_prefix", "")) <= settings.dlq_payload_max_bytes
               for d in decoded)


async def test_message_cap_and_oversize_shared_context_are_413(
    serve_collector: ServeCollector
) -> None:
    live: Live = await serve_collector(collector_max_messages=100)
    over = await live.send("/v1/batch", gzip.compress(orjson.dumps(
        {"batch": [track(i) for i in range(101)]})), headers=GZIP)
    assert over.status == 413, over
    assert "more than 100" in over.body["error"]
    posthog = await live.send("/batch/", [{"event": "x", "distinct_id": "u"}] * 101)
    assert posthog.status == 413, posthog
    at_cap = await live.send("/v1/batch", {"batch": [track(i) for i in range(100)]})
    assert (at_cap.status, at_cap.body["accepted"]) == (200, 100)

    context = await live.send("/v1/batch", gzip.compress(orjson.dumps(
        {"context": {"pad": "x" * 40_000}, "batch": [track(1000)]})), headers=GZIP)
    assert context.status == 413, context
    assert "context" in context.body["error"]


async def test_a_merged_message_above_32_kb_is_dead_lettered_before_its_type_is_read(
    live: Live
) -> None:
    # The type is wrong too; the size is what is checked first, on the merged message.
    batch = {"context": {"pad": "x" * 20_000},
             "batch": [{**track(1), "type": "nope", "properties": {"pad": "y" * 20_000}},
                       track(2)]}
    answer = await live.send("/v1/batch", batch)
    assert (answer.status, answer.body["accepted"], answer.body["rejected"]) == (200, 1, 1)
    (record,) = [orjson.loads(r.value) for r in await live.dead_letters()]
    assert (record["reason"], record["message_id"]) == ("message_too_large", "m-1")

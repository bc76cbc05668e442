"""Hostile messages inside otherwise fine requests: too deep, ids with control
characters, times that skew correction throws out of range. Each is refused on its own,
with a reason, and never fails the request with a 5xx."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from agents import metrics
from tests.security.harness import Live, track

DEEP = "<deep>"


def _with_deep(value: Any, depth: int) -> bytes:
    """``value`` as JSON with every ``DEEP`` string replaced by objects nested ``depth``
    levels (written by hand: orjson refuses to write more than 255)."""
    nested = b'{"k":' * depth + b'"leaf"' + b"}" * depth
    return orjson.dumps(value).replace(orjson.dumps(DEEP), nested)


async def _reasons(live: Live) -> dict[str | None, str]:
    """message id → reason, of every dead letter."""
    return {record.get("message_id"): record["reason"]
            for record in map(orjson.loads, [r.value for r in await live.dead_letters()])}


async def test_a_body_too_deep_is_400_and_a_message_too_deep_is_dead_lettered(
    live: Live
) -> None:
    # Deeper than orjson writes (255) but within what it reads (1,024).
    single = await live.send("/v1/track", _with_deep({**track(1), "properties": DEEP}, 600))
    assert single.status == 400, single
    assert "nested deeper than 255" in single.body["error"]
    capture = await live.send("/capture/", _with_deep(
        {"event": "x", "distinct_id": "u", "properties": DEEP}, 600))
    assert capture.status == 400, capture
    own_fields = await live.send("/v1/batch", _with_deep({"batch": [track(2)], "x": DEEP},
                                                         600))
    assert own_fields.status == 400, own_fields

    batch = [track(3), {**track(4), "properties": DEEP}, track(5),
             {**track(6), "context": {"library": DEEP}}]
    answer = await live.send("/v1/batch", _with_deep({"batch": batch}, 300))
    assert answer.status == 200, answer
    assert (answer.body["accepted"], answer.body["rejected"]) == (2, 2)
    # Near orjson's parser limit (1,024 with the batch around it).
    deepest = await live.send("/v1/batch", _with_deep({"batch": [
        track(7), {**track(8), "properties": DEEP}]}, 1000))
    assert (deepest.status, deepest.body["rejected"]) == (200, 1), deepest
    assert sorted(e.message_id for e in await live.events()) == ["m-3", "m-5", "m-7"]
    assert await _reasons(live) == {"m-4": "too_deep", "m-6": "too_deep", "m-8": "too_deep"}


@pytest.mark.parametrize("bad", ["u\x00", "u\x1f1", "line\nbreak", "\x1fu", "u\u202e",
                                 "tab\tid", "u\x85"])
async def test_ids_with_control_characters_are_bad_identity(live: Live, bad: str) -> None:
    counter = metrics.EVENTS_DEAD_LETTERED.labels(reason="bad_identity")
    before = counter._value.get()
    batch = [
        track(1, user=bad),
        {**track(2), "userId": None, "anonymousId": bad},
        {"type": "group", "messageId": "m-3", "userId": "u1", "groupId": bad},
        track(4, context={"groupId": bad}),
        track(5),
    ]
    segment = await live.send("/v1/batch", {"batch": batch})
    assert (segment.status, segment.body["accepted"], segment.body["rejected"]) == (200, 1, 4)
    posthog = await live.send("/batch/", {"api_key": "ignored", "batch": [
        {"event": "x", "uuid": "p-1", "distinct_id": bad},
        {"event": "$groupidentify", "uuid": "p-2", "distinct_id": "u1",
         "properties": {"$group_key": bad}},
        {"event": "x", "uuid": "p-3", "distinct_id": "u1",
         "properties": {"$groups": {"company": bad}}},
    ]})
    assert (posthog.status, posthog.body["rejected"]) == (200, 3), posthog
    assert [e.message_id for e in await live.events()] == ["m-5"]
    reasons = await _reasons(live)
    assert reasons == {mid: "bad_identity" for mid in
                       ["m-1", "m-2", "m-3", "m-4", "p-1", "p-2", "p-3"]}
    assert counter._value.get() - before == 7


async def test_a_time_thrown_out_of_range_by_skew_correction_is_bad_timestamp(
    live: Live
) -> None:
    # Each time is valid on its own; sentAt 80 years after the event puts the corrected
    # event time decades before 2000, which would drag a replayed partition's clock.
    batch = {"sentAt": "2099-01-01T00:00:00Z", "batch": [
        {**track(1), "timestamp": "2019-01-01T00:00:00Z"},
        {**track(2), "timestamp": "2098-12-31T23:59:00Z"},
    ]}
    answer = await live.send("/v1/batch", batch)
    assert (answer.status, answer.body["accepted"], answer.body["rejected"]) == (200, 1, 1)
    records = [orjson.loads(r.value) for r in await live.dead_letters()]
    assert [(r["message_id"], r["reason"]) for r in records] == [("m-1", "bad_timestamp")]
    assert "skew" in records[0]["detail"]
    (event,) = await live.events()
    assert event.message_id == "m-2"

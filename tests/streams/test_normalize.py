from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.events import Event, EventType, Source
from streams.normalize import (
    REASONS,
    NormalizeContext,
    Rejection,
    normalize,
    normalize_posthog,
    normalize_rudderstack,
    normalize_segment,
    segment_family_source,
)

RX = 1_700_000_100.0  # receipt time used throughout
SEG = NormalizeContext("acme", RX, Source.SEGMENT)


def _ok(result: Event | Rejection) -> Event:
    assert isinstance(result, Event), result
    return result


def _rejected(result: Event | Rejection) -> str:
    assert isinstance(result, Rejection), result
    assert result.reason in REASONS
    return result.reason


def test_track_keeps_name_properties_and_corrects_clock_skew() -> None:
    # Client clock is 1 h fast: it says the event happened 10 s before it sent it.
    event = _ok(normalize_segment({
        "type": "track", "messageId": "m1", "userId": "u1", "event": "Report Published",
        "properties": {"feature": "exports", "nested": {"x": 1}, "n": 3},
        "timestamp": "2023-11-14T23:48:10Z", "sentAt": "2023-11-14T23:48:20Z",
    }, SEG))
    assert event.type is EventType.TRACK
    assert event.name == "Report Published"
    assert event.user_id == "u1"
    assert event.properties == {"feature": "exports", "n": 3}
    assert event.timestamp == pytest.approx(RX - 10.0)
    assert event.received_at == RX
    assert event.source is Source.SEGMENT


def test_batch_sent_at_is_used_when_the_message_has_none() -> None:
    ctx = NormalizeContext("acme", RX, Source.SEGMENT, sent_at=1_000_000_060.0)
    event = _ok(normalize_segment({
        "type": "track", "messageId": "m1", "anonymousId": "a1", "event": "Logged In",
        "originalTimestamp": 1_000_000_000.0,
    }, ctx))
    assert event.timestamp == pytest.approx(RX - 60.0)
    assert event.user_id is None
    assert event.anonymous_id == "a1"


def test_without_sent_at_client_time_is_trusted_and_without_time_receipt_time() -> None:
    event = _ok(normalize_segment({"type": "track", "messageId": "m", "userId": "u",
                                   "event": "x", "timestamp": "2023-01-01T00:00:00"}, SEG))
    assert event.timestamp == 1_672_531_200.0
    event = _ok(normalize_segment({"type": "track", "messageId": "m", "userId": "u",
                                   "event": "x"}, SEG))
    assert event.timestamp == RX


def test_group_call_sets_account_and_traits() -> None:
    event = _ok(normalize_segment({
        "type": "group", "messageId": "g1", "userId": 42, "groupId": "acct-9",
        "traits": {"name": "Acme", "seats": 30, "plan": "pro", "createdAt": "2023-01-01"},
    }, SEG))
    assert event.account_id == "acct-9"
    assert event.user_id == "42"
    assert event.traits == {"name": "Acme", "seats": 30, "plan": "pro",
                            "created_at": "2023-01-01"}


def test_context_group_id_attributes_a_single_event() -> None:
    event = _ok(normalize_segment({"type": "page", "messageId": "p", "userId": "u",
                                   "name": "Pricing", "context": {"groupId": "acct-2"}}, SEG))
    assert event.account_id == "acct-2"
    assert event.name == "Pricing"


def test_rudderstack_identify_traits_come_from_context() -> None:
    ctx = NormalizeContext("acme", RX, Source.RUDDERSTACK)
    message = {"type": "identify", "messageId": "i", "userId": "u", "channel": "server",
               "context": {"traits": {"email": "dana@acme.io", "role": "admin"}}}
    assert segment_family_source(message) is Source.RUDDERSTACK
    event = _ok(normalize_rudderstack(message, ctx))
    assert event.traits == {"email": "dana@acme.io", "role": "admin"}
    assert event.source is Source.RUDDERSTACK


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ([], "not_an_object"),
        ({"messageId": "m", "userId": "u"}, "missing_type"),
        ({"type": "click", "userId": "u"}, "unknown_type"),
        ({"type": "track", "event": "x", "userId": None, "anonymousId": None},
         "missing_identity"),
        ({"type": "track", "event": "x", "userId": {"id": 1}}, "bad_identity"),
        ({"type": "group", "userId": "u"}, "missing_group_id"),
        ({"type": "track", "userId": "u"}, "missing_event_name"),
        ({"type": "track", "userId": "u", "event": "x", "messageId": "m" * 101},
         "bad_message_id"),
        ({"type": "track", "userId": "u", "event": "x", "messageId": 7}, "bad_message_id"),
        ({"type": "track", "userId": "u", "event": "x", "timestamp": "yesterday"},
         "bad_timestamp"),
        ({"type": "track", "userId": "u", "event": "x", "timestamp": 0}, "bad_timestamp"),
        ({"type": "track", "userId": "u", "event": "x",
          "properties": {"blob": "x" * 40_000}}, "message_too_large"),
    ],
)
def test_segment_rejections_carry_stable_reasons(payload: Any, reason: str) -> None:
    assert _rejected(normalize_segment(payload, SEG)) == reason


def test_message_id_may_be_any_string_up_to_100_chars() -> None:
    node_id = "node-next-1700000000000-" + "a" * 36
    event = _ok(normalize_segment({"type": "track", "messageId": node_id, "userId": "u",
                                   "event": "x"}, SEG))
    assert event.message_id == node_id


def test_missing_message_id_gets_a_content_digest() -> None:
    payload = {"type": "track", "userId": "u", "event": "x", "timestamp": 1_700_000_000}
    first = _ok(normalize_segment(payload, SEG))
    again = _ok(normalize_segment(dict(reversed(list(payload.items()))), SEG))
    assert first.message_id == again.message_id
    assert first.message_id.startswith("sha1:")


def test_direct_producer_keeps_its_received_at() -> None:
    ctx = NormalizeContext("acme", RX, Source.KAFKA)
    event = _ok(normalize(
        {"type": "track", "messageId": "m", "userId": "u", "event": "x",
         "receivedAt": "2023-11-14T00:00:00Z", "timestamp": "2023-11-13T23:59:00Z"}, ctx))
    assert event.received_at == 1_699_920_000.0
    assert event.source is Source.KAFKA


PH = NormalizeContext("acme", RX, Source.POSTHOG, sent_at=1_000_000_030.0)


def test_posthog_capture_with_groups_is_an_attributed_track() -> None:
    event = _ok(normalize_posthog({
        "event": "Workflow Completed", "distinct_id": "u1", "uuid": "0190-uuid",
        "timestamp": 1_000_000_000.0,
        "properties": {"$groups": {"project": "p1", "company": "acct-1"}, "$lib": "posthog",
                       "steps": 4},
    }, PH))
    assert (event.type, event.name, event.user_id, event.account_id, event.message_id) == (
        EventType.TRACK, "Workflow Completed", "u1", "acct-1", "0190-uuid")
    assert event.properties == {"steps": 4}
    assert event.timestamp == pytest.approx(RX - 30.0)


def test_posthog_special_events() -> None:
    identify = _ok(normalize_posthog({"event": "$identify", "distinct_id": "u1", "uuid": "a",
                                      "properties": {"$set": {"email": "e@x.io"},
                                                     "$anon_distinct_id": "anon"}}, PH))
    assert (identify.type, identify.traits, identify.anonymous_id) == (
        EventType.IDENTIFY, {"email": "e@x.io"}, "anon")
    group = _ok(normalize_posthog({"event": "$groupidentify", "distinct_id": "u1", "uuid": "b",
                                   "properties": {"$group_type": "company",
                                                  "$group_key": "acct-1",
                                                  "$group_set": {"name": "Acme", "arr": 60000}}},
                                  PH))
    assert (group.type, group.account_id, group.traits, group.user_id) == (
        EventType.GROUP, "acct-1", {"name": "Acme", "arr": 60000}, None)
    page = _ok(normalize_posthog({"event": "$pageview", "distinct_id": "u1", "uuid": "c",
                                  "properties": {"$pathname": "/pricing"}}, PH))
    assert (page.type, page.name) == (EventType.PAGE, "/pricing")
    assert _rejected(normalize_posthog({"event": "x", "uuid": "d"}, PH)) == "missing_identity"
    assert _rejected(normalize_posthog({"distinct_id": "u"}, PH)) == "missing_type"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["type", "event", "userId", "anonymousId", "messageId", "timestamp",
                         "sentAt", "originalTimestamp", "groupId", "traits", "properties",
                         "context", "distinct_id", "uuid", "$groups", "$set", "$group_key",
                         "name", "previousId", "offset", "x"]) | st.text(max_size=5),
        children, max_size=8),
    max_leaves=30,
)
_type_values = st.sampled_from(["track", "identify", "group", "page", "screen", "alias",
                                "$identify", "$groupidentify", "$pageview", "Logged In"])


@settings(max_examples=300)
@given(_json, st.sampled_from(list(Source)))
def test_any_json_is_an_event_or_a_documented_rejection(payload: Any, source: Source) -> None:
    result = normalize(payload, NormalizeContext("acme", RX, source))
    if isinstance(result, Rejection):
        assert result.reason in REASONS
    else:
        assert isinstance(result, Event)
        assert result.workspace == "acme"
        assert result.message_id and len(result.message_id) <= 100
        assert result.actor is not None or result.type is EventType.GROUP


@settings(max_examples=300)
@given(st.fixed_dictionaries(
    {"type": _type_values, "event": _type_values},
    optional={"userId": _json, "messageId": _json, "timestamp": _json, "distinct_id": _json,
              "properties": _json, "traits": _json, "groupId": _json, "uuid": _json,
              "context": _json, "sentAt": _json}),
    st.sampled_from(list(Source)))
def test_near_valid_json_is_an_event_or_a_documented_rejection(
    payload: dict[str, Any], source: Source
) -> None:
    result = normalize(payload, NormalizeContext("acme", RX, source))
    assert isinstance(result, Event) or result.reason in REASONS


@settings(max_examples=200)
@given(st.binary(max_size=300), st.sampled_from(list(Source)))
def test_any_bytes_are_an_event_or_a_documented_rejection(raw: bytes, source: Source) -> None:
    # What a receiver hands a normaliser: the bytes' JSON value when they are JSON,
    # otherwise their text.
    import orjson

    try:
        payload: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        payload = raw.decode("utf-8", "replace")
    result = normalize(payload, NormalizeContext("acme", RX, source))
    assert isinstance(result, Event) or result.reason in REASONS


HOSTILE_IDS = ["u\x00", "u\x1f1", "a\nb", "\x1fu", "u\r", "u\x7f", "u\x85", "u\u202e1",
               "u\u2066", "u\u2028", "x" * 257]


@pytest.mark.parametrize("bad", HOSTILE_IDS)
@pytest.mark.parametrize("field", ["userId", "anonymousId", "groupId", "context.groupId"])
def test_segment_ids_with_control_characters_are_bad_identity(field: str, bad: str) -> None:
    message: dict[str, Any] = {"type": "group" if field == "groupId" else "track",
                               "event": "x", "userId": "u", "groupId": "g"}
    if field == "context.groupId":
        message["context"] = {"groupId": bad}
    else:
        message[field] = bad
    assert _rejected(normalize_segment(message, SEG)) == "bad_identity"


@pytest.mark.parametrize("bad", HOSTILE_IDS)
def test_posthog_ids_with_control_characters_are_bad_identity(bad: str) -> None:
    assert _rejected(normalize_posthog({"event": "x", "distinct_id": bad}, PH)) \
        == "bad_identity"
    assert _rejected(normalize_posthog({"event": "$groupidentify", "distinct_id": "u",
                                        "properties": {"$group_key": bad}}, PH)) \
        == "bad_identity"


def test_ids_the_collector_accepts_are_ids_the_state_keys_accept() -> None:
    from state.keys import KeyPartError, part

    for good in ["u-1", "dana@acme.io", "Zoë 😀", "x" * 256, "a\u200db"]:
        event = _ok(normalize_segment({"type": "track", "event": "x", "userId": good}, SEG))
        assert event.user_id is not None
        assert part(event.user_id) == good.encode()
    for bad in [*HOSTILE_IDS, ""]:
        with pytest.raises(KeyPartError):
            part(bad)


def test_a_corrected_time_outside_the_valid_range_is_bad_timestamp() -> None:
    # Both times are valid, but 60 years apart: the corrected time would be 2083 - 60y.
    message = {"type": "track", "event": "x", "userId": "u",
               "originalTimestamp": "2001-01-01T00:00:00Z", "sentAt": "2090-01-01T00:00:00Z"}
    rejection = normalize_segment(message, SEG)
    assert _rejected(rejection) == "bad_timestamp"
    assert isinstance(rejection, Rejection) and "skew" in rejection.detail
    posthog = {"event": "x", "distinct_id": "u", "timestamp": "2001-01-01T00:00:00Z",
               "sent_at": "2090-01-01T00:00:00Z"}
    assert _rejected(normalize_posthog(posthog, PH)) == "bad_timestamp"


def test_a_message_too_deep_to_write_back_is_too_deep_whatever_its_type() -> None:
    deep: Any = "leaf"
    for _ in range(300):
        deep = {"k": deep}
    for message in ({"type": "track", "userId": "u", "event": "x", "properties": deep},
                    {"type": "nope", "properties": deep},
                    {"messageId": None, "properties": deep}):
        assert _rejected(normalize_segment(message, SEG)) == "too_deep"
    assert _rejected(normalize_posthog({"event": "x", "properties": deep}, PH)) == "too_deep"

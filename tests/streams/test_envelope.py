from __future__ import annotations

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from streams.envelope import (
    ENVELOPES,
    Envelope,
    EnvelopeError,
    KeyPartitions,
    Link,
    Moved,
    Tick,
    murmur2,
)
from streams.events import Event, EventType, Source


def _event(i: int, **overrides: object) -> Event:
    fields: dict[str, object] = {
        "workspace": "acme",
        "message_id": f"m-{i}",
        "type": EventType.TRACK,
        "timestamp": 1_700_000_000.5 + i,
        "received_at": 1_700_000_001.0 + i,
        "source": Source.SEGMENT,
        "name": "Report Published",
        "user_id": "u1",
        "account_id": "acct-1",
        "properties": {"feature": "exports"},
    }
    fields.update(overrides)
    return Event(**fields)  # type: ignore[arg-type]


def test_envelope_round_trip_keeps_every_field() -> None:
    events = [
        _event(1),
        _event(2, type=EventType.IDENTIFY, name=None, traits={"email": "a@b.c"},
               anonymous_id="anon", properties={}),
    ]
    decoded = ENVELOPES.decode(ENVELOPES.encode(Envelope("acme", "acct-1", events)))
    assert decoded == Envelope("acme", "acct-1", events)


def test_envelope_carries_version_and_kind() -> None:
    raw = orjson.loads(ENVELOPES.encode(Envelope("acme", "k", [_event(1)])))
    assert raw["v"] == 1
    assert raw["kind"] == "events"
    assert raw["ws"] == "acme"
    assert raw["key"] == "k"


def test_tick_round_trip() -> None:
    tick = Tick(1_700_000_000.25, 3)
    assert ENVELOPES.decode(ENVELOPES.encode(tick)) == tick


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not_json"),
        (b"[1, 2]", "not_an_object"),
        (b'{"v": 2, "kind": "events"}', "unsupported_version"),
        (b'{"v": true, "kind": "events"}', "unsupported_version"),
        (b'{"v": 1, "kind": "gossip"}', "unknown_kind"),
        (b'{"v": 1, "kind": "events", "ws": "", "key": "k", "events": []}', "bad_envelope"),
        (b'{"v": 1, "kind": "events", "ws": "a", "key": "k", "events": {}}', "bad_envelope"),
        (b'{"v": 1, "kind": "events", "ws": "a", "key": "k", "events": [1]}', "bad_event"),
        (b'{"v": 1, "kind": "tick", "now": "x", "partition": 0}', "bad_tick"),
        (b'{"v": 1, "kind": "tick", "now": 1, "partition": -1}', "bad_tick"),
    ],
)
def test_garbage_raises_envelope_error_with_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        ENVELOPES.decode(raw)
    assert info.value.reason == reason


def test_event_fields_are_type_checked() -> None:
    wire = _event(1).to_wire()
    for field, bad in [("ts", "soon"), ("t", "click"), ("src", "fax"), ("u", 5), ("p", [1]),
                       ("id", ""), ("ts", True)]:
        broken = {**wire, field: bad}
        raw = orjson.dumps({"v": 1, "kind": "events", "ws": "a", "key": "k", "events": [broken]})
        with pytest.raises(EnvelopeError) as info:
            ENVELOPES.decode(raw)
        assert info.value.reason == "bad_event", field


def test_empty_message_is_an_error() -> None:
    with pytest.raises(EnvelopeError) as info:
        ENVELOPES.decode(None)
    assert info.value.reason == "empty"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["v", "kind", "ws", "key", "events", "now", "partition",
                                       "t", "ts", "rx", "src", "id", "x"]), children, max_size=6),
    max_leaves=20,
)


def _decodes_or_says_why(raw: bytes) -> None:
    try:
        result = ENVELOPES.decode(raw)
    except EnvelopeError as exc:
        assert exc.reason
    else:
        assert isinstance(result, Envelope | Tick)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_envelope_error(raw: bytes) -> None:
    _decodes_or_says_why(raw)


@given(_json)
def test_arbitrary_json_decode_or_raise_envelope_error(value: object) -> None:
    try:
        raw = orjson.dumps(value)
    except orjson.JSONEncodeError:
        return
    _decodes_or_says_why(raw)


def test_origin_round_trips_and_is_optional() -> None:
    raw = ENVELOPES.encode(Envelope("acme", "acct-1", [_event(1)], origin=(3, 1234)))
    decoded = ENVELOPES.decode(raw)
    assert isinstance(decoded, Envelope)
    assert decoded.origin == (3, 1234)
    assert orjson.loads(raw)["src"] == [3, 1234]
    plain = ENVELOPES.decode(ENVELOPES.encode(Envelope("acme", "acct-1", [_event(1)])))
    assert isinstance(plain, Envelope)
    assert plain.origin is None
    assert "src" not in orjson.loads(ENVELOPES.encode(Envelope("acme", "k", [])))


@pytest.mark.parametrize("src", [[1], [1, -2], ["1", 2], {"p": 1}, [1, 2.5]])
def test_bad_origin_is_a_bad_envelope(src: object) -> None:
    raw = orjson.dumps({"v": 1, "kind": "events", "ws": "a", "key": "k", "events": [],
                        "src": src})
    with pytest.raises(EnvelopeError) as info:
        ENVELOPES.decode(raw)
    assert info.value.reason == "bad_envelope"


def test_link_and_moved_round_trip_and_stay_off_decode_message() -> None:
    link = Link("acme", "anon-1", "u1", 1_700_000_000.5)
    raw = ENVELOPES.encode(link)
    assert orjson.loads(raw) == {"v": 1, "kind": "link", "ws": "acme", "from": "anon-1",
                                 "to": "u1", "at": 1_700_000_000.5}
    assert ENVELOPES.decode_identity(orjson.loads(raw)) == link
    wires = [_event(1).to_wire()]
    moved = ENVELOPES.decode_identity(orjson.loads(ENVELOPES.encode(Moved("acme", "u1", wires, 2))))
    assert moved == Moved("acme", "u1", wires, 2)
    for value in (raw, ENVELOPES.encode(Moved("acme", "u1", wires, 1))):
        with pytest.raises(EnvelopeError) as info:
            ENVELOPES.decode(value)
        assert info.value.reason == "unknown_kind"


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ({"v": 1, "kind": "link", "ws": "a", "from": "x", "to": "", "at": 1}, "bad_link"),
        ({"v": 1, "kind": "link", "ws": "a", "from": "x", "to": "y", "at": None}, "bad_link"),
        ({"v": 1, "kind": "link", "ws": "a", "from": "x", "to": "x", "at": 1}, "bad_link"),
        ({"v": 1, "kind": "moved", "ws": "a", "key": "k", "events": [], "moves": True},
         "bad_envelope"),
        ({"v": 1, "kind": "moved", "ws": "a", "key": "", "events": [], "moves": 1},
         "bad_envelope"),
        ({"v": "1", "kind": "link"}, "unsupported_version"),
    ],
)
def test_bad_link_and_moved_messages(obj: dict[str, object], reason: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        ENVELOPES.decode_identity(obj)
    assert info.value.reason == reason


def test_murmur2_is_kafkas_reference_values() -> None:
    # Values of Kafka's own test of Utils.murmur2 (clients/.../UtilsTest.java).
    cases = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
             b"a-little-bit-longer-string": -1486304829,
             b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
             bytes([ord("a"), ord("b"), ord("c")]): 479470107}
    for data, signed in cases.items():
        assert murmur2(data) == signed & 0xFFFFFFFF, data


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=64))
def test_key_partitions_agree_with_the_kafka_client(key: bytes, partitions: int) -> None:
    """Producers that partition by hand must land each key where the client would."""
    every = list(range(partitions))
    assert KeyPartitions(partitions)(key) == DefaultPartitioner()(key, every, every)

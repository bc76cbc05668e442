"""The resolve stage's logic on an in-memory keyed store (a changelogged table in production)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.resolve import Output, Resolver
from state.identity import IdentityRecord, map_key
from state.keyed import MemoryState
from streams.envelope import ENVELOPES, Envelope, Tick, kafka_key
from streams.events import Event, EventType, Source
from streams.normalize import REASONS
from streams.settings import Settings

PARTITIONS = 4
RX = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _resolver(**overrides: Any) -> tuple[Resolver, MemoryState, Clock]:
    store = MemoryState()
    clock = Clock()
    fields: dict[str, Any] = {"topic_prefix": "t", "partitions": PARTITIONS,
                              "write_keys": "wk=acme", "resolve_hold_seconds": 60.0}
    config = Settings(**{**fields, **overrides})
    return Resolver(config, store, now=clock), store, clock


def _event(mid: str, user: str | None = "u1", type_: EventType = EventType.TRACK,
           account: str | None = None, name: str | None = "Logged In") -> Event:
    return Event(workspace="acme", message_id=mid, type=type_, timestamp=RX, received_at=RX,
                 source=Source.SEGMENT, name=name if type_ is EventType.TRACK else None,
                 user_id=user, account_id=account)


def _group(mid: str, user: str, account: str) -> Event:
    return _event(mid, user, EventType.GROUP, account)


def _send(resolver: Resolver, events: list[Event], person: str = "u1") -> list[Output]:
    """Deliver an envelope to the partition the collector would have written it to."""
    partition = resolver.owner_partition("acme", person)
    return resolver.process(kafka_key("acme", person),
                            ENVELOPES.encode(Envelope("acme", person, events)), partition, RX)


def by_account(outputs: list[Output]) -> dict[str, list[Event]]:
    """Events on the by-account topic among ``outputs``, by account (checked keys)."""
    found: dict[str, list[Event]] = {}
    for output in outputs:
        if output.topic == "t.events.by-account":
            envelope = ENVELOPES.decode(output.value)
            assert isinstance(envelope, Envelope)
            assert output.key == kafka_key(envelope.workspace, envelope.key)
            assert all(e.account_id == envelope.key for e in envelope.events)
            found.setdefault(envelope.key, []).extend(envelope.events)
    return found


def _dead(outputs: list[Output]) -> list[dict[str, Any]]:
    return [orjson.loads(o.value) for o in outputs if o.topic == "t.events.dlq"]


def test_group_call_links_the_user_and_later_events_follow() -> None:
    resolver, store, _ = _resolver()
    out = _send(resolver, [_group("g", "u1", "acct-1"), _event("e1")])
    assert [e.message_id for e in by_account(out)["acct-1"]] == ["g", "e1"]
    out = _send(resolver, [_event("e2"), _event("e3")])
    assert len(out) == 1  # one envelope per account per input message
    assert [e.message_id for e in by_account(out)["acct-1"]] == ["e2", "e3"]
    assert IdentityRecord.from_bytes(store[map_key("acme", "u1")]).accounts == ["acct-1"]


def test_events_wait_for_their_account_and_are_released_in_one_envelope() -> None:
    resolver, store, _ = _resolver()
    assert _send(resolver, [_event("e1")]) == []
    assert _send(resolver, [_event("e2")]) == []
    out = _send(resolver, [_group("g", "u1", "acct-7")])
    assert sorted(e.message_id for e in by_account(out)["acct-7"]) == ["e1", "e2", "g"]
    # Nothing is left held, and no expiry entry remains.
    assert not [k for k in store if not k.startswith(b"m")]


def test_holds_expire_to_the_dead_letter_topic_as_unattributed() -> None:
    resolver, store, clock = _resolver()
    _send(resolver, [_event("e1"), _event("e2")])
    partition = resolver.owner_partition("acme", "u1")
    tick = ENVELOPES.encode(Tick(clock.now + 30, partition))
    assert resolver.process(None, tick, partition, RX) == []
    out = resolver.process(None, ENVELOPES.encode(Tick(clock.now + 62, partition)), partition, RX)
    dead = _dead(out)
    assert [d["reason"] for d in dead] == ["unattributed", "unattributed"]
    assert [d["payload"]["id"] for d in dead] == ["e1", "e2"]
    # A group call now links the user without resurrecting anything.
    out = _send(resolver, [_group("g", "u1", "acct-1")])
    assert [e.message_id for e in by_account(out)["acct-1"]] == ["g"]
    assert list(store) == [map_key("acme", "u1")]


def test_hold_is_bounded_by_count() -> None:
    resolver, _, _ = _resolver(resolve_hold_max_events=3)
    out = _send(resolver, [_event(f"e{i}") for i in range(5)])
    assert [d["payload"]["id"] for d in _dead(out)] == ["e0", "e1"]
    out = _send(resolver, [_group("g", "u1", "a")])
    assert sorted(e.message_id for e in by_account(out)["a"]) == ["e2", "e3", "e4", "g"]


def test_users_in_several_accounts() -> None:
    resolver, _, _ = _resolver()
    _send(resolver, [_group("g1", "u1", "acct-1"), _group("g2", "u1", "acct-2")])
    out = _send(resolver, [_event("e1"), _event("e2", account="acct-1")])
    routed = by_account(out)
    assert [e.message_id for e in routed["acct-2"]] == ["e1"]  # most recent link
    assert [e.message_id for e in routed["acct-1"]] == ["e2"]  # named by context.groupId
    # Naming an account makes it the most recent one.
    out = _send(resolver, [_event("e3")])
    assert list(by_account(out)) == ["acct-1"]


def test_events_in_the_wrong_partition_are_rerouted_to_their_person() -> None:
    resolver, store, _ = _resolver()
    person_partition = resolver.owner_partition("acme", "u1")
    wrong = (person_partition + 1) % PARTITIONS
    direct = orjson.dumps({"type": "track", "userId": "u1", "event": "Logged In",
                           "messageId": "d1", "context": {"groupId": "acct-3"}})
    out = resolver.process(b"acct-3", direct, wrong, RX)
    assert [o.topic for o in out] == ["t.events"]
    assert out[0].key == kafka_key("acme", "u1")
    assert not store
    out = resolver.process(out[0].key, out[0].value, person_partition, RX)
    (event,) = by_account(out)["acct-3"]
    assert (event.message_id, event.source, event.user_id) == ("d1", Source.KAFKA, "u1")


def test_direct_producer_workspace_and_batch() -> None:
    resolver, _, _ = _resolver()
    person = "u5"
    partition = resolver.owner_partition("other", person)
    batch = orjson.dumps({"workspace": "other", "batch": [
        {"type": "group", "userId": person, "groupId": "acct-5", "messageId": "g"},
        {"type": "track", "userId": person, "event": "Logged In", "messageId": "t"},
        {"type": "track", "event": "Logged In", "messageId": "bad"},
    ]})
    out = resolver.process(None, batch, partition, RX)
    routed = by_account(out)
    assert [e.workspace for e in routed["acct-5"]] == ["other", "other"]
    assert [d["reason"] for d in _dead(out)] == ["missing_identity"]


def test_posthog_group_identify_without_a_person_goes_straight_to_its_account() -> None:
    resolver, store, _ = _resolver()
    event = _event("gi", user=None, type_=EventType.GROUP, account="acct-9")
    partition = resolver.owner_partition("acme", "acct-9")
    out = resolver.process(kafka_key("acme", "acct-9"),
                           ENVELOPES.encode(Envelope("acme", "acct-9", [event])), partition, RX)
    assert [e.message_id for e in by_account(out)["acct-9"]] == ["gi"]
    assert not store


@pytest.mark.parametrize(
    ("value", "reason"),
    [(b"", "empty"), (b"\xff\x00", "not_json"), (b"[1]", "not_an_object"),
     (b'{"v": 9, "kind": "events"}', "unsupported_version"),
     (b'{"v": 1, "kind": "events", "ws": "a", "key": "k", "events": [{"x": 1}]}', "bad_event"),
     (b'{"type": "track", "event": "x", "userId": "u", "writeKey": "nope"}', None)],
)
def test_garbage_is_dead_lettered_with_a_reason(value: bytes, reason: str | None) -> None:
    resolver, _, _ = _resolver()
    out = resolver.process(None, value, 0, RX)
    if reason is None:  # a single configured workspace is the default
        assert out and all(o.topic != "t.events.dlq" for o in out)
        return
    (dead,) = _dead(out)
    assert dead["reason"] == reason
    assert dead["reason"] in REASONS


def test_without_a_default_workspace_direct_json_needs_one() -> None:
    resolver, _, _ = _resolver(write_keys="k1=a,k2=b")
    out = resolver.process(None, b'{"type": "track", "event": "x", "userId": "u"}', 0, RX)
    assert [d["reason"] for d in _dead(out)] == ["unknown_workspace"]


@settings(max_examples=200)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=PARTITIONS - 1))
def test_arbitrary_bytes_never_raise(value: bytes, partition: int) -> None:
    resolver, _, _ = _resolver()
    for output in resolver.process(None, value, partition, RX):
        if output.topic == "t.events.dlq":
            assert orjson.loads(output.value)["reason"] in REASONS


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["v", "kind", "ws", "key", "events", "type", "userId", "event",
                         "groupId", "batch", "workspace", "messageId", "t", "id", "ts",
                         "rx", "src", "u", "acc", "now", "partition", "from", "to",
                         "at", "moves"]),
        children, max_size=8),
    max_leaves=30,
)


@settings(max_examples=300)
@given(_json, st.integers(min_value=0, max_value=PARTITIONS - 1))
def test_arbitrary_json_never_raises(value: Any, partition: int) -> None:
    resolver, _, _ = _resolver()
    try:
        raw = orjson.dumps(value)
    except orjson.JSONEncodeError:
        return
    for output in resolver.process(None, raw, partition, RX):
        assert output.topic in {"t.events", "t.events.by-account", "t.events.dlq"}
        if output.topic == "t.events.dlq":
            assert orjson.loads(output.value)["reason"] in REASONS


def test_a_message_under_the_persons_own_key_is_never_bounced() -> None:
    # Even if the partition count in settings disagreed with the topic's, a message keyed
    # by its person stays where Kafka put it: no reroute loop.
    resolver, store, _ = _resolver()
    wrong = (resolver.owner_partition("acme", "u1") + 1) % PARTITIONS
    out = resolver.process(kafka_key("acme", "u1"),
                           ENVELOPES.encode(Envelope("acme", "u1", [_group("g", "u1", "a")])),
                           wrong, RX)
    assert [o.topic for o in out] == ["t.events.by-account"]
    assert map_key("acme", "u1") in store


def test_one_bad_event_costs_only_itself() -> None:
    resolver, _, _ = _resolver()
    good = _group("g", "u1", "a").to_wire()
    raw = orjson.dumps({"v": 1, "kind": "events", "ws": "acme", "key": "u1",
                        "events": [good, {**good, "ts": "soon"}]})
    out = resolver.process(kafka_key("acme", "u1"), raw, 0, RX)
    assert [e.message_id for e in by_account(out)["a"]] == ["g"]
    assert [d["reason"] for d in _dead(out)] == ["bad_event"]


def test_by_account_envelopes_name_their_origin() -> None:
    resolver, _, _ = _resolver()
    partition = resolver.owner_partition("acme", "u1")
    out = resolver.process(kafka_key("acme", "u1"),
                           ENVELOPES.encode(Envelope("acme", "u1", [_group("g", "u1", "a")])),
                           partition, RX, offset=41)
    envelope = ENVELOPES.decode(out[0].value)
    assert isinstance(envelope, Envelope)
    assert envelope.origin == (partition, 41)

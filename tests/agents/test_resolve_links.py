"""Identify and alias calls link an anonymous (or previous) id to a user: the resolve
stage's link messages, on a plain dict store, with every message it sends to the events
topic delivered back to the partition Kafka would put it in."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from agents import metrics
from agents.resolve import MAX_MOVES, Output, Resolver
from state.identity import IdentityRecord, map_key
from state.keyed import MemoryState
from streams.envelope import (
    ENVELOPES,
    Envelope,
    Link,
    Tick,
    kafka_key,
)
from streams.events import Event, EventType, Source
from streams.normalize import REASONS
from streams.settings import Settings
from tests.agents.test_resolve import by_account

PARTITIONS = 4
RX = 1_700_000_000.0
LINK_SECONDS = 1000.0
_PARTITIONER = DefaultPartitioner()


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Pipeline:
    """A resolver, and the events topic between its partitions."""

    def __init__(self, **overrides: Any) -> None:
        self.store = MemoryState()
        self.clock = Clock()
        fields: dict[str, Any] = {"topic_prefix": "t", "partitions": PARTITIONS,
                                  "write_keys": "wk=acme", "resolve_hold_seconds": 60.0,
                                  "resolve_link_seconds": LINK_SECONDS}
        self.resolver = Resolver(Settings(**{**fields, **overrides}), self.store,
                                 now=self.clock)
        self.offset = 0
        self.internal: list[Output] = []  # what went back to the events topic

    def deliver(self, key: bytes | None, value: bytes, partition: int | None = None,
                follow: bool = True) -> list[Output]:
        """Process one events-topic message; with ``follow``, also every events-topic
        message that causes, until none is left. Returns the other outputs."""
        pending = [Output("t.events", key, value, partition)]
        done: list[Output] = []
        while pending:
            message = pending.pop(0)
            where = message.partition
            if where is None:
                assert message.key is not None
                where = _PARTITIONER(message.key, list(range(PARTITIONS)),
                                     list(range(PARTITIONS)))
            self.offset += 1
            for output in self.resolver.process(message.key, message.value, where, RX,
                                                self.offset):
                if output.topic == "t.events":
                    self.internal.append(output)
                    if follow:
                        pending.append(output)
                else:
                    done.append(output)
        return done

    def send(self, events: list[Event], follow: bool = True) -> list[Output]:
        """An envelope as the collector writes it: keyed by the events' person."""
        person = events[0].actor
        assert person is not None
        return self.deliver(kafka_key("acme", person),
                            ENVELOPES.encode(Envelope("acme", person, events)), follow=follow)

    def tick(self, now: float) -> list[Output]:
        # Workers send ticks at their own wall-clock time, and the resolver refuses ticks
        # far ahead of its own: time moves for both.
        self.clock.now = max(self.clock.now, now)
        out: list[Output] = []
        for partition in range(PARTITIONS):
            out += self.deliver(None, ENVELOPES.encode(Tick(now, partition)), partition)
        return out

    def record(self, person: str) -> IdentityRecord:
        return IdentityRecord.from_bytes(self.store.get(map_key("acme", person)))


def _event(mid: str, user: str | None = None, anon: str | None = None,
           type_: EventType = EventType.TRACK, account: str | None = None,
           ts: float = RX, previous: str | None = None) -> Event:
    return Event(workspace="acme", message_id=mid, type=type_, timestamp=ts, received_at=RX,
                 source=Source.SEGMENT, name="Page" if type_ is EventType.PAGE else
                 "Logged In" if type_ is EventType.TRACK else None,
                 user_id=user, anonymous_id=anon, account_id=account,
                 properties={"previous_id": previous} if previous else {})


def _identify(mid: str, user: str, anon: str, ts: float = RX) -> Event:
    return _event(mid, user, anon, EventType.IDENTIFY, ts=ts)


def _group(mid: str, user: str, account: str) -> Event:
    return _event(mid, user, type_=EventType.GROUP, account=account)


def _ids(outputs: list[Output], account: str) -> list[str]:
    return sorted(e.message_id for e in by_account(outputs).get(account, []))


def _dead(outputs: list[Output]) -> list[dict[str, Any]]:
    return [orjson.loads(o.value) for o in outputs if o.topic == "t.events.dlq"]


def _moved(kind: str) -> float:
    return metrics.REGISTRY.get_sample_value("telltale_events_moved_total",
                                             {"kind": kind}) or 0.0


def test_anonymous_events_follow_an_identify_to_the_users_account() -> None:
    p = Pipeline()
    p.send([_group("g", "u1", "acct-1")])
    assert p.send([_event("v1", anon="a1", type_=EventType.PAGE),
                   _event("v2", anon="a1")]) == []
    held_before = _moved("held")
    out = p.send([_identify("i", "u1", "a1")])
    events = by_account(out)["acct-1"]
    assert sorted(e.message_id for e in events) == ["i", "v1", "v2"]
    assert {(e.user_id, e.anonymous_id) for e in events} == {("u1", "a1")}
    assert _moved("held") - held_before == 2
    # The anonymous id now only remembers its user; nothing is held or due but the link.
    assert p.record("a1").linked_to == "u1"
    assert p.record("a1").held == 0


def test_identify_before_group_holds_under_the_user_until_the_group_call() -> None:
    p = Pipeline()
    p.send([_event("v1", anon="a1", type_=EventType.PAGE)])
    assert p.send([_identify("i", "u1", "a1")]) == []
    assert p.record("u1").held == 2  # the identify and the moved page
    out = p.send([_group("g", "u1", "acct-1")])
    events = by_account(out)["acct-1"]
    assert sorted(e.message_id for e in events) == ["g", "i", "v1"]
    assert all(e.user_id == "u1" for e in events)


def test_later_anonymous_events_are_forwarded_to_the_user() -> None:
    p = Pipeline()
    p.send([_group("g", "u1", "acct-1"), _identify("i", "u1", "a1")])
    forwarded_before = _moved("forwarded")
    out = p.send([_event("v3", anon="a1"), _event("v4", anon="a1", account="acct-2")])
    routed = by_account(out)
    (v3,) = routed["acct-1"]
    (v4,) = routed["acct-2"]  # an event that names its account keeps it
    assert (v3.message_id, v3.user_id, v3.anonymous_id) == ("v3", "u1", "a1")
    assert v4.user_id == "u1"
    assert _moved("forwarded") - forwarded_before == 2
    # ... and the user is now linked to the account the anonymous event named.
    assert p.record("u1").accounts == ["acct-2", "acct-1"]


def test_identify_and_link_redelivered_move_nothing_twice() -> None:
    p = Pipeline()
    p.send([_group("g", "u1", "acct-1")])
    p.send([_event("v1", anon="a1")])
    identify = (kafka_key("acme", "u1"), ENVELOPES.encode(Envelope("acme", "u1",
                                                         [_identify("i", "u1", "a1")])))
    first = p.deliver(*identify, follow=False)
    (link,) = [o for o in p.internal if orjson.loads(o.value)["kind"] == "link"]
    assert _ids(first, "acct-1") == ["i"]
    out = p.deliver(link.key, link.value)
    assert _ids(out, "acct-1") == ["v1"]
    # The link again (a crash before its offset was committed): nothing left to move.
    assert p.deliver(link.key, link.value) == []
    # The identify again: attributed again (a real redelivery has the same offset, hence
    # the same origin), but its link finds the anonymous id linked and moves nothing.
    again = p.deliver(*identify)
    assert _ids(again, "acct-1") == ["i"]
    assert p.record("a1").linked_to == "u1"


def test_a_link_message_in_the_wrong_partition_is_rerouted() -> None:
    p = Pipeline()
    p.send([_event("v1", anon="a1")])
    home = p.resolver.owner_partition("acme", "a1")
    value = ENVELOPES.encode(Link("acme", "a1", "u1", RX))
    out = p.resolver.process(b"elsewhere", value, (home + 1) % PARTITIONS, RX)
    assert [(o.topic, o.key, o.value) for o in out] == [
        ("t.events", kafka_key("acme", "a1"), value)]
    p.deliver(out[0].key, out[0].value)
    assert p.record("u1").held == 1


def test_posthog_anonymous_distinct_id_and_alias_previous_id() -> None:
    # PostHog sends anonymous events under the anonymous distinct id as the user id;
    # $identify names it in $anon_distinct_id; alias calls name a previousId.
    p = Pipeline()
    p.send([_group("g", "u1", "acct-1")])
    p.send([_event("ph1", user="anon-ph")])
    p.send([_event("seg1", anon="a2")])
    out = p.send([_identify("i", "u1", "anon-ph"),
                  _event("al", "u1", type_=EventType.ALIAS, previous="a2")])
    assert _ids(out, "acct-1") == ["al", "i", "ph1", "seg1"]
    assert {e.user_id for e in by_account(out)["acct-1"]} == {"u1"}
    out = p.send([_event("ph2", user="anon-ph")])
    assert [(e.message_id, e.user_id) for e in by_account(out)["acct-1"]] == [("ph2", "u1")]


def test_the_latest_identify_wins() -> None:
    p = Pipeline()
    p.send([_group("g1", "u1", "acct-1")])
    p.send([_group("g2", "u2", "acct-2")])
    p.send([_identify("i1", "u1", "a1", ts=RX + 10)])
    p.send([_identify("i2", "u2", "a1", ts=RX + 20)])
    assert _ids(p.send([_event("v1", anon="a1")]), "acct-2") == ["v1"]
    # An older identify arriving late (another partition was behind) changes nothing.
    p.send([_identify("i0", "u1", "a1", ts=RX + 15)])
    assert _ids(p.send([_event("v2", anon="a1")]), "acct-2") == ["v2"]
    # A newer one does.
    p.send([_identify("i3", "u1", "a1", ts=RX + 30)])
    assert _ids(p.send([_event("v3", anon="a1")]), "acct-1") == ["v3"]


def test_chains_end_at_the_last_user() -> None:
    # u-old was aliased to u-new; an identify naming u-old still links a1 through to u-new.
    p = Pipeline()
    p.send([_group("g", "u-new", "acct-1")])
    p.send([_event("al", "u-new", type_=EventType.ALIAS, previous="u-old")])
    p.send([_event("v1", anon="a1")])
    out = p.send([_identify("i", "u-old", "a1")])
    events = by_account(out)["acct-1"]
    assert sorted(e.message_id for e in events) == ["i", "v1"]
    assert {e.user_id for e in events} == {"u-new"}
    assert p.record("a1").linked_to == "u-new"  # one hop for later events
    # The other order: a1 → u2 first, u2 aliased to u3 afterwards.
    p.send([_identify("i2", "u2", "a2")])
    p.send([_group("g3", "u3", "acct-3")])
    out = p.send([_event("al2", "u3", type_=EventType.ALIAS, previous="u2")])
    assert _ids(out, "acct-3") == ["al2", "i2"]
    out = p.send([_event("v2", anon="a2")])
    assert [(e.message_id, e.user_id) for e in by_account(out)["acct-3"]] == [("v2", "u3")]


def test_an_aliased_user_keeps_the_account_of_the_id_they_were() -> None:
    """u-old was in acct-1; after an alias u-old → u-new, u-new (in no account of their
    own) counts for acct-1: what waited under u-new, what comes later from either id."""
    p = Pipeline()
    p.send([_group("g", "u-old", "acct-1")])
    p.send([_event("n1", "u-new")])  # waits: u-new has no account yet
    out = p.send([_event("al", "u-new", type_=EventType.ALIAS, previous="u-old")])
    assert _ids(out, "acct-1") == ["al", "n1"]
    assert p.record("u-new").accounts == ["acct-1"] and p.record("u-new").held == 0
    out = p.send([_event("o2", "u-old")]) + p.send([_event("n2", "u-new")])
    assert [(e.message_id, e.user_id) for e in by_account(out)["acct-1"]] == [
        ("o2", "u-new"), ("n2", "u-new")]
    # The alias redelivered hands on nothing new and moves nothing.
    before = len(p.internal)
    out = p.send([_event("al", "u-new", type_=EventType.ALIAS, previous="u-old")])
    assert _ids(out, "acct-1") == ["al"] and len(p.internal) - before == 1  # the link


def test_a_user_with_an_account_of_their_own_keeps_it_after_an_alias() -> None:
    p = Pipeline()
    p.send([_group("g1", "u-old", "acct-1")])
    p.send([_group("g2", "u-new", "acct-2")])
    p.send([_event("al", "u-new", type_=EventType.ALIAS, previous="u-old")])
    assert p.record("u-new").accounts == ["acct-2"]
    assert _ids(p.send([_event("o2", "u-old")]), "acct-2") == ["o2"]


def test_a_cycle_of_links_moves_events_a_bounded_number_of_times() -> None:
    p = Pipeline()
    for source, target in (("x", "y"), ("y", "x")):
        p.deliver(kafka_key("acme", source), ENVELOPES.encode(Link("acme", source, target, RX)))
    before = len(p.internal)
    p.send([_event("e", user="x")])
    assert len(p.internal) - before == MAX_MOVES
    assert p.record("y").held + p.record("x").held == 1


def test_links_expire_and_are_renewed_by_use() -> None:
    p = Pipeline()
    p.send([_group("g", "u1", "acct-1"), _identify("i", "u1", "a1")])
    start = p.clock.now
    # Used after half the period: renewed, so still there after the first due time.
    p.clock.now = start + LINK_SECONDS * 0.6
    p.send([_event("v1", anon="a1")])
    p.tick(start + LINK_SECONDS + 5)
    assert p.record("a1").linked_to == "u1"
    p.clock.now = start + LINK_SECONDS * 0.7
    assert _ids(p.send([_event("v2", anon="a1")]), "acct-1") == ["v2"]
    # Unused for a whole period: forgotten, and the anonymous id leaves no key behind.
    p.tick(start + LINK_SECONDS * 1.7)
    assert not [k for k in p.store if b"a1" in k]
    assert p.send([_event("v3", anon="a1")]) == []  # held again under the anonymous id
    assert [d["payload"]["id"] for d in _dead(p.tick(start + LINK_SECONDS * 1.7 + 120))] \
        == ["v3"]


def test_a_hold_and_a_link_due_the_same_second_share_one_expiry_key() -> None:
    p = Pipeline(resolve_hold_seconds=LINK_SECONDS)
    p.send([_event("x1", user="ux")])  # held under ux, due in LINK_SECONDS
    p.deliver(kafka_key("acme", "ux"), ENVELOPES.encode(Link("acme", "ux", "u9", RX)))
    # The link released the hold but kept its expiry key, whose second it shares.
    record = p.record("ux")
    assert (record.held, record.link_due) == (0, int(p.clock.now + LINK_SECONDS) + 1)
    assert [k for k in p.store if k.startswith(b"x")]
    p.tick(p.clock.now + LINK_SECONDS + 2)
    assert not [k for k in p.store if b"ux" in k]


@pytest.mark.parametrize(
    ("message", "reason"),
    [({"kind": "link", "ws": "acme", "from": "a1", "at": RX}, "bad_link"),
     ({"kind": "link", "ws": "acme", "from": "a1", "to": "a1", "at": RX}, "bad_link"),
     ({"kind": "link", "ws": "acme", "from": "a1", "to": "u1", "at": "soon"}, "bad_link"),
     ({"kind": "link", "ws": "acme", "from": "a1", "to": "u" * 300, "at": RX}, "bad_link"),
     ({"kind": "link", "ws": "acme", "from": "a\x1f1", "to": "u1", "at": RX}, "bad_link"),
     ({"kind": "link", "ws": "acme", "from": "a1", "to": "u\x1f1", "at": RX}, "bad_link"),
     ({"kind": "link", "ws": 7, "from": "a1", "to": "u1", "at": RX}, "bad_link"),
     ({"kind": "moved", "ws": "acme", "key": "u1", "events": [], "moves": 0},
      "bad_envelope"),
     ({"kind": "moved", "ws": "acme", "key": "u1", "events": {}, "moves": 1},
      "bad_envelope"),
     ({"kind": "moved", "ws": "acme", "key": "u1", "events": [{"id": 1}], "moves": 1},
      "bad_event"),
     ({"kind": "moved", "ws": "acme", "key": "u1", "events": [], "moves": 1,
       "accs": "acct-1"}, "bad_envelope"),
     ({"kind": "moved", "ws": "acme", "key": "u1", "events": [], "moves": 1,
       "accs": ["acct-1", ""]}, "bad_envelope"),
     ({"v": 2, "kind": "link"}, "unsupported_version")],
)
def test_malformed_link_and_moved_messages_are_dead_lettered(
        message: dict[str, Any], reason: str) -> None:
    p = Pipeline()
    value = orjson.dumps({"v": 1, **message})
    for partition in range(PARTITIONS):
        out = p.deliver(kafka_key("acme", "a1"), value, partition)
        (dead,) = _dead(out)
        assert dead["reason"] == reason
        assert dead["reason"] in REASONS
    assert not p.store


def test_links_are_not_events_to_the_score_stage() -> None:
    raw = ENVELOPES.encode(Link("acme", "a1", "u1", RX))
    with pytest.raises(ValueError, match="unknown_kind"):
        ENVELOPES.decode(raw)

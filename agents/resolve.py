"""The resolve agent: events topic (keyed by person) → by-account topic (keyed by account).

For every message of the events topic — a batch envelope from the collector, or
Segment-spec JSON (one event, or ``{"batch": [...]}``) from a direct producer — it:

1. decodes and validates it; anything unusable goes to the dead-letter topic with a reason
   (never an exception out of the agent);
2. makes sure each event is handled in its person's partition: the identity map lives in a
   table co-partitioned with the events topic, so an event that arrived in another
   partition (a direct producer keyed by account, or by something else) is re-sent to the
   events topic under its person's key and resolved there;
3. updates the identity map (person → accounts, most recent first) from group calls,
   ``context.groupId`` and PostHog ``$groups``, and attributes each event to an account:
   the account the event names itself when it names one, otherwise the account the
   person was most recently linked to; events of an anonymous id that an identify or
   alias call linked to a user move to that user first (see "Anonymous ids" below);
4. writes one account-keyed batch envelope per account per input message.

Unattributed events: events of a person with no known account are *held* (in the table,
so they survive restarts) until a group call, ``context.groupId`` or ``$groups`` links
that person, and are then released to that account. A hold lasts at most
``resolve_hold_seconds`` (1 h by default) and keeps at most ``resolve_hold_max_events``
(250) events per person; events past either bound go to the dead-letter topic with reason
``unattributed``. Expiry runs on clock ticks that this module's timer sends into each
partition of the events topic it owns, so the expiring writes happen inside stream
processing like every other table write.

Anonymous ids: an event with only an anonymous id (a visitor before login; for PostHog,
an anonymous ``distinct_id``) is the person of that id, and is held under it like any
other. An identify call that carries both ids (PostHog: ``$identify`` with
``$anon_distinct_id``), or an alias call (``previousId`` → ``userId``; PostHog
``$create_alias``), says that the other id now stands for the user. That call is
resolved in the user's partition, the other id's state lives in its own, so the
resolver never reads across partitions; it sends a *link* message (``{"kind": "link",
"from": id, "to": user, "at": event time}``, :class:`streams.envelope.Link`) to the
events topic keyed by the other id. The partition that owns that id records the link in
the id's identity record, *moves* what it holds to the user, and from then on moves
every event of that id the same way: a ``moved`` message keyed by the user, its events'
user id set to the user, resolved in the user's partition like the user's own events
(attributed to the user's account, or held under the user until a group call). So:

- the latest call wins: an id linked to a second user moves to the second user, unless
  the second call is older (by event time) than the one that made the current link;
- chains end at the last user: an identify naming a user that an alias call already
  linked on is moved there, identify and all, and links the anonymous id to that last
  user; events of an id linked before its user was linked on follow both links. An
  event follows at most :data:`MAX_MOVES` links, so a cycle (two aliases in opposite
  directions) cannot move it forever;
- a link is kept for ``resolve_link_seconds`` (30 days by default) after the latest
  call that made it, renewed by the id's events once less than half of that is left, and
  then forgotten (through the same clock ticks as holds): an idle id loses it between
  half and all of that period after its last event, and is anonymous again. One user per
  id, so the links held are at most the ids identified or active in that period;
- a user with no account of their own takes the accounts of the id linked to them (an
  alias of a user who was in one): the first moved message hands them on
  (``"accs"``), and what the user had on hold is released to them. A user who has
  accounts keeps them;
- malformed link or moved messages go to the dead-letter topic (``bad_link``,
  ``bad_envelope``), like any other input.

Redelivery: a link is idempotent (a link seen before changes nothing and moves nothing:
what was held moved the first time), and so is the identify or alias call that sends it.
Moved events keep their message ids; see below for the rare repeat.

People in several accounts: an event that names its account (``context.groupId``,
``$groups``, or a group call) counts for that account; any other event counts for the
account the person was most recently linked to. Up to 16 accounts are remembered per
person.

Not deduplicated here: the collector drops client retries before Kafka (Redis, see
``agents/collector.py``); direct producers are expected to write each event once.

Delivery is at-least-once, like every Faust agent without transactions: after a crash, an
input message whose offset was not yet committed is resolved again and its envelopes are
sent again. Each by-account envelope therefore names its ``origin`` (events-topic
partition and offset, :attr:`streams.envelope.Envelope.origin`); one input message makes
at most one envelope per account, so a consumer that keeps, per account and origin
partition, the last origin offset it applied can drop such repeats. (Not for events a
direct producer put in the wrong partition, nor for moved events: each redelivery
re-sends them to their person's or user's partition, where they get a new origin. The
score stage still applies such an event once, as it skips a message id it has already
applied for the user (the account, for an event without one), within its window of
recent ids.)

The agent runs with concurrency 1 (it writes a table) and handles whole envelopes, so
Faust's fixed per-message cost is shared by many events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from agents import metrics
from state.identity import (
    EXPIRY,
    SEP,
    IdentityKeyError,
    IdentityRecord,
    expiry_key,
    expiry_range_end,
    held_key,
    map_key,
    parse_expiry_key,
)
from state.keyed import KeyedStore, TableState
from streams.dlq import DEAD_LETTERS, DeadLetter
from streams.envelope import (
    ENVELOPES,
    MAX_MOVED_ACCOUNTS,
    TICK_SKEW_SECONDS,
    EnvelopeError,
    Header,
    KeyPartitions,
    Link,
    Moved,
    Tick,
    check_wire,
    kafka_key,
)
from streams.events import Event, EventType, Source
from streams.normalize import NormalizeContext, Reason, Rejection, normalize_direct
from streams.settings import Settings

if TYPE_CHECKING:
    import faust

log = logging.getLogger(__name__)

AGENT = "resolve"
T = TypeVar("T")
Wire = dict[str, Any]
"""An event in wire form (:meth:`Event.to_wire`), checked by :func:`check_wire`: the
resolver edits ``acc`` in place instead of rebuilding events."""
STATE_TABLE = "resolve-state"
_MAX_WORKSPACE_CHARS = 128
MAX_MOVES = 4
"""Links an event follows at most (anonymous id → user → the user an alias named …);
past that it stays with the person it reached, so a cycle of links cannot move it
forever."""
_LINKING = (EventType.IDENTIFY.value, EventType.ALIAS.value)


@dataclass(frozen=True, slots=True)
class Output:
    """One Kafka message to send: the agent sends them in order after each input."""

    topic: str
    key: bytes | None
    value: bytes
    partition: int | None = None


class Resolver:
    """The resolve stage without Faust: input message in, table writes and outputs out."""

    def __init__(self, settings: Settings, store: KeyedStore,
                 now: Callable[[], float] = time.time) -> None:
        self.topics = settings.topics
        self.partitions = settings.partitions
        self.hold_seconds = settings.resolve_hold_seconds
        self.hold_max = max(1, settings.resolve_hold_max_events)
        self.record_max_bytes = settings.state_record_max_bytes
        self.link_seconds = settings.resolve_link_seconds
        # The partition of the message being processed (the agent begins each message
        # on it): identity records, held events and the expiry index of holds and links.
        self.store = store
        self.now = now
        self.workspaces_by_key = Settings.parse_pairs(settings.write_keys)
        workspaces = set(self.workspaces_by_key.values())
        self.only_workspace = workspaces.pop() if len(workspaces) == 1 else None
        self._owner_of = KeyPartitions(self.partitions)

    # --------------------------------------------------------------------- input

    def process(self, key: bytes | None, value: bytes | None, partition: int,
                received_at: float, offset: int | None = None) -> list[Output]:
        """Handle one message of the events topic; never raises.

        ``offset`` (the message's) becomes the ``origin`` of the by-account envelopes.
        """
        out: list[Output] = []
        origin = (partition, offset) if offset is not None else None
        try:
            self._process(key, value, partition, received_at, origin, out)
        except Exception as exc:  # a bug must cost one message, not the stream
            log.exception("resolve failed on a message of partition %d", partition)
            self._dead(out, DeadLetter(Reason.INTERNAL_ERROR, repr(exc)[:500], Source.KAFKA.value,
                                       None, received_at, raw=value))
        metrics.MESSAGES_PROCESSED.labels(agent=AGENT).inc()
        return out

    def _process(self, key: bytes | None, value: bytes | None, partition: int,
                 received_at: float, origin: tuple[int, int] | None,
                 out: list[Output]) -> None:
        if not value:
            self._dead(out, DeadLetter(Reason.EMPTY, "message has no value", Source.KAFKA.value,
                                       None, received_at, raw=value))
            return
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            self._dead(out, DeadLetter(Reason.NOT_JSON, str(exc)[:200], Source.KAFKA.value,
                                       None, received_at, raw=value))
            return
        wires: list[Wire]
        released: list[Wire] = []  # held here until this message named an account
        moves = 0
        if ENVELOPES.claims(obj) and ENVELOPES.is_identity(obj):
            control = self._decoded(ENVELOPES.decode_identity, obj, received_at, out)
            if control is None:
                return
            if isinstance(control, Link):
                self._receive_link(key, partition, control, obj, received_at, out)
                return
            wires, moves = self._checked(control.events, control.workspace, received_at,
                                         out), control.moves
            if control.accounts:
                released = self._inherit(key, partition, control, out)
        elif ENVELOPES.claims(obj):
            header = self._decoded(ENVELOPES.decode_header, obj, received_at, out)
            if header is None:
                return
            if isinstance(header, Tick):
                if header.partition == partition:
                    self.expire(self._bounded_tick(header, value, received_at, out), out)
                return
            wires = self._checked(header.events, header.workspace, received_at, out)
        else:
            wires = [event.to_wire() for event in self._direct(obj, received_at, out)]
        if wires:
            metrics.EVENTS_PROCESSED.labels(agent=AGENT).inc(len(wires))
        if released or wires:
            self._route(key, partition, released + wires, origin, out, moves)

    def _bounded_tick(self, tick: Tick, value: bytes, received_at: float,
                      out: list[Output]) -> float:
        """The tick's time, at most :data:`TICK_SKEW_SECONDS` past the wall clock
        (holds and links are due in wall-clock time here): a forged tick far ahead would
        dead-letter every held event and forget every link. One past it is dead-lettered
        and its time clamped."""
        limit = self.now() + TICK_SKEW_SECONDS
        if tick.now <= limit:
            return tick.now
        self._dead(out, DeadLetter("tick_out_of_bounds",
                                   f"tick at {tick.now:.3f} is past {limit:.3f}",
                                   Source.KAFKA.value, None, received_at, raw=value))
        return limit

    def _checked(self, events: list[Any], workspace: str, received_at: float,
                 out: list[Output]) -> list[Wire]:
        """The events of an envelope that pass :func:`check_wire`; the others are
        dead-lettered one by one."""
        try:
            return [check_wire(wire) for wire in events]
        except EnvelopeError:
            pass  # some are bad: sort them out one by one
        wires: list[Wire] = []
        for wire in events:
            try:
                wires.append(check_wire(wire))
            except EnvelopeError as exc:
                self._dead(out, DeadLetter(exc.reason, exc.detail, Source.KAFKA.value,
                                           workspace, received_at, payload=wire))
        return wires

    def _decoded(self, decode: Callable[[Any], T], obj: Any, received_at: float,
                 out: list[Output]) -> T | None:
        """``decode(obj)``, or None after dead-lettering what it found wrong."""
        try:
            return decode(obj)
        except EnvelopeError as exc:
            self._dead(out, DeadLetter(exc.reason, exc.detail, Source.KAFKA.value,
                                       _workspace_hint(obj), received_at, payload=obj))
            return None

    def _direct(self, obj: Any, received_at: float, out: list[Output]) -> list[Event]:
        """Segment-spec JSON from a direct producer: one event or ``{"batch": [...]}``."""
        if isinstance(obj, dict) and isinstance(obj.get("batch"), list):
            messages: list[Any] = obj["batch"]
            outer: dict[str, Any] = obj
        else:
            messages, outer = [obj], {}
        events: list[Event] = []
        for message in messages:
            source = Source.KAFKA.value
            workspace = self._direct_workspace(message, outer)
            if workspace is None:
                self._dead(out, DeadLetter(Reason.UNKNOWN_WORKSPACE,
                                           "no workspace, known writeKey or default workspace",
                                           source, None, received_at, payload=message))
                continue
            result = normalize_direct(message, NormalizeContext(workspace, received_at,
                                                                Source.KAFKA))
            metrics.EVENTS_RECEIVED.labels(source=source, type=_type_label(result)).inc()
            if isinstance(result, Rejection):
                self._dead(out, DeadLetter(result.reason, result.detail, source, workspace,
                                           received_at, payload=message))
            else:
                metrics.EVENTS_ACCEPTED.labels(source=source).inc()
                events.append(result)
        return events

    def _direct_workspace(self, message: Any, outer: dict[str, Any]) -> str | None:
        for holder in (message, outer):
            if not isinstance(holder, dict):
                continue
            workspace = holder.get("workspace")
            if isinstance(workspace, str) and 0 < len(workspace) <= _MAX_WORKSPACE_CHARS \
                    and "\x1f" not in workspace and "|" not in workspace:
                return workspace
            write_key = holder.get("writeKey")
            if isinstance(write_key, str) and write_key in self.workspaces_by_key:
                return self.workspaces_by_key[write_key]
        return self.only_workspace

    # --------------------------------------------------------------------- routing

    def owner_partition(self, workspace: str, person: str) -> int:
        """The events-topic partition of a person (Kafka's default partitioner)."""
        return self._owner_of(kafka_key(workspace, person))

    def _route(self, key: bytes | None, partition: int, wires: list[Wire],
               origin: tuple[int, int] | None, out: list[Output], moves: int = 0) -> None:
        by_person: dict[tuple[str, str], list[Wire]] = {}
        attributed: list[Wire] = []
        for wire in wires:
            person = wire.get("u") or wire.get("a")
            if person is None:
                # Only a group call may come without a person (PostHog $groupidentify):
                # it names its account, and no identity changes.
                if wire["t"] == "group" and wire.get("acc"):
                    attributed.append(wire)
                else:
                    self._dead(out, _dead_wire(wire, Reason.MISSING_IDENTITY,
                                               "event has neither user nor anonymous id"))
                continue
            by_person.setdefault((wire["ws"], person), []).append(wire)
        for (workspace, person), group in by_person.items():
            if not self._here(key, partition, workspace, person):
                value = ENVELOPES.encode(Moved(workspace, person, group, moves)) if moves else \
                    ENVELOPES.encode(Header(workspace, person, group))
                out.append(Output(self.topics.events, kafka_key(workspace, person), value))
                continue
            try:
                attributed.extend(self._resolve(workspace, person, group, out, moves))
            except IdentityKeyError as exc:
                for wire in group:
                    self._dead(out, _dead_wire(wire, Reason.BAD_IDENTITY, str(exc)))
        self._emit(attributed, origin, out)

    def _here(self, key: bytes | None, partition: int, workspace: str, person: str) -> bool:
        """True when ``person``'s state is in ``partition``. A message under the person's
        own key is where every other one of theirs is (whatever the partition count), so
        it never bounces."""
        return key == kafka_key(workspace, person) or \
            self.owner_partition(workspace, person) == partition

    # --------------------------------------------------------------------- identity

    def _resolve(self, workspace: str, person: str, wires: list[Wire],
                 out: list[Output], moves: int = 0) -> list[Wire]:
        """Attribute one person's events (in place); returns those that have an account.

        Events of a person linked to a user move on to that user instead (at most
        :data:`MAX_MOVES` times); identify and alias calls link their other id here."""
        mkey = map_key(workspace, person)
        record = IdentityRecord.from_bytes(self.store.get(mkey))
        if record.linked_to is not None:
            if moves < MAX_MOVES:
                self._move(workspace, record.linked_to, wires, moves + 1, "forwarded", out)
                if self._renew_link(workspace, person, record):
                    self.store.put(mkey, record.to_bytes())
                return []
            log.warning("events of %s followed %d links; a cycle of identify or alias "
                        "calls? resolving them here", person, moves)
        self._send_links(workspace, person, wires, out)
        changed = False
        attributed: list[Wire] = []
        waiting: list[Wire] = []
        for wire in wires:
            account = wire.get("acc")
            if account:
                changed |= record.link(account)
                attributed.append(wire)
            elif record.accounts:
                wire["acc"] = record.accounts[0]
                attributed.append(wire)
            else:
                waiting.append(wire)
        current = record.current
        if current is not None:
            # Linked by this very message: what waited here goes along, and so does
            # whatever an earlier message left on hold.
            if record.held:
                waiting = self._release(workspace, person, record) + waiting
                changed = True
            for wire in waiting:
                wire["acc"] = current
            attributed.extend(waiting)
        elif waiting:
            self._hold(workspace, person, record, waiting, out)
            changed = True
        if changed:
            self.store.put(mkey, record.to_bytes())
        return attributed

    def _hold(self, workspace: str, person: str, record: IdentityRecord,
              wires: list[Wire], out: list[Output]) -> None:
        hkey = held_key(workspace, person)
        held: list[Any] = orjson.loads(self.store.get(hkey) or b"[]") if record.held else []
        held.extend(wires)
        overflow = len(held) - self.hold_max
        if overflow > 0:
            for wire in held[:overflow]:
                self._dead(out, _dead_wire(wire, Reason.UNATTRIBUTED,
                                           f"more than {self.hold_max} events waited for an "
                                           f"account of {person}"))
            del held[:overflow]
        raw = orjson.dumps(held)
        if len(raw) > self.record_max_bytes:
            raw = self._shed_held(held, len(raw), person, out)
        self.store.put(hkey, raw)
        if record.hold_due is None:
            due = int(self.now() + self.hold_seconds) + 1
            self.store.put(expiry_key(due, workspace, person), b"")
            record.hold_due = due
        record.held = len(held)

    def _shed_held(self, held: list[Wire], size: int, person: str,
                   out: list[Output]) -> bytes:
        """Dead-letter the oldest of ``held`` (``size`` bytes serialised) until the rest
        fits in ``state_record_max_bytes``; returns the rest, serialised.

        Kafka refuses a changelog record over its message limit, and the failed write
        would stop the partition for every workspace in it."""
        while held and size > self.record_max_bytes:
            wire = held.pop(0)
            size -= len(orjson.dumps(wire)) + 1  # the event and its comma
            self._dead(out, _dead_wire(wire, "state_record_too_large",
                                       f"the events held for an account of {person} "
                                       f"passed {self.record_max_bytes} bytes",
                                       self.record_max_bytes))
        raw = orjson.dumps(held)
        return raw if len(raw) <= self.record_max_bytes else self._shed_held(
            held, len(raw), person, out)

    def _release(self, workspace: str, person: str, record: IdentityRecord) -> list[Wire]:
        hkey = held_key(workspace, person)
        raw = self.store.get(hkey)
        self.store.delete(hkey)
        due = record.hold_due
        record.held, record.hold_due = 0, None
        self._unschedule(workspace, person, record, due)
        released: list[Wire] = []
        for wire in orjson.loads(raw or b"[]"):
            try:
                released.append(check_wire(wire))
            except EnvelopeError:  # written by this module, so only after a format change
                log.warning("dropping an unreadable held event of %s", person)
        return released

    def expire(self, now: float, out: list[Output]) -> None:
        """Dead-letter the holds of the message's partition due by ``now`` (epoch
        seconds), and forget the links due by then."""
        for xkey in list(self.store.scan(EXPIRY + SEP, expiry_range_end(int(now)))):
            self.store.delete(xkey)
            due, workspace, person = parse_expiry_key(xkey)
            mkey = map_key(workspace, person)
            record = IdentityRecord.from_bytes(self.store.get(mkey))
            if not record.uses_due(due):
                continue  # released, re-held or renewed since
            if record.hold_due == due:
                hkey = held_key(workspace, person)
                for wire in orjson.loads(self.store.get(hkey) or b"[]"):
                    self._dead(out, _dead_wire(wire, Reason.UNATTRIBUTED,
                                               f"no account known for {person} within "
                                               f"{self.hold_seconds:g} s"))
                self.store.delete(hkey)
                record.held, record.hold_due = 0, None
            if record.link_due == due:
                record.unlink_user()
            if record.empty:
                self.store.delete(mkey)
            else:
                self.store.put(mkey, record.to_bytes())

    # --------------------------------------------------------------------- links

    def _send_links(self, workspace: str, person: str, wires: list[Wire],
                    out: list[Output]) -> None:
        """For identify and alias calls of ``person`` (a user), tell the partition of the
        other id they name (the anonymous id; an alias's previous id) that it is now
        ``person``: one link message per id and input message."""
        latest: dict[str, float] = {}
        for wire in wires:
            if wire["t"] not in _LINKING or wire.get("u") != person:
                continue
            others = [wire.get("a")]
            if wire["t"] == EventType.ALIAS.value:
                others.append((wire.get("p") or {}).get("previous_id"))
            for other in others:
                if isinstance(other, str) and other and other != person:
                    latest[other] = max(latest.get(other, wire["ts"]), wire["ts"])
        for other, at in latest.items():
            link = Link(workspace, other, person, float(at))
            out.append(Output(self.topics.events, kafka_key(workspace, other),
                              ENVELOPES.encode(link)))

    def _receive_link(self, key: bytes | None, partition: int, link: Link, obj: Any,
                      received_at: float, out: list[Output]) -> None:
        """Record that ``link.source`` now stands for ``link.target``, and move what the
        source holds to the target. Idempotent: a link seen before changes nothing."""
        workspace, source = link.workspace, link.source
        if not self._here(key, partition, workspace, source):
            out.append(Output(self.topics.events, kafka_key(workspace, source),
                              ENVELOPES.encode(link)))
            return
        try:
            mkey = map_key(workspace, source)
            map_key(workspace, link.target)  # the target must be a usable id too
        except IdentityKeyError as exc:
            self._dead(out, DeadLetter(Reason.BAD_LINK, str(exc), Source.KAFKA.value,
                                       workspace, received_at, payload=obj))
            return
        record = IdentityRecord.from_bytes(self.store.get(mkey))
        if not record.link_user(link.target, link.at):
            return  # seen before, or a link made by an earlier call than the current one
        self._renew_link(workspace, source, record)
        released = self._release(workspace, source, record) if record.held else []
        # The user also learns the id's accounts (an alias of a user who was in one), in
        # case they have none of their own yet.
        self._move(workspace, link.target, released, 1, "held", out,
                   record.accounts[:MAX_MOVED_ACCOUNTS])
        self.store.put(mkey, record.to_bytes())

    def _inherit(self, key: bytes | None, partition: int, moved: Moved,
                 out: list[Output]) -> list[Wire]:
        """Give ``moved.key`` the accounts a moved message hands on, unless that user
        has accounts already (their own calls say more about them). Returns what the
        user had on hold, now attributable, to be resolved with the message."""
        workspace, user = moved.workspace, moved.key
        if not self._here(key, partition, workspace, user):
            out.append(Output(self.topics.events, kafka_key(workspace, user), ENVELOPES.encode(
                Moved(workspace, user, [], moved.moves, moved.accounts))))
            return []
        mkey = map_key(workspace, user)
        record = IdentityRecord.from_bytes(self.store.get(mkey))
        if record.linked_to is not None and moved.moves < MAX_MOVES:
            self._move(workspace, record.linked_to, [], moved.moves + 1, "forwarded", out,
                       moved.accounts)
            return []
        if record.accounts:
            return []
        for account in reversed(moved.accounts):
            record.link(account)
        released = self._release(workspace, user, record) if record.held else []
        self.store.put(mkey, record.to_bytes())
        return released

    def _move(self, workspace: str, user: str, wires: list[Wire], moves: int, kind: str,
              out: list[Output], accounts: Sequence[str] = ()) -> None:
        """Send events to ``user``'s partition as theirs (``u`` set to the user), with
        the accounts of the id they come from when given."""
        if not wires and not accounts:
            return
        for wire in wires:
            wire["u"] = user
        out.append(Output(self.topics.events, kafka_key(workspace, user),
                          ENVELOPES.encode(Moved(workspace, user, wires, moves, tuple(accounts)))))
        metrics.EVENTS_MOVED.labels(kind=kind).inc(len(wires))

    def _renew_link(self, workspace: str, person: str, record: IdentityRecord) -> bool:
        """Push the link's expiry to ``resolve_link_seconds`` from now once half of that
        has passed (so that a busy id costs a write per half period, not per event).
        True when the record changed."""
        now = self.now()
        old = record.link_due
        if old is not None and old - now > self.link_seconds / 2:
            return False
        due = int(now + self.link_seconds) + 1
        record.link_due = due
        self._unschedule(workspace, person, record, old)
        self.store.put(expiry_key(due, workspace, person), b"")
        return True

    def _unschedule(self, workspace: str, person: str, record: IdentityRecord,
                    due: int | None) -> None:
        """Drop the expiry key at ``due`` unless the record still uses it."""
        if due is not None and not record.uses_due(due):
            self.store.delete(expiry_key(due, workspace, person))

    # --------------------------------------------------------------------- output

    def _emit(self, wires: list[Wire], origin: tuple[int, int] | None,
              out: list[Output]) -> None:
        by_account: dict[tuple[str, str], list[Wire]] = {}
        for wire in wires:
            by_account.setdefault((wire["ws"], wire["acc"]), []).append(wire)
        for (workspace, account), group in by_account.items():
            # The partition is the one the key gives (the topic has ``partitions``, like
            # the events topic); naming it spares the producer its pure-Python murmur2.
            key = kafka_key(workspace, account)
            out.append(Output(self.topics.by_account, key,
                              ENVELOPES.encode(Header(workspace, account, group, origin)),
                              self._owner_of(key)))

    def _dead(self, out: list[Output], dead: DeadLetter) -> None:
        metrics.EVENTS_DEAD_LETTERED.labels(reason=dead.reason).inc()
        out.append(Output(self.topics.events_dlq, DEAD_LETTERS.key(dead),
                          DEAD_LETTERS.encode(dead)))


def _dead_wire(wire: Wire, reason: str, detail: str,
               max_bytes: int | None = None) -> DeadLetter:
    """A dead letter for a checked wire event (the canonical form is all that is left of
    it by now; its original payload was accepted upstream). An event larger than
    ``max_bytes`` keeps only its id, so the dead letter itself fits in a Kafka message."""
    payload: Any = wire
    if max_bytes is not None and len(orjson.dumps(wire)) > max_bytes // 2:
        payload = {"id": wire.get("id"), "truncated": True}
    message_id = wire.get("id")
    return DeadLetter(reason, detail, wire["src"], wire["ws"], float(wire["rx"]),
                      payload=payload,
                      message_id=message_id if isinstance(message_id, str) else None)


def _workspace_hint(obj: Any) -> str | None:
    workspace = obj.get("ws") if isinstance(obj, dict) else None
    return workspace if isinstance(workspace, str) and workspace else None


def _type_label(result: Event | Rejection) -> str:
    return result.type.value if isinstance(result, Event) else "other"


# ------------------------------------------------------------------------- Faust


def register(app: faust.App, settings: Settings) -> None:
    """Declare the resolve agent, its table and its tick timer on ``app``."""
    from agents.app import finish_even_if_cancelled
    from state.tables import keyed_table, raw_schema

    names = settings.topics
    events_topic = app.topic(names.events, schema=raw_schema(),
                             partitions=settings.partitions)
    table = keyed_table(app, settings, STATE_TABLE,
                        "Identity map (person → accounts, linked user) and events held for an "
                        "account")
    store = TableState(table, names.events, indexed=(EXPIRY,))
    store.settle_at_handover(app)
    resolver = Resolver(settings, store)

    @app.agent(events_topic, name="resolve", concurrency=1)
    async def resolve(stream: faust.StreamT[bytes]) -> None:
        # Outputs are raw bytes: they go to the producer directly, skipping the
        # serialisation and bookkeeping of Faust's topic.send (a large share of the
        # stage's cost, per message sent). The worker creates the shared topics at start.
        producer = app.producer

        async def resolve_one(message: Any) -> None:
            store.begin(message.partition)
            # Faust gives the Kafka timestamp in seconds: when the producer created it.
            received_at = message.timestamp if message.timestamp else time.time()
            outputs = resolver.process(message.key, message.value, message.partition,
                                       received_at, message.offset)
            if not await store.flush():
                return  # handed over meanwhile: its new owner resolves it again
            for output in outputs:
                await producer.send(output.topic, output.key, output.value, output.partition,
                                    None, None)

        async for event in stream.events():
            # A shutdown must not cut a message between its writes and its envelopes.
            await finish_even_if_cancelled(resolve_one(event.message))

    @app.timer(interval=settings.tick_interval, name="resolve-ticks")
    async def send_ticks() -> None:
        now = time.time()
        for tp in app.assignor.assigned_actives():
            if tp.topic == names.events:
                await events_topic.send(key=None, value=ENVELOPES.encode(Tick(now, tp.partition)),
                                        partition=tp.partition)


__all__ = ["Output", "Resolver", "register"]

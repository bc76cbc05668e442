"""The batch envelope: one Kafka message carrying many events for one key.

Faust spends a fixed 100-200 µs per Kafka message whatever it holds, so the collector and
the resolve agent never write one message per event when several events share a key. Two
message kinds travel on the events and by-account topics::

    {"v": 1, "kind": "events", "ws": workspace, "key": account_or_user, "events": [wire...],
     "src": [partition, offset]}     # src: optional, see Envelope.origin
    {"v": 1, "kind": "tick", "now": epoch_seconds, "partition": n}

Two more travel only on the events topic, between partitions of the resolve agent
(:meth:`EnvelopeCodec.decode_identity`; :meth:`EnvelopeCodec.decode` refuses them as
``unknown_kind``)::

    {"v": 1, "kind": "link", "ws": workspace, "from": anonymous_or_previous_id,
     "to": user_id, "at": epoch_seconds}          # keyed by "from", see Link
    {"v": 1, "kind": "moved", "ws": workspace, "key": user_id, "events": [wire...],
     "moves": n}                                   # keyed by "key", see Moved

All of them are written and read by one codec, :data:`ENVELOPES`. Events are
:meth:`streams.events.Event.to_wire` dicts. Decoding validates every field's
type, because the events topic is open to direct producers: anything malformed raises
:class:`EnvelopeError` with a stable ``reason`` code that ends up on the dead-letter topic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeGuard

import orjson

from streams.events import Event, EventType, Source

ENVELOPE_VERSION = 1
KIND_EVENTS = "events"
KIND_TICK = "tick"
#: The last second of 9999: later tick times are not times but forgeries or bugs.
MAX_TICK_SECONDS = 253_402_300_799
#: Event times further than this ahead of the wall clock do not move a live clock.
FUTURE_TOLERANCE_SECONDS = 3600.0
#: How far a tick may lead the wall clock of the worker that reads it: workers send ticks
#: at their own wall-clock time, so only clock skew between hosts separates the two.
TICK_SKEW_SECONDS = 120.0
KIND_LINK = "link"
KIND_MOVED = "moved"
IDENTITY_KINDS = frozenset({KIND_LINK, KIND_MOVED})

_MAX_LINK_ID_CHARS = 256  # the normalisers' longest id
_EVENT_TYPES = {t.value: t for t in EventType}
_SOURCES = {s.value: s for s in Source}


class EnvelopeError(ValueError):
    """A message that is not a valid envelope or tick. ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Envelope:
    """Events of one workspace that share one Kafka key (an account, a user).

    ``origin``: (partition, offset) of the events-topic message the resolve agent made this
    by-account envelope from. One input message yields at most one envelope per account,
    so a consumer that remembers, per account and origin partition, the last origin offset
    it applied can skip the envelopes a resolve restart sends again. ``None`` elsewhere.
    """

    workspace: str
    key: str
    events: list[Event]
    origin: tuple[int, int] | None = None


class Header(NamedTuple):
    """An events envelope with its events in wire form, not yet checked (see
    :meth:`EnvelopeCodec.decode_header`)."""

    workspace: str
    key: str
    events: list[Any]
    origin: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Tick:
    """A clock tick for one partition: event-time ``now`` in epoch seconds."""

    now: float
    partition: int


@dataclass(frozen=True, slots=True)
class Link:
    """``source`` (an anonymous id, or the previous id of an alias call) of ``workspace``
    now stands for the user ``target``, as an identify or alias call made at event time
    ``at`` (epoch seconds) said. Sent keyed by ``source``, to the partition that holds the
    source's state."""

    workspace: str
    source: str
    target: str
    at: float


class Moved(NamedTuple):
    """Events moved to the user ``key`` from an id linked to that user, their ``events``
    not yet checked (like :class:`Header`). ``moves`` counts the links they followed, so
    that a cycle of links cannot move them forever. ``accounts``: those the linked id
    belonged to (most recent first), for a user who has none of their own yet."""

    workspace: str
    key: str
    events: list[Any]
    moves: int
    accounts: tuple[str, ...] = ()


def _kind_of_versioned(obj: Any) -> Any:
    """The ``kind`` of a JSON object in this module's version (``EnvelopeError`` if not)."""
    if not isinstance(obj, dict):
        raise EnvelopeError("not_an_object", f"expected a JSON object, got {type(obj).__name__}")
    version = obj.get("v")
    if version != ENVELOPE_VERSION or isinstance(version, bool):
        raise EnvelopeError("unsupported_version", f"envelope version {str(version)[:20]!r}")
    return obj.get("kind")


def _link_id(obj: dict[str, Any], field: str) -> str:
    value = obj.get(field)
    if not isinstance(value, str) or not value or len(value) > _MAX_LINK_ID_CHARS:
        raise EnvelopeError("bad_link", f"{field} must be a non-empty string of at most "
                                        f"{_MAX_LINK_ID_CHARS} characters")
    return value


def check_wire(wire: Any) -> dict[str, Any]:
    """Validate one wire event without building an :class:`Event` (the fast path for
    stages that only pass events on); returns it unchanged or raises ``EnvelopeError``.

    Exact ``type(...) is`` checks: values come from orjson, which only makes plain types.
    """
    if type(wire) is not dict:
        raise EnvelopeError("bad_event", "event must be a JSON object")
    ws = wire.get("ws")
    if type(ws) is not str or not ws:
        raise EnvelopeError("bad_event", "ws must be a non-empty string")
    message_id = wire.get("id")
    if type(message_id) is not str or not message_id:
        raise EnvelopeError("bad_event", "id must be a non-empty string")
    raw_type = wire.get("t")
    if type(raw_type) is not str or raw_type not in _EVENT_TYPES:
        raise EnvelopeError("bad_event", f"unknown event type {str(raw_type)[:40]!r}")
    raw_source = wire.get("src")
    if type(raw_source) is not str or raw_source not in _SOURCES:
        raise EnvelopeError("bad_event", f"unknown source {str(raw_source)[:40]!r}")
    for field in ("ts", "rx"):
        value = wire.get(field)
        if (type(value) is not float and type(value) is not int) or not math.isfinite(value):
            raise EnvelopeError("bad_event", f"{field} must be a finite number")
    for field in ("n", "u", "a", "acc"):
        value = wire.get(field)
        if value is not None and type(value) is not str:
            raise EnvelopeError("bad_event", f"{field} must be a string")
    for field in ("p", "tr"):
        value = wire.get(field)
        if value is not None and type(value) is not dict:
            raise EnvelopeError("bad_event", f"{field} must be an object")
    return wire


def event_from_wire(wire: Any) -> Event:
    """Strictly typed inverse of :meth:`Event.to_wire` (``EnvelopeError`` on bad input)."""
    check_wire(wire)
    return Event(
        workspace=wire["ws"],
        message_id=wire["id"],
        type=_EVENT_TYPES[wire["t"]],
        timestamp=float(wire["ts"]),
        received_at=float(wire["rx"]),
        source=_SOURCES[wire["src"]],
        name=wire.get("n"),
        user_id=wire.get("u"),
        anonymous_id=wire.get("a"),
        account_id=wire.get("acc"),
        properties=wire.get("p") or {},
        traits=wire.get("tr") or {},
    )


def _is_number(value: Any) -> TypeGuard[int | float]:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


MAX_MOVED_ACCOUNTS = 16
"""Most accounts a moved message hands on (what an identity record remembers)."""


_MURMUR_SEED = 0x9747B28C
_MURMUR_M = 0x5BD1E995
_U32 = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 of a message key, the hash its default partitioner uses; kept
    here so that the message formats need no Kafka client (a test pins it to aiokafka's)."""
    length = len(data)
    h = (_MURMUR_SEED ^ length) & _U32
    whole = length & ~3
    for i in range(0, whole, 4):
        k = (int.from_bytes(data[i:i + 4], "little") * _MURMUR_M) & _U32
        k = ((k ^ (k >> 24)) * _MURMUR_M) & _U32
        h = ((h * _MURMUR_M) & _U32) ^ k
    extra = length - whole
    if extra == 3:
        h ^= data[whole + 2] << 16
    if extra >= 2:
        h ^= data[whole + 1] << 8
    if extra >= 1:
        h = ((h ^ data[whole]) * _MURMUR_M) & _U32
    h = ((h ^ (h >> 13)) * _MURMUR_M) & _U32
    return h ^ (h >> 15)


class KeyPartitions:
    """The partition Kafka's default partitioner (:func:`murmur2`, as every client computes
    it) gives a message key among ``partitions``. murmur2 in Python takes tens of µs, so
    answers are remembered, up to ``cache_size`` keys."""

    def __init__(self, partitions: int, cache_size: int = 200_000) -> None:
        self.partitions = partitions
        self._known: dict[bytes, int] = {}
        self._cache_size = cache_size

    def __call__(self, key: bytes) -> int:
        partition = self._known.get(key)
        if partition is None:
            if len(self._known) >= self._cache_size:
                self._known.clear()
            partition = (murmur2(key) & 0x7FFFFFFF) % self.partitions
            self._known[key] = partition
        return partition


def kafka_key(workspace: str, key: str) -> bytes:
    """The Kafka message key for ``key`` (a user, anonymous or account id) of a workspace.

    Every producer of the events and by-account topics uses this one function, so that
    all messages of one user (or account) land in one partition, next to its table rows.
    """
    return f"{workspace}|{key}".encode()


class EnvelopeCodec:
    """The one codec of the events and by-account topics: every producer (the collector,
    the resolve agent, the score agent's timer) encodes with :meth:`encode`, every
    consumer decodes with :meth:`decode` or, to check events one by one,
    :meth:`decode_header` and :meth:`decode_identity`."""

    def encode(self, message: Envelope | Header | Tick | Link | Moved) -> bytes:
        """The message's bytes: an :class:`Envelope` of events, a :class:`Header` of
        events already in wire form (checked by :func:`check_wire`), a tick, a link or
        moved events."""
        if isinstance(message, Tick):
            return orjson.dumps({"v": ENVELOPE_VERSION, "kind": KIND_TICK,
                                 "now": message.now, "partition": message.partition})
        if isinstance(message, Link):
            return orjson.dumps({"v": ENVELOPE_VERSION, "kind": KIND_LINK,
                                 "ws": message.workspace, "from": message.source,
                                 "to": message.target, "at": message.at})
        if isinstance(message, Moved):
            moved: dict[str, Any] = {"v": ENVELOPE_VERSION, "kind": KIND_MOVED,
                                     "ws": message.workspace, "key": message.key,
                                     "events": message.events, "moves": message.moves}
            if message.accounts:
                moved["accs"] = list(message.accounts)
            return orjson.dumps(moved)
        wires = (message.events if isinstance(message, Header)
                 else [event.to_wire() for event in message.events])
        envelope: dict[str, Any] = {"v": ENVELOPE_VERSION, "kind": KIND_EVENTS,
                                    "ws": message.workspace, "key": message.key,
                                    "events": wires}
        if message.origin is not None:
            envelope["src"] = list(message.origin)
        return orjson.dumps(envelope)

    def encode_joined(self, workspace: str, key: str, encoded: Iterable[bytes]) -> bytes:
        """An events envelope from events already serialised one by one (``orjson.dumps``
        of their wire form): the collector encodes each request's events once and joins
        those of several requests into one message without decoding them again."""
        head = orjson.dumps({"v": ENVELOPE_VERSION, "kind": KIND_EVENTS, "ws": workspace,
                             "key": key})
        return b"".join((head[:-1], b',"events":[', b",".join(encoded), b"]}"))

    def decode(self, raw: bytes | bytearray | memoryview | str | None) -> Envelope | Tick:
        """Parse one Kafka message value, every event checked. Raises
        :class:`EnvelopeError` on anything else (link and moved messages included:
        ``unknown_kind``)."""
        if raw is None:
            raise EnvelopeError("empty", "message has no value")
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise EnvelopeError("not_json", str(exc)[:200]) from None
        header = self.decode_header(obj)
        if isinstance(header, Tick):
            return header
        return Envelope(header.workspace, header.key,
                        [event_from_wire(w) for w in header.events], header.origin)

    @staticmethod
    def claims(obj: Any) -> bool:
        """True when a decoded JSON value claims to be one of these messages (has ``v``
        and ``kind``); a direct producer's plain event does not."""
        return isinstance(obj, dict) and "v" in obj and "kind" in obj

    @staticmethod
    def is_identity(obj: Any) -> bool:
        """True when a message that :meth:`claims` to be one is a link or moved message."""
        return obj.get("kind") in IDENTITY_KINDS

    @staticmethod
    def decode_header(obj: Any) -> Tick | Header:
        """Validate everything but the events: a :class:`Tick`, or (workspace, key, the
        events list *unchecked*) for stages that check events one by one (:func:`check_wire`)
        so one bad event costs only itself."""
        kind = _kind_of_versioned(obj)
        if kind == KIND_EVENTS:
            workspace = obj.get("ws")
            key = obj.get("key")
            events = obj.get("events")
            if not isinstance(workspace, str) or not workspace:
                raise EnvelopeError("bad_envelope", "ws must be a non-empty string")
            if not isinstance(key, str):
                raise EnvelopeError("bad_envelope", "key must be a string")
            if not isinstance(events, list):
                raise EnvelopeError("bad_envelope", "events must be a list")
            origin = obj.get("src")
            if origin is not None:
                if (type(origin) is not list or len(origin) != 2
                        or any(type(n) is not int or n < 0 for n in origin)):
                    raise EnvelopeError("bad_envelope", "src must be [partition, offset]")
                origin = (origin[0], origin[1])
            return Header(workspace, key, events, origin)
        if kind == KIND_TICK:
            now = obj.get("now")
            partition = obj.get("partition")
            if not _is_number(now):
                raise EnvelopeError("bad_tick", "now must be a number")
            if not 0 <= now <= MAX_TICK_SECONDS:
                raise EnvelopeError("bad_tick", "now must be epoch seconds between 1970 and 9999")
            if not isinstance(partition, int) or isinstance(partition, bool) or partition < 0:
                raise EnvelopeError("bad_tick", "partition must be a non-negative integer")
            return Tick(float(now), partition)
        raise EnvelopeError("unknown_kind", f"kind {str(kind)[:40]!r}")

    @staticmethod
    def decode_identity(obj: Any) -> Link | Moved:
        """Validate a link or moved message (events of a moved message *unchecked*, see
        :meth:`decode_header`). Raises :class:`EnvelopeError`: ``bad_link`` for a malformed
        link, ``bad_envelope`` for a malformed moved message."""
        kind = _kind_of_versioned(obj)
        workspace = obj.get("ws")
        if kind == KIND_LINK:
            link = Link(_link_id(obj, "ws"), _link_id(obj, "from"), _link_id(obj, "to"), 0.0)
            at = obj.get("at")
            if not _is_number(at):
                raise EnvelopeError("bad_link", "at must be a number")
            if link.source == link.target:
                raise EnvelopeError("bad_link", "from and to are the same id")
            return Link(link.workspace, link.source, link.target, float(at))
        if kind == KIND_MOVED:
            key, events, moves = obj.get("key"), obj.get("events"), obj.get("moves")
            if not isinstance(workspace, str) or not workspace:
                raise EnvelopeError("bad_envelope", "ws must be a non-empty string")
            if not isinstance(key, str) or not key:
                raise EnvelopeError("bad_envelope", "key must be a non-empty string")
            if not isinstance(events, list):
                raise EnvelopeError("bad_envelope", "events must be a list")
            if type(moves) is not int or moves < 1:
                raise EnvelopeError("bad_envelope", "moves must be a positive integer")
            accounts = obj.get("accs", [])
            if (type(accounts) is not list or len(accounts) > MAX_MOVED_ACCOUNTS
                    or not all(type(a) is str and 0 < len(a) <= _MAX_LINK_ID_CHARS
                               for a in accounts)):
                raise EnvelopeError("bad_envelope", f"accs must be a list of at most "
                                    f"{MAX_MOVED_ACCOUNTS} account ids")
            return Moved(workspace, key, events, moves, tuple(accounts))
        raise EnvelopeError("unknown_kind", f"kind {str(kind)[:40]!r}")


ENVELOPES = EnvelopeCodec()
"""The codec of the events and by-account topics."""

"""The batch envelope: one Kafka message carrying many events for one key.

Faust spends a fixed 100-200 µs per Kafka message whatever it holds, so the collector and
the resolve agent never write one message per event when several events share a key. Two
message kinds travel on the events and by-account topics::

    {"v": 1, "kind": "events", "ws": workspace, "key": account_or_user, "events": [wire...]}
    {"v": 1, "kind": "tick", "now": epoch_seconds, "partition": n}

Events are :meth:`streams.events.Event.to_wire` dicts. Decoding validates every field's
type, because the events topic is open to direct producers: anything malformed raises
:class:`EnvelopeError` with a stable ``reason`` code that ends up on the dead-letter topic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

import orjson

from streams.events import Event, EventType, Source

ENVELOPE_VERSION = 1
KIND_EVENTS = "events"
KIND_TICK = "tick"

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
    """Events of one workspace that share one Kafka key (an account, a user)."""

    workspace: str
    key: str
    events: list[Event]


@dataclass(frozen=True, slots=True)
class Tick:
    """A clock tick for one partition: event-time ``now`` in epoch seconds."""

    now: float
    partition: int


def encode_envelope(workspace: str, key: str, events: Iterable[Event]) -> bytes:
    return orjson.dumps(
        {
            "v": ENVELOPE_VERSION,
            "kind": KIND_EVENTS,
            "ws": workspace,
            "key": key,
            "events": [event.to_wire() for event in events],
        }
    )


def encode_tick(now: float, partition: int) -> bytes:
    return orjson.dumps(
        {"v": ENVELOPE_VERSION, "kind": KIND_TICK, "now": now, "partition": partition}
    )


def decode_message(raw: bytes | bytearray | memoryview | str | None) -> Envelope | Tick:
    """Parse one Kafka message value. Raises :class:`EnvelopeError` on anything else."""
    if raw is None:
        raise EnvelopeError("empty", "message has no value")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError("not_json", str(exc)[:200]) from None
    return envelope_from_obj(obj)


def is_envelope_obj(obj: Any) -> bool:
    """True when a decoded JSON value claims to be an envelope or tick (has ``v``/``kind``)."""
    return isinstance(obj, dict) and "v" in obj and "kind" in obj


def envelope_from_obj(obj: Any) -> Envelope | Tick:
    """Validate an already-decoded JSON value as an envelope or tick."""
    if not isinstance(obj, dict):
        raise EnvelopeError("not_an_object", f"expected a JSON object, got {type(obj).__name__}")
    version = obj.get("v")
    if version != ENVELOPE_VERSION or isinstance(version, bool):
        raise EnvelopeError("unsupported_version", f"envelope version {version!r}")
    kind = obj.get("kind")
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
        return Envelope(workspace, key, [event_from_wire(w) for w in events])
    if kind == KIND_TICK:
        now = obj.get("now")
        partition = obj.get("partition")
        if not _is_number(now):
            raise EnvelopeError("bad_tick", "now must be a number")
        if not isinstance(partition, int) or isinstance(partition, bool) or partition < 0:
            raise EnvelopeError("bad_tick", "partition must be a non-negative integer")
        return Tick(float(now), partition)
    raise EnvelopeError("unknown_kind", f"kind {kind!r}")


def event_from_wire(wire: Any) -> Event:
    """Strictly typed inverse of :meth:`Event.to_wire` (``EnvelopeError`` on bad input)."""
    if not isinstance(wire, dict):
        raise EnvelopeError("bad_event", "event must be a JSON object")
    ws = wire.get("ws")
    message_id = wire.get("id")
    raw_type = wire.get("t")
    raw_source = wire.get("src")
    type_ = _EVENT_TYPES.get(raw_type) if isinstance(raw_type, str) else None
    source = _SOURCES.get(raw_source) if isinstance(raw_source, str) else None
    ts = wire.get("ts")
    rx = wire.get("rx")
    if not isinstance(ws, str) or not ws:
        raise EnvelopeError("bad_event", "ws must be a non-empty string")
    if not isinstance(message_id, str) or not message_id:
        raise EnvelopeError("bad_event", "id must be a non-empty string")
    if type_ is None:
        raise EnvelopeError("bad_event", f"unknown event type {wire.get('t')!r}")
    if source is None:
        raise EnvelopeError("bad_event", f"unknown source {wire.get('src')!r}")
    if not _is_number(ts) or not _is_number(rx):
        raise EnvelopeError("bad_event", "ts and rx must be finite numbers")
    name = _optional_str(wire, "n")
    user_id = _optional_str(wire, "u")
    anonymous_id = _optional_str(wire, "a")
    account_id = _optional_str(wire, "acc")
    properties = _optional_dict(wire, "p")
    traits = _optional_dict(wire, "tr")
    return Event(
        workspace=ws,
        message_id=message_id,
        type=type_,
        timestamp=float(ts),
        received_at=float(rx),
        source=source,
        name=name,
        user_id=user_id,
        anonymous_id=anonymous_id,
        account_id=account_id,
        properties=properties,
        traits=traits,
    )


def _is_number(value: Any) -> TypeGuard[int | float]:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _optional_str(wire: Mapping[str, Any], field: str) -> str | None:
    value = wire.get(field)
    if value is None or isinstance(value, str):
        return value
    raise EnvelopeError("bad_event", f"{field} must be a string")


def _optional_dict(wire: Mapping[str, Any], field: str) -> dict[str, Any]:
    value = wire.get(field)
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise EnvelopeError("bad_event", f"{field} must be an object")


def kafka_key(workspace: str, key: str) -> bytes:
    """The Kafka message key for ``key`` (a user, anonymous or account id) of a workspace.

    Every producer of the events and by-account topics uses this one function, so that
    all messages of one user (or account) land in one partition, next to its table rows.
    """
    return f"{workspace}|{key}".encode()

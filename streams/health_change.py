"""Health-change wire codec: ``telltale.health-change/1`` JSON (orjson) and its schema,
and :class:`HealthChangeRecord`, the typed record consumers read.

The record is built by :meth:`scoring.changes.HealthChange.to_dict`; the JSON Schema
(draft 2020-12) lives next to this module in ``schemas/health-change.v1.json``. A
consumer validates the wire dict against the schema once, then decodes it once with
:meth:`HealthChangeRecord.from_wire`; the original dict stays with it (``wire``) for
what passes the JSON on unchanged (webhooks, the read model).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import orjson

from scoring.labels import Band, ChangeReason, ForecastStage, Lifecycle, SignalSeverity

SCHEMA_PATH = Path(__file__).with_name("schemas") / "health-change.v1.json"
SCHEMA_ID = "telltale.health-change/1"


class _HasToDict(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


class HealthChangeError(ValueError):
    """Raised for bytes that are not a health-change record."""


def encode_change(change: _HasToDict | dict[str, Any]) -> bytes:
    """Serialise a HealthChange (or its wire dict) to JSON bytes."""
    record = change if isinstance(change, dict) else change.to_dict()
    return orjson.dumps(record)


def decode_change(raw: bytes) -> dict[str, Any]:
    """Parse JSON bytes into the wire dict; raises HealthChangeError on garbage."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HealthChangeError(f"not JSON: {exc}") from exc
    if not isinstance(record, dict) or record.get("schema") != SCHEMA_ID:
        raise HealthChangeError(f"not a {SCHEMA_ID} record")
    return record


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema document (draft 2020-12)."""
    loaded: dict[str, Any] = orjson.loads(SCHEMA_PATH.read_bytes())
    return loaded


def validate(record: dict[str, Any]) -> None:
    """Validate a wire dict against the schema (needs the ``jsonschema`` package);
    raises ``jsonschema.ValidationError`` with the first problem."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    validator.validate(record)


@dataclass(frozen=True, slots=True)
class Standing:
    """An account's score (0-100), band and stages at one change."""

    score: int
    band: Band
    forecast: ForecastStage | None
    lifecycle: Lifecycle

    @classmethod
    def from_wire(cls, record: Mapping[str, Any]) -> Standing:
        forecast = record.get("forecast")
        return cls(int(record["score"]), Band(record["band"]),
                   None if forecast is None else ForecastStage(forecast),
                   Lifecycle(record["lifecycle"]))


@dataclass(frozen=True, slots=True)
class SignalRecord:
    """A signal episode as the change reports it (``type`` as ``scoring.signals`` names
    it; ``since`` ISO 8601)."""

    type: str
    key: str
    subject: str | None
    severity: SignalSeverity
    since: str
    text: str

    @classmethod
    def from_wire(cls, record: Mapping[str, Any]) -> SignalRecord:
        return cls(str(record["type"]), str(record["key"]), record.get("subject"),
                   SignalSeverity(record["severity"]), str(record["since"]),
                   str(record["text"]))


@dataclass(frozen=True, slots=True)
class HealthChangeRecord:
    """One health change as a consumer reads it, decoded once from its validated wire dict.

    ``arr`` in the account's currency per year; ``day`` an epoch day; ``alert`` whether
    people are told (records from before the flag are alerts).
    """

    id: str
    workspace: str
    account_id: str
    account_name: str | None
    day: int
    reasons: tuple[ChangeReason, ...]
    previous: Standing | None
    current: Standing
    delta: int
    signals_started: tuple[SignalRecord, ...]
    signals_ended: tuple[SignalRecord, ...]
    owner: str | None
    segment: str | None
    arr: float | None
    alert: bool
    wire: Mapping[str, Any]

    @classmethod
    def from_wire(cls, record: Mapping[str, Any]) -> HealthChangeRecord:
        """The typed record of a wire dict that passed :func:`validate` (or the notifier's
        validator); raises ValueError or KeyError on one that did not."""
        previous = record.get("previous")
        arr = record.get("arr")
        return cls(
            id=str(record["id"]), workspace=str(record["workspace"]),
            account_id=str(record["account_id"]), account_name=record.get("account_name"),
            day=int(record["day"]),
            reasons=tuple(ChangeReason(r) for r in record.get("reasons") or ()),
            previous=None if previous is None else Standing.from_wire(previous),
            current=Standing.from_wire(record["current"]), delta=int(record["delta"]),
            signals_started=tuple(SignalRecord.from_wire(s)
                                  for s in record.get("signals_started") or ()),
            signals_ended=tuple(SignalRecord.from_wire(s)
                                for s in record.get("signals_ended") or ()),
            owner=record.get("owner"), segment=record.get("segment"),
            arr=None if arr is None else float(arr),
            alert=record.get("alert", True) is not False, wire=record,
        )

"""Health changes on the wire (``telltale.health-change/1``, JSON) and as consumers read
them (:class:`HealthChangeRecord`), with their one codec, :data:`HEALTH_CHANGES`.

The wire dict is built by :meth:`scoring.changes.HealthChange.to_dict`; the JSON Schema
(draft 2020-12) lives next to this module in ``schemas/health-change.v1.json``. A
consumer decodes a message once at its edge with :meth:`HealthChangeCodec.decode`: size,
JSON, re-encodability and the schema are checked, then the typed record is built, so
every reader after it reads attributes and enums. The original dict stays with the record
(``wire``) for what passes the JSON on unchanged (webhooks, the outbox).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache, cached_property
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import jsonschema_rs
import orjson

from scoring.attention import Attention
from scoring.labels import Band, ChangeReason, ForecastStage, Lifecycle, SignalSeverity
from streams.actions import check_id

SCHEMA_PATH = Path(__file__).with_name("schemas") / "health-change.v1.json"
SCHEMA_ID = "telltale.health-change/1"

MAX_CHANGE_BYTES = 256 * 1024
"""Largest health-change message accepted (bytes); real ones are a few kilobytes."""

MAX_ATTENTION_BYTES = 64 * 1024
"""Largest ``attention`` field accepted on a change (its JSON, bytes)."""

_DETAIL_CHARS = 200  # of a refusal's detail and path: both may quote event data

# Value -> member by dict: calling an enum costs about a microsecond, and a change with 50
# users names a band 50 times (a KeyError for an unknown value, like the enum's ValueError).
_BANDS = {band.value: band for band in Band}
_SEVERITIES = {severity.value: severity for severity in SignalSeverity}
_REASONS = {reason.value: reason for reason in ChangeReason}


class _HasToDict(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


class HealthChangeError(ValueError):
    """A message that is not a health change: ``code`` is a stable word (``too_large``,
    ``not_json``, ``too_deep``, ``bad_health_change``), ``path`` the JSON pointer of the
    problem (empty for the whole message)."""

    def __init__(self, code: str, detail: str, path: str = "") -> None:
        super().__init__(f"{code} at {path or '/'}: {detail}")
        self.code = code
        self.path = path


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema document (draft 2020-12)."""
    loaded: dict[str, Any] = orjson.loads(SCHEMA_PATH.read_bytes())
    return loaded


def validate(record: dict[str, Any]) -> None:
    """Validate a wire dict against the schema with the ``jsonschema`` package (its errors
    read better in tests and tools); raises ``jsonschema.ValidationError``."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    validator.validate(record)


@dataclass(frozen=True, slots=True)
class Standing:
    """An account's score (0-100), band and stages at one change; ``components`` (name
    -> breakdown, as the wire has it) only on the current standing."""

    score: int
    band: Band
    forecast: ForecastStage | None
    lifecycle: Lifecycle
    components: Mapping[str, Mapping[str, Any]] | None = None

    @classmethod
    def from_wire(cls, record: Mapping[str, Any]) -> Standing:
        forecast = record.get("forecast")
        components = record.get("components")
        return cls(int(record["score"]), _BANDS[record["band"]],
                   None if forecast is None else ForecastStage(forecast),
                   Lifecycle(record["lifecycle"]),
                   components)

    def to_wire(self) -> dict[str, Any]:
        """The wire form (without components, as ``previous`` carries it)."""
        return {"score": self.score, "band": self.band.value,
                "forecast": None if self.forecast is None else self.forecast.value,
                "lifecycle": self.lifecycle.value}


class SignalRecord(NamedTuple):
    """A signal episode as the change reports it (``type`` as ``scoring.signals`` names
    it; ``since`` ISO 8601; ``detail`` the numbers behind ``text``). Signals, drivers and
    users are named tuples: a change carries up to 50 users, and a tuple is built in a
    fraction of a frozen dataclass's time."""

    type: str
    key: str
    subject: str | None
    severity: SignalSeverity
    since: str
    text: str
    detail: Mapping[str, Any]

    @classmethod
    def from_wire(cls, record: Mapping[str, Any]) -> SignalRecord:
        return cls(str(record["type"]), str(record["key"]), record.get("subject"),
                   _SEVERITIES[record["severity"]], str(record["since"]),
                   str(record["text"]), record.get("detail") or {})

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, "key": self.key, "subject": self.subject,
                "severity": self.severity.value, "since": self.since,
                "detail": self.detail, "text": self.text}


class DriverRecord(NamedTuple):
    """One component's contribution to the change (points) and its sentence."""

    component: str
    delta: int
    text: str

    @classmethod
    def from_wire(cls, record: Mapping[str, Any]) -> DriverRecord:
        return cls(str(record["component"]), int(record["delta"]), str(record["text"]))

    def to_wire(self) -> dict[str, Any]:
        return {"component": self.component, "delta": self.delta, "text": self.text}


class UserRecord(NamedTuple):
    """One of the account's users at the change (score 0-100, ``last_seen`` ISO 8601)."""

    user_id: str
    name: str | None
    email: str | None
    score: int
    band: Band
    power_user: bool
    last_seen: str | None

    @classmethod
    def from_wire(cls, record: Mapping[str, Any]) -> UserRecord:
        return cls(str(record["user_id"]), record.get("name"), record.get("email"),
                   int(record["score"]), _BANDS[record["band"]], bool(record["power_user"]),
                   record.get("last_seen"))

    def to_wire(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "name": self.name, "email": self.email,
                "score": self.score, "band": self.band.value, "power_user": self.power_user,
                "last_seen": self.last_seen}


def _attention(raw: Any) -> Attention | None:
    """The change's ``attention`` (None when the change predates it), with its reason keys,
    subjects and playbook names checked as ids (acknowledgements carry the keys)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValueError("attention must be an object")
    try:
        if len(orjson.dumps(raw)) > MAX_ATTENTION_BYTES:
            raise ValueError(f"attention is larger than {MAX_ATTENTION_BYTES} bytes")
        attention = Attention.from_dict(raw)
        for reason in (*attention.reasons, *attention.expansion):
            check_id(reason.key, "attention reason key")
            if reason.subject is not None:
                check_id(reason.subject, "attention reason subject")
        for name in attention.playbooks:
            check_id(name, "attention playbook")
    except (ValueError, TypeError, orjson.JSONEncodeError) as exc:  # ActionError too
        raise ValueError(f"bad attention: {exc}") from exc
    return attention


def _epoch_seconds(iso: str) -> float:
    """Epoch seconds of an ISO 8601 time (the schema checks its shape, not its values:
    month 13 passes the pattern); ValueError when it is no time."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _signals(raw: Any) -> tuple[SignalRecord, ...]:
    return tuple(SignalRecord.from_wire(s) for s in raw or ())


@dataclass(frozen=True, slots=True)
class HealthChangeRecord:
    """One health change as a consumer reads it, decoded once from its validated wire dict.

    ``event_time`` ISO 8601 and ``time`` the same in epoch seconds; ``day`` an epoch
    day; ``delta`` and ``change_7d`` points; ``arr`` in the account's currency per
    year; ``renewal_date`` ISO date;
    ``external_ids`` CRM record ids by name (``hubspot_company_id`` ...); ``alert``
    whether people are told (records from before the flag are alerts); ``attention``
    None on records from before it.
    """

    id: str
    workspace: str
    account_id: str
    account_name: str | None
    event_time: str
    time: float
    day: int
    reasons: tuple[ChangeReason, ...]
    previous: Standing | None
    current: Standing
    delta: int
    change_7d: int
    signals_started: tuple[SignalRecord, ...]
    signals_ended: tuple[SignalRecord, ...]
    active_signals: tuple[SignalRecord, ...]
    explanation: str
    drivers: tuple[DriverRecord, ...]
    # The account's commercial facts, then who looks after it.
    segment: str | None
    arr: float | None
    renewal_date: str | None
    days_to_renewal: int | None
    external_ids: Mapping[str, str]
    owner: str | None
    owner_email: str | None
    owner_slack_id: str | None
    users: tuple[UserRecord, ...]
    config_version: str
    attention: Attention | None
    alert: bool
    wire: Mapping[str, Any]

    @property
    def components(self) -> Mapping[str, Mapping[str, Any]]:
        """The current score's breakdown by component."""
        return self.current.components or {}

    @classmethod
    def from_wire(cls, record: Mapping[str, Any]) -> HealthChangeRecord:
        """The typed record of a wire dict that passed the schema; raises
        HealthChangeError (``bad_health_change``) naming the field that did not decode."""
        try:
            return cls._decode(record)
        except (KeyError, TypeError, ValueError) as exc:
            detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            raise HealthChangeError("bad_health_change", detail[:_DETAIL_CHARS]) from exc

    @classmethod
    def _decode(cls, record: Mapping[str, Any]) -> HealthChangeRecord:
        previous = record.get("previous")
        event_time = str(record["event_time"])
        arr = record.get("arr")
        days_to_renewal = record.get("days_to_renewal")
        return cls(
            id=str(record["id"]), workspace=str(record["workspace"]),
            account_id=str(record["account_id"]), account_name=record.get("account_name"),
            event_time=event_time, time=_epoch_seconds(event_time), day=int(record["day"]),
            reasons=tuple(_REASONS[r] for r in record.get("reasons") or ()),
            previous=None if previous is None else Standing.from_wire(previous),
            current=Standing.from_wire(record["current"]), delta=int(record["delta"]),
            change_7d=int(record.get("change_7d") or 0),
            signals_started=_signals(record.get("signals_started")),
            signals_ended=_signals(record.get("signals_ended")),
            active_signals=_signals(record.get("active_signals")),
            explanation=str(record.get("explanation") or ""),
            drivers=tuple(DriverRecord.from_wire(d) for d in record.get("drivers") or ()),
            owner=record.get("owner"), owner_email=record.get("owner_email"),
            owner_slack_id=record.get("owner_slack_id"), segment=record.get("segment"),
            arr=None if arr is None else float(arr),
            renewal_date=record.get("renewal_date"),
            days_to_renewal=None if days_to_renewal is None else int(days_to_renewal),
            external_ids={str(k): str(v)
                          for k, v in (record.get("external_ids") or {}).items()},
            users=tuple(UserRecord.from_wire(u) for u in record.get("users") or ()),
            config_version=str(record["config_version"]),
            attention=_attention(record.get("attention")),
            alert=record.get("alert", True) is not False, wire=record,
        )


class HealthChangeCodec:
    """The one codec of the health-changes topic: :meth:`encode` for the score agent,
    :meth:`decode` for every consumer (the notifier, the rebuild, tools).

    Validation uses jsonschema_rs, compiled once on first use: about 20 µs per typical
    change instead of 2-3 ms with ``jsonschema``, which was a third of the notifier's whole
    cost per change. ``schema_document`` replaces the shipped schema (tests of forged
    changes)."""

    def __init__(self, schema_document: Mapping[str, Any] | None = None,
                 max_bytes: int = MAX_CHANGE_BYTES) -> None:
        self._schema = schema_document
        self.max_bytes = max_bytes

    @cached_property
    def _validator(self) -> jsonschema_rs.Draft202012Validator:
        document = schema() if self._schema is None else self._schema
        return jsonschema_rs.Draft202012Validator(dict(document))

    def encode(self, change: HealthChangeRecord | _HasToDict | Mapping[str, Any]) -> bytes:
        """JSON bytes of a HealthChange, a record (its original wire dict) or a wire dict."""
        if isinstance(change, HealthChangeRecord):
            return orjson.dumps(change.wire)
        record = change if isinstance(change, Mapping) else change.to_dict()
        return orjson.dumps(record)

    def decode(self, raw: bytes | bytearray | Mapping[str, Any]) -> HealthChangeRecord:
        """The record in ``raw`` (message bytes, or a dict read back from elsewhere),
        checked as if anyone could have written it; raises HealthChangeError."""
        return HealthChangeRecord.from_wire(self.check(raw))

    def check(self, raw: bytes | bytearray | Mapping[str, Any]) -> dict[str, Any]:
        """The wire dict in ``raw`` after every check of :meth:`decode` but the typed
        record's own (enums, attention ids)."""
        if isinstance(raw, bytes | bytearray):
            if len(raw) > self.max_bytes:
                raise HealthChangeError("too_large",
                                        f"{len(raw)} bytes, more than {self.max_bytes}")
            try:
                change = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise HealthChangeError("not_json", str(exc)[:_DETAIL_CHARS]) from exc
        else:
            change = dict(raw) if isinstance(raw, Mapping) else raw
        if not isinstance(change, dict):
            raise HealthChangeError("bad_health_change",
                                    f"a JSON {type(change).__name__}, not an object")
        try:
            # orjson reads 1,024 levels but writes only 255, and the read model and
            # webhooks write the change again: refuse here what could not be passed on.
            orjson.dumps(change)
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise HealthChangeError("too_deep", str(exc)[:_DETAIL_CHARS]) from exc
        if self._validator.is_valid(change):
            return change
        error = next(iter(self._validator.iter_errors(change)), None)
        if error is not None:
            # Object keys in the path are event data too (component names): bounded.
            path = "".join(f"/{part}" for part in error.instance_path)[:_DETAIL_CHARS]
            raise HealthChangeError("bad_health_change", error.message[:_DETAIL_CHARS], path)
        return change


HEALTH_CHANGES = HealthChangeCodec()
"""The codec of the health-changes topic, with the shipped schema."""

"""What people do about an account, as events on ``<prefix>.actions`` (keyed by account).

One JSON object per action, the audit log of the worklist::

    {"schema": "telltale.action/1", "id": "9f0c...", "workspace": "demo",
     "account_id": "acme", "type": "snooze", "actor": "riley@vendor.example",
     "at": 1780000000.0, "until": "2026-06-05"}

Per type: ``acknowledge`` carries the ``reasons`` acknowledged (``[{"key", "severity"}]``,
so that replaying the log later acknowledges what the person saw, not what is current);
``snooze`` an ISO ``until`` date; ``assign`` an ``assignee`` (null gives the account
back to its owner); ``note`` a ``text`` of at most :data:`MAX_TEXT_CHARS`;
``step_done`` a ``playbook`` name and a 0-based ``step``.

Anyone who can write to the topic can write anything, so :data:`ACTIONS` checks
every field (ids as in ``state/keys.py``, no control characters, bounded lengths) and
refuses fields that do not belong to the type.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from typing import Any

import orjson

from scoring import worklist
from scoring.attention import Severity
from state.aggregates import epoch_day
from state.keys import KeyPartError, part
from streams.envelope import kafka_key

ACTION_SCHEMA = "telltale.action/1"
MAX_ACTION_BYTES = 64 * 1024
MAX_ID_CHARS = 256
MAX_TEXT_CHARS = 2_000
MAX_REASONS = 100
MAX_STEP = 99
LATEST_AT = 1e11
"""Latest plausible action time (epoch seconds, year 5138): anything later is garbage."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")  # \t and \n kept
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class ActionType(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    SNOOZE = "snooze"
    ASSIGN = "assign"
    NOTE = "note"
    STEP_DONE = "step_done"


COMMON_FIELDS = frozenset({"schema", "id", "workspace", "account_id", "type", "actor", "at"})
TYPE_FIELDS: dict[ActionType, frozenset[str]] = {
    ActionType.ACKNOWLEDGE: frozenset({"reasons"}),
    ActionType.SNOOZE: frozenset({"until"}),
    ActionType.ASSIGN: frozenset({"assignee"}),
    ActionType.NOTE: frozenset({"text"}),
    ActionType.STEP_DONE: frozenset({"playbook", "step"}),
}


_EPOCH = date(1970, 1, 1)


class ActionError(ValueError):
    """An action that cannot be accepted; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class Action:
    """One thing a person did about an account at ``at`` (epoch seconds)."""

    id: str
    workspace: str
    account_id: str
    type: ActionType
    actor: str
    at: float
    until: date | None = None
    assignee: str | None = None
    text: str | None = None
    playbook: str | None = None
    step: int | None = None
    reasons: Mapping[str, Severity] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema": ACTION_SCHEMA, "id": self.id, "workspace": self.workspace,
            "account_id": self.account_id, "type": self.type.value, "actor": self.actor,
            "at": self.at,
        }
        if self.type is ActionType.ACKNOWLEDGE:
            out["reasons"] = [{"key": k, "severity": s.value} for k, s in self.reasons.items()]
        elif self.type is ActionType.SNOOZE:
            out["until"] = None if self.until is None else self.until.isoformat()
        elif self.type is ActionType.ASSIGN:
            out["assignee"] = self.assignee
        elif self.type is ActionType.NOTE:
            out["text"] = self.text
        else:
            out["playbook"], out["step"] = self.playbook, self.step
        return out


class ActionCodec:
    """The one codec of the actions topic: the API encodes with :meth:`encode` (keyed by
    :meth:`key`), the actions consumer and the read model decode with :meth:`decode`."""

    def encode(self, action: Action) -> bytes:
        """The action on the wire; checked as strictly as what is read back."""
        raw = orjson.dumps(action.to_dict())
        self.decode(raw)
        return raw

    @staticmethod
    def key(action: Action) -> bytes:
        """Kafka key: by account, so one account's actions stay in order."""
        return kafka_key(action.workspace, action.account_id)

    @staticmethod
    def decode(raw: bytes | bytearray | str | Mapping[str, Any]) -> Action:
        """An action from the wire (or its parsed object). Raises :class:`ActionError`."""
        if isinstance(raw, Mapping):
            obj: Any = raw
        else:
            if len(raw) > MAX_ACTION_BYTES:
                raise ActionError(f"action is larger than {MAX_ACTION_BYTES} bytes")
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise ActionError(f"action is not JSON: {exc}") from None
        if not isinstance(obj, Mapping):
            raise ActionError("action must be a JSON object")
        if obj.get("schema") != ACTION_SCHEMA:
            raise ActionError(f"schema must be {ACTION_SCHEMA!r}")
        try:
            kind = ActionType(str(obj.get("type")))
        except ValueError:
            raise ActionError(
                f"type must be one of {', '.join(t.value for t in ActionType)}") from None
        allowed = COMMON_FIELDS | TYPE_FIELDS[kind]
        extra = sorted(str(k) for k in obj if k not in allowed)
        if extra:
            raise ActionError(f"field {extra[0]!r} does not belong to a {kind.value} action")
        missing = sorted(allowed - set(obj))
        if missing:
            raise ActionError(f"a {kind.value} action needs {missing[0]!r}")
        at = obj["at"]
        if (not isinstance(at, int | float) or isinstance(at, bool) or not math.isfinite(at)
                or not 0 <= at <= LATEST_AT):
            raise ActionError("at must be epoch seconds")
        action = Action(
            id=check_id(obj["id"], "id"),
            workspace=check_id(obj["workspace"], "workspace"),
            account_id=check_id(obj["account_id"], "account_id"),
            type=kind,
            actor=check_id(obj["actor"], "actor"),
            at=float(at),
        )
        if kind is ActionType.ACKNOWLEDGE:
            return _with(action, reasons=_reasons(obj["reasons"]))
        if kind is ActionType.SNOOZE:
            return _with(action, until=check_date(obj["until"], "until"))
        if kind is ActionType.ASSIGN:
            assignee = obj["assignee"]
            return _with(action, assignee=None if assignee is None
                         else check_id(assignee, "assignee"))
        if kind is ActionType.NOTE:
            return _with(action, text=check_text(obj["text"], "text"))
        step = obj["step"]
        if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step <= MAX_STEP:
            raise ActionError(f"step must be an integer from 0 to {MAX_STEP}")
        return _with(action, playbook=check_id(obj["playbook"], "playbook"), step=step)


ACTIONS = ActionCodec()
"""The codec of the actions topic."""


def _with(action: Action, **values: Any) -> Action:
    return replace(action, **values)


def check_id(value: Any, name: str) -> str:
    """An id fit for keys: a non-empty string of at most :data:`MAX_ID_CHARS` characters
    without control characters (so without the key separator either)."""
    if not isinstance(value, str) or not value.strip():
        raise ActionError(f"{name} must be a non-empty string")
    if len(value) > MAX_ID_CHARS:
        raise ActionError(f"{name} is longer than {MAX_ID_CHARS} characters")
    if _CONTROL.search(value) or value != value.strip():
        raise ActionError(f"{name} holds control characters or surrounding spaces")
    try:
        part(value)
    except KeyPartError as exc:
        raise ActionError(f"{name}: {exc}") from None
    return value


def check_text(value: Any, name: str) -> str:
    """Free text: 1 to :data:`MAX_TEXT_CHARS` characters, tabs and newlines allowed."""
    if not isinstance(value, str) or not value.strip():
        raise ActionError(f"{name} must be a non-empty string")
    if len(value) > MAX_TEXT_CHARS:
        raise ActionError(f"{name} is longer than {MAX_TEXT_CHARS} characters")
    if _TEXT_CONTROL.search(value):
        raise ActionError(f"{name} holds control characters")
    return value


def check_date(value: Any, name: str) -> date:
    """A calendar date written ``YYYY-MM-DD``."""
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ActionError(f"{name} must be a date written YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ActionError(f"{name} is not a calendar date") from None


def _reasons(value: Any) -> dict[str, Severity]:
    if not isinstance(value, list) or len(value) > MAX_REASONS:
        raise ActionError(f"reasons must be a list of at most {MAX_REASONS}")
    out: dict[str, Severity] = {}
    for item in value:
        if not isinstance(item, Mapping) or set(item) != {"key", "severity"}:
            raise ActionError("each reason must be {\"key\", \"severity\"}")
        try:
            severity = Severity(item["severity"])
        except ValueError:
            raise ActionError("a reason's severity is not a severity") from None
        out[check_id(item["key"], "reason key")] = severity
    return out


def epoch_day_of_date(day: date) -> int:
    return (day - _EPOCH).days


def handling_of(actions: Iterable[Action]) -> worklist.Handling:
    """What the actions did to the account, applied in time order (ties by id, so any
    replica folds the same log to the same result)."""
    handling = worklist.Handling()
    for action in sorted(actions, key=lambda a: (a.at, a.id)):
        if action.type is ActionType.ACKNOWLEDGE:
            handling = worklist.acknowledge(handling, action.reasons)
        elif action.type is ActionType.SNOOZE and action.until is not None:
            handling = worklist.snooze(handling, epoch_day_of_date(action.until))
        elif action.type is ActionType.ASSIGN:
            handling = worklist.assign(handling, action.assignee)
        elif (action.type is ActionType.STEP_DONE and action.playbook is not None
              and action.step is not None):
            handling = worklist.mark_step_done(handling, action.playbook, action.step,
                                               epoch_day(action.at))
    return handling

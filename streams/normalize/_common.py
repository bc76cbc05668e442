"""What every normaliser shares: the outcome types, reason codes, time parsing, ids and
how properties and traits are trimmed to what scoring can use."""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from streams.events import Event, Source

MAX_MESSAGE_BYTES = 32 * 1024
"""Largest accepted message, as the Segment HTTP API documents (32 KB)."""
MAX_MESSAGE_ID_CHARS = 100
MAX_ID_CHARS = 256
"""Longest user, anonymous or account id kept."""
MAX_NAME_CHARS = 256
MAX_FIELDS = 64
"""Most properties (or traits) kept per event; the rest are dropped."""
MAX_KEY_CHARS = 128
MAX_STRING_VALUE_CHARS = 1024
MAX_DEPTH = 255
"""Deepest nesting of a message that is accepted: what orjson can write back (its parser
reads up to 1,024 levels, its serialiser only 255)."""

# C0 and C1 controls (category Cc, which holds the 0x1F key separator, NUL and line
# breaks), the line and paragraph separators, bidirectional overrides and marks (Cf
# characters that make an id display as another one) and lone surrogates (which cannot
# be encoded). An id with any of them is an attack or a bug, never a name.
_FORBIDDEN_IN_ID = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
    "\ud800-\udfff]")

# Event times outside these bounds are client bugs (epoch 0, year 3000), not history.
EARLIEST_EVENT_TIME = 946_684_800.0  # 2000-01-01
LATEST_EVENT_TIME = 4_102_444_800.0  # 2100-01-01
_INT64 = 2**63
_T = TypeVar("_T")


class Reason:
    """Stable reason codes carried by rejections and dead-letter records."""

    NOT_AN_OBJECT = "not_an_object"
    TOO_DEEP = "too_deep"
    MISSING_TYPE = "missing_type"
    UNKNOWN_TYPE = "unknown_type"
    MISSING_IDENTITY = "missing_identity"
    BAD_IDENTITY = "bad_identity"
    MISSING_GROUP_ID = "missing_group_id"
    MISSING_EVENT_NAME = "missing_event_name"
    BAD_MESSAGE_ID = "bad_message_id"
    BAD_TIMESTAMP = "bad_timestamp"
    MESSAGE_TOO_LARGE = "message_too_large"
    # Raised outside the normalisers, by the resolve stage and the envelope codec:
    EMPTY = "empty"
    NOT_JSON = "not_json"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_KIND = "unknown_kind"
    BAD_ENVELOPE = "bad_envelope"
    BAD_EVENT = "bad_event"
    BAD_TICK = "bad_tick"
    BAD_LINK = "bad_link"
    UNKNOWN_WORKSPACE = "unknown_workspace"
    UNATTRIBUTED = "unattributed"
    INTERNAL_ERROR = "internal_error"


REASONS: frozenset[str] = frozenset(
    value for name, value in vars(Reason).items() if not name.startswith("_")
)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one message could not become an :class:`~streams.events.Event`."""

    reason: str
    detail: str = ""


@dataclass(slots=True)
class NormalizeContext:
    """What a normaliser knows besides the payload (not frozen: the importer builds one
    per message, and a frozen one takes three times as long to build).

    ``received_at``: epoch seconds the collector (or Kafka) received the message.
    ``sent_at``: the batch-level ``sentAt`` in epoch seconds when the client sent one;
    a message-level ``sentAt`` wins over it. ``check_size``: measure each message's depth
    and size first (:func:`check_measure`); the collector turns it off when the whole
    body is too small and too shallow for any message in it to fail.
    """

    workspace: str
    received_at: float
    source: Source
    sent_at: float | None = None
    check_size: bool = True


class Invalid(Exception):
    """Internal: a field that makes the whole message unacceptable."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    def rejection(self) -> Rejection:
        return Rejection(self.reason, self.detail)


def rejecting(parse: Callable[[Any, NormalizeContext], Event]
              ) -> Callable[[Any, NormalizeContext], Event | Rejection]:
    """Make a normaliser total: the :class:`Invalid` ``parse`` raises becomes the
    :class:`Rejection` it returns."""

    @functools.wraps(parse)
    def normalize(payload: Any, ctx: NormalizeContext) -> Event | Rejection:
        try:
            return parse(payload, ctx)
        except Invalid as exc:
            return exc.rejection()

    return normalize


def parse_time(value: Any, field: str) -> float | None:
    """ISO-8601 string (``Z`` or offset; naive means UTC) or epoch seconds/milliseconds.

    ``None`` when absent; raises :class:`Invalid` (``bad_timestamp``) when unreadable or
    outside 2000-2100.
    """
    if value is None:
        return None
    seconds: float
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise Invalid(Reason.BAD_TIMESTAMP, f"{field} is not an ISO-8601 time") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        seconds = parsed.timestamp()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
        if seconds > 1e11:  # epoch milliseconds
            seconds /= 1000.0
    else:
        raise Invalid(Reason.BAD_TIMESTAMP, f"{field} must be a string or a number")
    return in_event_range(seconds, field)


def in_event_range(seconds: float, field: str) -> float:
    """``seconds`` (epoch) when it lies in 2000-2100; raises ``bad_timestamp`` otherwise."""
    if not math.isfinite(seconds) or not EARLIEST_EVENT_TIME <= seconds <= LATEST_EVENT_TIME:
        raise Invalid(Reason.BAD_TIMESTAMP, f"{field} is outside 2000-2100")
    return seconds


def parse_time_lenient(value: Any) -> float | None:
    """Like :func:`parse_time` but ``None`` instead of an error (for ``sentAt``)."""
    return _or_none(parse_time, value, "sentAt")


def _or_none(parse: Callable[[Any, str], _T], value: Any, field: str) -> _T | None:
    """``parse(value, field)``, or ``None`` where it finds the value invalid."""
    try:
        return parse(value, field)
    except Invalid:
        return None


def skew_corrected(original: float | None, sent_at: float | None, received_at: float) -> float:
    """``receivedAt - (sentAt - originalTimestamp)``, as the Segment spec corrects clocks.

    Without ``sentAt`` the client's own time is trusted; without any time, receipt time.
    The corrected time is held to the same 2000-2100 bounds as the raw ones (raises
    ``bad_timestamp``): a ``sentAt`` decades away from ``originalTimestamp`` would
    otherwise move a partition's event-time clock by decades.
    """
    if original is None:
        return received_at
    if sent_at is None:
        return original
    return in_event_range(received_at - (sent_at - original), "timestamp after clock-skew "
                          "correction")


def id_problem(text: str) -> str | None:
    """Why ``text`` cannot be an id (user, anonymous, account or workspace), or ``None``.

    The one definition shared by the normalisers and the state keys (:mod:`state.keys`),
    so that whatever the collector accepts every later stage can store, and an id that
    reaches a later stage some other way is refused there for the same reasons.
    """
    if not text:
        return "is empty"
    if len(text) > MAX_ID_CHARS:
        return f"is longer than {MAX_ID_CHARS} characters"
    if _FORBIDDEN_IN_ID.search(text) is not None:
        return "contains a control, separator or bidirectional character"
    return None


def identity(value: Any, field: str) -> str | None:
    """A user/anonymous/group id: strings and numbers (as text) are ids; null and ''
    mean absent; surrounding spaces are trimmed. Raises ``bad_identity`` for anything
    :func:`id_problem` refuses."""
    if value is None:
        return None
    if isinstance(value, str):
        # Checked before trimming: str.strip() also removes 0x1C-0x1F and line breaks.
        if _FORBIDDEN_IN_ID.search(value) is not None:
            raise Invalid(Reason.BAD_IDENTITY,
                          f"{field} contains a control, separator or bidirectional character")
        text = value.strip()
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, float) and math.isfinite(value):
        text = str(int(value)) if value.is_integer() else repr(value)
    else:
        raise Invalid(Reason.BAD_IDENTITY, f"{field} must be a string or a number")
    if not text:
        return None
    problem = id_problem(text)
    if problem is not None:
        raise Invalid(Reason.BAD_IDENTITY, f"{field} {problem}")
    return text


def identity_lenient(value: Any) -> str | None:
    """Like :func:`identity` but ``None`` instead of an error."""
    return _or_none(identity, value, "")


def message_id(value: Any, payload: dict[str, Any], field: str) -> str:
    """The client's message id (any string up to 100 characters).

    A message without one gets a digest of its content, so an identical resend by a
    direct producer is still recognised as a duplicate.
    """
    if value is None:
        return content_id(payload)
    if not isinstance(value, str) or not value:
        raise Invalid(Reason.BAD_MESSAGE_ID, f"{field} must be a non-empty string")
    if len(value) > MAX_MESSAGE_ID_CHARS:
        raise Invalid(Reason.BAD_MESSAGE_ID,
                      f"{field} is longer than {MAX_MESSAGE_ID_CHARS} characters")
    return value


def content_id(payload: Any) -> str:
    try:
        blob = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError:  # too deep: repr() of it could raise RecursionError, so no fallback
        raise Invalid(Reason.TOO_DEEP,
                      f"message is nested deeper than {MAX_DEPTH} levels") from None
    return "sha1:" + hashlib.sha1(blob, usedforsecurity=False).hexdigest()


def name(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()[:MAX_NAME_CHARS]
        return text or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise Invalid(Reason.MISSING_EVENT_NAME, f"{field} must be a string")


def scalars(value: Any, skip_dollar: bool = False) -> dict[str, Any]:
    """Keep the flat part of a properties/traits object: scalar values only.

    Scoring reads flat values (``score``, ``seats``, ``plan``, ``renewal_date`` ...);
    nested objects and lists are dropped so that an event stays small in every table and
    envelope downstream. At most :data:`MAX_FIELDS` keys; long strings are truncated.
    """
    if not isinstance(value, dict):
        return {}
    kept: dict[str, Any] = {}
    for key, item in value.items():
        if len(kept) >= MAX_FIELDS:
            break
        if not isinstance(key, str) or len(key) > MAX_KEY_CHARS:
            continue
        if skip_dollar and key.startswith("$"):
            continue
        if isinstance(item, str):
            kept[key] = item[:MAX_STRING_VALUE_CHARS]
        elif item is None or isinstance(item, bool):
            kept[key] = item
        elif isinstance(item, int):
            if -_INT64 <= item < _INT64:  # what every JSON codec downstream can carry
                kept[key] = item
        elif isinstance(item, float) and math.isfinite(item):
            kept[key] = item
    return kept


def check_measure(payload: Any) -> None:
    """Refuse a message orjson cannot write (``too_deep``: nested deeper than
    :data:`MAX_DEPTH`) or one above :data:`MAX_MESSAGE_BYTES` (``message_too_large``).

    The first check on any message, before its fields are read: everything after it
    (dead letters, content ids) may serialise the message again.
    """
    try:
        size = len(orjson.dumps(payload))
    except TypeError:  # orjson.JSONEncodeError: recursion limit (parsed JSON has no other)
        raise Invalid(Reason.TOO_DEEP,
                      f"message is nested deeper than {MAX_DEPTH} levels") from None
    if size > MAX_MESSAGE_BYTES:
        raise Invalid(Reason.MESSAGE_TOO_LARGE,
                      f"message is {size} bytes, larger than {MAX_MESSAGE_BYTES}")

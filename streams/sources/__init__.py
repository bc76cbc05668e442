"""Vendor webhooks → canonical, Segment-spec track calls of the event vocabulary
(:mod:`scoring.vocabulary`, ``docs/events.md``).

One module per vendor maps one decoded webhook body to a :data:`Outcome`: the canonical
messages it means (:class:`Mapped`), nothing Telltale reads (:class:`Ignored`), or why it
cannot be taken (:class:`Refused`, a dead-letter reason code). Pure: no I/O, no clock;
any JSON value, however hostile, yields one of the three and nothing raises.

Every canonical message is about an account, not a person: its ``anonymousId`` is
``<source>:<account>`` and ``context.groupId`` the account. Its ``messageId`` is derived
from the vendor's own event id, so a vendor's retry carries the same id and the
collector's deduplication counts it once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streams.normalize import Reason
from streams.normalize._common import EARLIEST_EVENT_TIME, LATEST_EVENT_TIME
from streams.sources_config import ACCOUNT_ID

MALFORMED = "malformed_source_event"
"""Dead-letter reason: a webhook body without the fields its vendor documents."""

VENDOR_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,79}")
"""A vendor's event, ticket or invoice id as it may appear in a message id."""

MAX_TEXT_CHARS = 128
"""Longest plan name or reason a source copies into an event."""


@dataclass(frozen=True, slots=True)
class Mapped:
    messages: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Ignored:
    why: str


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str
    detail: str


Outcome = Mapped | Ignored | Refused
Mapper = Callable[[Any, Mapping[str, str]], Outcome]


class Refusal(Exception):
    """Internal: the webhook cannot be taken; carries the dead-letter reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def mapper(fn: Mapper) -> Mapper:
    """Make ``fn`` total: a :class:`Refusal` or a shape it did not expect (a list where
    an object belongs, a string where a number does) becomes a :class:`Refused`."""

    def total(payload: Any, accounts: Mapping[str, str]) -> Outcome:
        try:
            if not isinstance(payload, dict):
                raise Refusal(Reason.NOT_AN_OBJECT, "expected a JSON object")
            return fn(payload, accounts)
        except Refusal as exc:
            return Refused(exc.reason, exc.detail)
        except (TypeError, ValueError, KeyError, AttributeError, IndexError,
                ArithmeticError) as exc:
            return Refused(MALFORMED, f"unexpected shape ({type(exc).__name__})")

    total.__doc__ = fn.__doc__
    return total


def obj(value: Any, field: str) -> dict[str, Any]:
    """``value`` when it is a JSON object; refused otherwise."""
    if not isinstance(value, dict):
        raise Refusal(MALFORMED, f"{field} must be an object")
    return value


def opt_obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def vendor_id(value: Any, field: str) -> str:
    """A vendor id in canonical text (numbers as digits); refused unless it is short and
    made of letters, digits and ``_.:-`` only."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or VENDOR_ID.fullmatch(value) is None:
        raise Refusal(Reason.BAD_IDENTITY, f"{field} is not a vendor id")
    return value


def lookup_key(value: Any) -> str | None:
    """A vendor customer or organisation id as a key of the account mapping (only ever
    looked up, so any short scalar will do)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= 256:
        return value
    return None


def account_of(metadata: Iterable[Any], customer: Any, accounts: Mapping[str, str]) -> str:
    """The account an event is about: ``telltale_account_id`` (or ``account_id``) in the
    first metadata object that has one, else the mapping entry of ``customer``.

    Refused with ``unattributed`` when neither names one, ``bad_identity`` when the
    metadata names something that is not an account id."""
    for meta in metadata:
        if not isinstance(meta, dict):
            continue
        for field in ("telltale_account_id", "account_id"):
            value = meta.get(field)
            if value is None or value == "":
                continue
            if not isinstance(value, str) or ACCOUNT_ID.fullmatch(value) is None:
                raise Refusal(Reason.BAD_IDENTITY, f"metadata {field} is not an account id")
            return value
    key = lookup_key(customer)
    mapped = accounts.get(key) if key is not None else None
    if mapped is None:
        raise Refusal(Reason.UNATTRIBUTED,
                      "no account in the event's metadata nor in the source's mapping")
    return mapped


def text(value: Any) -> str | None:
    """A short display string (plan name, reason), or None."""
    if not isinstance(value, str):
        return None
    cleaned = "".join(ch for ch in value if ch.isprintable()).strip()
    return cleaned[:MAX_TEXT_CHARS] or None


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and abs(value) < 1e15 else None


# ISO 4217 currencies without minor units: vendors send their amounts as is.
_ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg",
                           "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"})


def major_units(minor: Any, currency: Any) -> float | None:
    """An amount in the currency's minor unit (cents) → its major unit (dollars)."""
    amount = number(minor)
    if amount is None:
        return None
    if isinstance(currency, str) and currency.lower() in _ZERO_DECIMAL:
        return amount
    return round(amount / 100.0, 2)


def iso_time(value: Any) -> str | None:
    """Epoch seconds or an ISO 8601 string → ISO 8601 UTC; None when absent, invalid or
    outside the years the collector accepts (2000-2100): the collector then uses the time
    it received the webhook, rather than dead-lettering a valid vendor event."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        seconds: float | None = parsed.timestamp()
    else:
        seconds = number(value)
    if seconds is None or not EARLIEST_EVENT_TIME <= seconds <= LATEST_EVENT_TIME:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def canonical(source: str, message_id: str, event: str, account: str, when: str | None,
              properties: Mapping[str, Any]) -> dict[str, Any]:
    """The Segment-spec track call of one canonical event about ``account``."""
    message: dict[str, Any] = {
        "type": "track",
        "event": event,
        "messageId": f"{source}:{message_id}",
        "anonymousId": f"{source}:{account}",
        "context": {"groupId": account},
        "properties": {"source": source,
                       **{k: val for k, val in properties.items() if val is not None}},
    }
    if when is not None:
        message["timestamp"] = when
    return message

"""CRM records → account traits: a company read from HubSpot or an account read from
Salesforce becomes one Segment-spec ``group`` call, so that a customer-success team keeps
renewal dates, ARR, owners and seats where it already keeps them and never has to send
them as events.

Which CRM field holds which trait is configured per workspace (:class:`TraitMap`); the
field naming the Telltale account id is required, the rest are optional. Every value is
checked as event data is (DESIGN principle 10): an account id that is not one refuses the
record, a trait that is not what its name says is left out and reported, and the record's
own id (``hubspot_company_id`` / ``salesforce_account_id``) is checked with the same rule
the CRM write-back applies before it builds a URL from it.

Pure: no I/O, no clock. The ``messageId`` is a digest of what the record says, so
reading an unchanged record again is a duplicate the collector counts once, and a
changed one is a new call.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson

from streams.identifiers import external_id, is_email, is_slack_user_id
from streams.sources_config import ACCOUNT_ID

HUBSPOT = "hubspot"
SALESFORCE = "salesforce"
RECORD_ID_TRAIT = {HUBSPOT: "hubspot_company_id", SALESFORCE: "salesforce_account_id"}
"""The trait that carries the CRM's own record id (what the write-back patches)."""

TEXT_TRAITS = frozenset({"name", "plan", "segment", "owner"})
READABLE_TRAITS = TEXT_TRAITS | {"seats", "arr", "renewal_date", "owner_email",
                                 "owner_slack_id"}
"""Account traits a CRM field may fill (``docs/events.md``, *Account traits*)."""

MAX_TEXT_CHARS = 128
MAX_SEATS = 10_000_000
MAX_ARR = 1e12
EARLIEST_YEAR, LATEST_YEAR = 2000, 2100

BAD_ACCOUNT = "crm_record_without_account"
"""Dead-letter reason: the record's account field is empty or not an account id."""
BAD_FIELD = "malformed_crm_field"
"""Dead-letter reason: one field was left out because it is not what its trait needs."""


@dataclass(frozen=True, slots=True)
class TraitMap:
    """Which CRM field holds the Telltale account id, and which holds each trait."""

    account: str
    traits: Mapping[str, str] = field(default_factory=dict)

    def fields(self) -> list[str]:
        """Every CRM field to ask for, account field first, each once."""
        return list(dict.fromkeys([self.account, *self.traits.values()]))


@dataclass(frozen=True, slots=True)
class Read:
    """One CRM record, as read: the group call it means (None when refused) and each
    problem found, as (dead-letter reason, detail)."""

    message: dict[str, Any] | None
    problems: list[tuple[str, str]]


def group_call(crm: str, record_id: Any, values: Mapping[str, Any], mapping: TraitMap,
               ) -> Read:
    """The ``group`` call of one record whose fields are ``values`` (field name → value,
    relationship fields flattened as ``Owner.Email``)."""
    problems: list[tuple[str, str]] = []
    own_id = external_id(RECORD_ID_TRAIT[crm], record_id)
    if own_id is None:
        return Read(None, [(BAD_FIELD, f"{crm} record id {_shown(record_id)} is not one")])
    account = values.get(mapping.account)
    if not isinstance(account, str) or ACCOUNT_ID.fullmatch(account.strip()) is None:
        return Read(None, [(BAD_ACCOUNT, f"{crm} record {own_id}: {mapping.account} = "
                                         f"{_shown(account)} is not an account id")])
    account = account.strip()
    traits: dict[str, Any] = {RECORD_ID_TRAIT[crm]: own_id}
    for trait, name in mapping.traits.items():
        raw = values.get(name)
        if raw is None or raw == "":
            continue  # not set in the CRM: say nothing rather than erase what is known
        value = _trait_value(trait, raw)
        if value is None:
            problems.append((BAD_FIELD, f"{crm} record {own_id}: {name} = {_shown(raw)} "
                                        f"is not a valid {trait}"))
        else:
            traits[trait] = value
    digest = hashlib.sha256(orjson.dumps([crm, own_id, account, traits],
                                         option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]
    message = {"type": "group", "groupId": account, "anonymousId": f"{crm}:{account}",
               "messageId": f"{crm}-{own_id}-{digest}", "traits": traits,
               "context": {"groupId": account}}
    return Read(message, problems)


def _trait_value(trait: str, raw: Any) -> Any:
    """The trait's value from a CRM field, or None when the field is not one."""
    if trait in TEXT_TRAITS:
        return _text(raw)
    if trait == "seats":
        number = _number(raw)
        if number is None or number != int(number) or not 0 <= number <= MAX_SEATS:
            return None
        return int(number)
    if trait == "arr":
        number = _number(raw)
        return None if number is None or not 0 <= number <= MAX_ARR else number
    if trait == "renewal_date":
        return _date(raw)
    if trait == "owner_email":
        return raw.strip().lower() if isinstance(raw, str) and is_email(raw.strip()) else None
    if trait == "owner_slack_id":
        return raw if is_slack_user_id(raw) else None
    return None


def _text(raw: Any) -> str | None:
    if not isinstance(raw, str):
        return None
    text = " ".join(raw.split())
    if not text or len(text) > MAX_TEXT_CHARS or not text.isprintable():
        return None
    return text


def _number(raw: Any) -> float | None:
    """A finite number from a JSON number or the decimal string HubSpot sends."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str):
        if not 0 < len(raw) <= 32:
            return None
        try:
            raw = float(raw.strip())
        except ValueError:
            return None
    if not isinstance(raw, int | float) or not math.isfinite(raw):
        return None
    return float(raw)


def _date(raw: Any) -> str | None:
    """``YYYY-MM-DD`` from a date, an ISO date-time or epoch milliseconds (HubSpot's date
    properties come as either), within 2000-2100."""
    day: date | None = None
    if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw):
        try:
            day = datetime.fromtimestamp(raw / 1000, tz=UTC).date()
        except (OverflowError, OSError, ValueError):
            return None
    elif isinstance(raw, str) and 0 < len(raw) <= 40:
        text = raw.strip()
        if text.isdigit():
            return _date(int(text))
        try:
            day = (date.fromisoformat(text) if len(text) == 10
                   else datetime.fromisoformat(text.replace("Z", "+00:00")).date())
        except ValueError:
            return None
    if day is None or not EARLIEST_YEAR <= day.year <= LATEST_YEAR:
        return None
    return day.isoformat()


def flatten(record: Mapping[str, Any], prefix: str = "", depth: int = 0
            ) -> dict[str, Any]:
    """A Salesforce record's fields with relationships flattened (``Owner.Email``);
    ``attributes`` (the record's type and URL) left out."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "attributes" or not isinstance(key, str):
            continue
        if isinstance(value, Mapping) and depth < 2:
            out.update(flatten(value, f"{prefix}{key}.", depth + 1))
        else:
            out[prefix + key] = value
    return out


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

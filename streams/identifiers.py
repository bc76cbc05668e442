"""Strict syntax of the ids that leave Telltale inside a URL, a header or a Slack mention.

Everything here comes from events (group traits, health changes), so it is hostile until
checked: a Salesforce "id" of ``//other.host/x`` would send the CRM request, bearer token
included, to another host; a Slack "user id" of ``!channel`` would ping a whole channel.
The same checks run where a value enters (``scoring/apply.py``) and where it is used
(``agents/sinks/``), so both sides agree on what is valid. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable

SALESFORCE_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
"""A Salesforce record id: exactly 15 (case-sensitive) or 18 (case-safe) ASCII
alphanumerics."""

HUBSPOT_ID = re.compile(r"[0-9]{1,20}")
"""A HubSpot object id: decimal digits, at most 20 (a 64-bit number)."""

SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")
"""A Slack user id (``U…``, or ``W…`` on Enterprise Grid), the only thing put in a mention."""

EMAIL_MAX_BYTES = 254
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%'*+/=?^_`{}~-]{1,64}"  # local part: dot-atom characters, no <>&|"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)

CHANGE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
"""A health-change id as it may appear in a header (``hc_`` and 32 hex digits today)."""


def _full(pattern: re.Pattern[str]) -> Callable[[object], bool]:
    # fullmatch, not match with "$": "$" also matches before a trailing newline.
    def check(value: object) -> bool:
        return isinstance(value, str) and pattern.fullmatch(value) is not None

    return check


is_salesforce_id = _full(SALESFORCE_ID)
is_hubspot_id = _full(HUBSPOT_ID)
is_slack_user_id = _full(SLACK_USER_ID)
is_change_id = _full(CHANGE_ID)


def is_email(value: object) -> bool:
    """An address of at most 254 bytes whose parts use only dot-atom characters."""
    return (isinstance(value, str) and len(value) <= EMAIL_MAX_BYTES
            and _EMAIL.fullmatch(value) is not None)


EXTERNAL_IDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "hubspot_company_id": (is_hubspot_id, "not a HubSpot id (1 to 20 digits)"),
    "salesforce_account_id": (is_salesforce_id,
                              "not a Salesforce id (15 or 18 ASCII letters and digits)"),
}
"""CRM record ids an account may carry: trait name -> (check, why a value fails it)."""


def external_id(key: str, value: object) -> str | None:
    """The CRM record id ``value`` for trait ``key`` in canonical text, or None when it is
    not one. HubSpot ids may arrive as JSON integers; booleans never count."""
    check = EXTERNAL_IDS[key][0]
    if key == "hubspot_company_id" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return value if isinstance(value, str) and check(value) else None

"""Freshdesk automation webhooks → support events.

Freshdesk's automation rules post a body that the rule itself defines with placeholders
(``{{ticket.id}}``, ``{{ticket.status}}``, ``{{ticket.company.name}}``) and send no
event id. Telltale documents the body each rule sends (docs/sources.md)::

    {"freshdesk_webhook": {"event": "ticket_created" | "ticket_updated" | "satisfaction",
     "ticket_id": …, "ticket_status": …, "company": …, "rating": …}}

Without an event id, a ticket's event is identified by what it says (ticket, event,
status or rating), so a retry of the same webhook is one event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scoring import vocabulary as v
from streams import sources as s

SOURCE = "freshdesk"
# Freshdesk's status names and their numeric codes (4 resolved, 5 closed).
_RESOLVED = frozenset({"resolved", "closed", "4", "5"})
_RATINGS = {"extremely happy": 5, "very happy": 5, "happy": 4, "neutral": 3,
            "unhappy": 2, "very unhappy": 1, "extremely unhappy": 1}


@s.mapper
def map_freshdesk(payload: dict[str, Any], accounts: Mapping[str, str]) -> s.Outcome:
    """One Freshdesk automation webhook → the support event it means."""
    body = s.obj(payload.get("freshdesk_webhook"), "freshdesk_webhook")
    event = body.get("event")
    ticket = s.vendor_id(body.get("ticket_id"), "ticket_id")
    props: dict[str, Any] = {v.TICKET_ID: ticket}
    if event == "ticket_created":
        name, key = v.TICKET_OPENED, "opened"
    elif event == "ticket_updated":
        status = body.get("ticket_status")
        if not (isinstance(status, str | int) and str(status).strip().lower() in _RESOLVED):
            return s.Ignored("a ticket update that does not resolve it")
        name, key = v.TICKET_RESOLVED, "resolved"
    elif event == "satisfaction":
        score = _score(body.get("rating"))
        if score is None:
            return s.Ignored("a satisfaction rating Telltale cannot read")
        name, key = v.CSAT_SUBMITTED, f"csat:{score}"
        props[v.SCORE] = score
    else:
        return s.Ignored("a Freshdesk event Telltale does not read")
    account = s.account_of([], body.get("company"), accounts)
    return s.Mapped([s.canonical(SOURCE, f"{ticket}:{key}", name, account, None, props)])


def _score(rating: Any) -> int | None:
    if isinstance(rating, str):
        named = _RATINGS.get(rating.strip().lower())
        if named is not None:
            return named
        try:
            rating = float(rating)
        except ValueError:
            return None
    value = s.number(rating)
    return int(value) if value is not None and 1 <= value <= 5 else None

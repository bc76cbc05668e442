"""Zendesk webhooks → support events.

Ticket events as Zendesk documents its event webhooks: ``{"type":
"zen:event-type:ticket.created", "id": "<event id>", "time": "<ISO 8601>", "subject":
"zen:ticket:<id>", "detail": {"id": "<ticket id>", "organization_id": "<id>", …},
"event": {…}}``; ``ticket.status_changed`` carries ``event.current`` and
``event.previous``. Satisfaction ratings have no event type, so a trigger sends them
with a body written in Zendesk (docs/sources.md): ``{"type":
"telltale.satisfaction_rated", "ticket_id": …, "organization_id": …, "rating": …}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scoring import vocabulary as v
from streams import sources as s

SOURCE = "zendesk"
_CREATED = "zen:event-type:ticket.created"
_STATUS_CHANGED = "zen:event-type:ticket.status_changed"
_RATED = "telltale.satisfaction_rated"
_RESOLVED = frozenset({"solved", "closed"})
# Zendesk's two-point rating on the vocabulary's 1-5 scale.
_RATINGS = {"good": 5, "bad": 1}


@s.mapper
def map_zendesk(payload: dict[str, Any], accounts: Mapping[str, str]) -> s.Outcome:
    """One Zendesk webhook → the support event it means."""
    kind = payload.get("type")
    if kind == _RATED:
        ticket = s.vendor_id(payload.get("ticket_id"), "ticket_id")
        rating = payload.get("rating")
        score = _RATINGS.get(rating.strip().lower()) if isinstance(rating, str) else None
        if score is None:
            return s.Ignored("a satisfaction rating that is neither good nor bad")
        account = s.account_of([], payload.get("organization_id"), accounts)
        # One rating per ticket and value: a resend of the same rating is the same event.
        return s.Mapped([s.canonical(SOURCE, f"csat:{ticket}:{score}", v.CSAT_SUBMITTED,
                                     account, s.iso_time(payload.get("time")),
                                     {v.SCORE: score, v.TICKET_ID: ticket})])
    if kind not in (_CREATED, _STATUS_CHANGED):
        return s.Ignored("a Zendesk event type Telltale does not read")
    event_id = s.vendor_id(payload.get("id"), "id")
    detail = s.obj(payload.get("detail"), "detail")
    ticket = s.vendor_id(detail.get("id"), "detail.id")
    if kind == _CREATED:
        name = v.TICKET_OPENED
    else:
        current = s.opt_obj(payload.get("event")).get("current")
        if isinstance(current, dict):
            current = current.get("status")
        if current is None:  # the ticket as it is now says it too
            current = detail.get("status")
        if not (isinstance(current, str) and current.lower() in _RESOLVED):
            return s.Ignored("a status change that does not solve the ticket")
        name = v.TICKET_RESOLVED
    account = s.account_of([], detail.get("organization_id"), accounts)
    return s.Mapped([s.canonical(SOURCE, event_id, name, account,
                                 s.iso_time(payload.get("time")), {v.TICKET_ID: ticket})])

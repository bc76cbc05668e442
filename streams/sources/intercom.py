"""Intercom notifications → support events.

Shape as Intercom documents its webhook notifications: ``{"type":
"notification_event", "id": "notif_…", "topic": "conversation.admin.closed",
"created_at": <epoch s>, "data": {"item": {"type": "conversation", "id": "…",
"custom_attributes": {…}, "contacts": {"contacts": [{"id": …, "external_id": …}]},
"conversation_rating": {"rating": 1-5}}}}``. Intercom's conversations name no company,
so the account comes from a ``telltale_account_id`` conversation attribute or from the
mapping of the conversation's contact (external id first, then Intercom id).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scoring import vocabulary as v
from streams import sources as s

SOURCE = "intercom"
_TOPICS = {
    "conversation.user.created": v.TICKET_OPENED,
    "conversation.admin.single.created": v.TICKET_OPENED,
    "conversation.admin.opened": v.TICKET_OPENED,
    "conversation.admin.closed": v.TICKET_RESOLVED,
    "conversation.rating.added": v.CSAT_SUBMITTED,
}


@s.mapper
def map_intercom(payload: dict[str, Any], accounts: Mapping[str, str]) -> s.Outcome:
    """One Intercom notification → the support event it means."""
    if payload.get("type") != "notification_event":
        raise s.Refusal(s.MALFORMED, "not an Intercom notification")
    name = _TOPICS.get(str(payload.get("topic")))
    if name is None:
        return s.Ignored("an Intercom topic Telltale does not read")
    notification = s.vendor_id(payload.get("id"), "id")
    item = s.obj(s.obj(payload.get("data"), "data").get("item"), "data.item")
    conversation = s.vendor_id(item.get("id"), "data.item.id")
    props: dict[str, Any] = {v.TICKET_ID: conversation}
    if name == v.CSAT_SUBMITTED:
        rating = s.number(s.opt_obj(item.get("conversation_rating")).get("rating"))
        if rating is None:
            return s.Ignored("a rating without a score")
        props[v.SCORE] = rating
    account = s.account_of([item.get("custom_attributes")], _contact(item, accounts), accounts)
    return s.Mapped([s.canonical(SOURCE, notification, name, account,
                                 s.iso_time(payload.get("created_at")), props)])


def _contact(item: dict[str, Any], accounts: Mapping[str, str]) -> str | None:
    """The first of the conversation's contact ids that the mapping knows."""
    contacts = s.opt_obj(item.get("contacts")).get("contacts")
    for contact in contacts if isinstance(contacts, list) else []:
        for key in ("external_id", "id"):
            found = s.lookup_key(s.opt_obj(contact).get(key))
            if found is not None and found in accounts:
                return found
    return None

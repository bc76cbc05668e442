"""Chargebee events → billing events.

Shape as Chargebee documents its Event resource: ``{"id": "ev_…", "occurred_at":
<epoch s>, "event_type": "payment_failed", "api_version": "v2", "content": {"customer":
{…}, "subscription": {…}, "invoice": {…}, "transaction": {…}}}``. Amounts are in the
currency's minor unit; customers and subscriptions carry ``meta_data``; seats are the
subscription's ``plan_quantity`` (product catalog 1.0) or its plan item's ``quantity``
in ``subscription_items`` (2.0). ``subscription_changed`` does not say what the plan
was, so only the seats it names are taken from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scoring import vocabulary as v
from streams import sources as s

SOURCE = "chargebee"
_EVENTS = {
    "payment_failed": v.PAYMENT_FAILED,
    "payment_succeeded": v.PAYMENT_SUCCEEDED,
    "subscription_created": v.SEATS_CHANGED,
    "subscription_changed": v.SEATS_CHANGED,
    "subscription_cancelled": v.SUBSCRIPTION_CANCELLED,
}


@s.mapper
def map_chargebee(event: dict[str, Any], accounts: Mapping[str, str]) -> s.Outcome:
    """One Chargebee event → the billing event it means."""
    event_id = s.vendor_id(event.get("id"), "id")
    name = _EVENTS.get(str(event.get("event_type")))
    if name is None:
        return s.Ignored("a Chargebee event type Telltale does not read")
    content = s.obj(event.get("content"), "content")
    customer = s.opt_obj(content.get("customer"))
    subscription = s.opt_obj(content.get("subscription"))
    invoice = s.opt_obj(content.get("invoice"))
    transaction = s.opt_obj(content.get("transaction"))
    customer_id = (customer.get("id") or subscription.get("customer_id")
                   or invoice.get("customer_id") or transaction.get("customer_id"))
    account = s.account_of([subscription.get("meta_data"), customer.get("meta_data")],
                           customer_id, accounts)
    props: dict[str, Any] = {}
    if subscription.get("id") is not None:
        props["subscription_id"] = s.vendor_id(subscription.get("id"), "subscription.id")
    if name == v.PAYMENT_FAILED:
        minor = transaction.get("amount", invoice.get("amount_due"))
        currency = transaction.get("currency_code", invoice.get("currency_code"))
        props[v.AMOUNT] = s.major_units(minor, currency)
    elif name == v.SEATS_CHANGED:
        seats = _seats(subscription)
        if seats is None:
            return s.Ignored("a subscription without a quantity")
        props[v.SEATS] = seats
    elif name == v.SUBSCRIPTION_CANCELLED:
        props["reason"] = s.text(subscription.get("cancel_reason_code")) or s.text(
            subscription.get("cancel_reason"))
    message = s.canonical(SOURCE, event_id, name, account,
                          s.iso_time(event.get("occurred_at")), props)
    return s.Mapped([message])


def _seats(subscription: dict[str, Any]) -> int | None:
    quantity = s.number(subscription.get("plan_quantity"))
    if quantity is None:
        items = subscription.get("subscription_items")
        if isinstance(items, list):
            plans = [s.opt_obj(item) for item in items
                     if s.opt_obj(item).get("item_type") == "plan"]
            if plans:
                quantity = s.number(plans[0].get("quantity"))
    return int(quantity) if quantity is not None and quantity >= 0 else None

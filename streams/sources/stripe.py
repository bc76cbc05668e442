"""Stripe events → billing events.

Shape as Stripe documents its Event object: ``{"id": "evt_…", "object": "event",
"type": "invoice.payment_failed", "created": <epoch s>, "data": {"object": {…},
"previous_attributes": {…}}}``. Invoices carry ``customer``, ``amount_due`` /
``amount_paid`` in the currency's minor unit and ``metadata``; subscriptions carry
``customer``, ``items.data[].quantity`` and ``.price`` (``unit_amount``, ``nickname``),
``metadata`` and ``cancellation_details.reason``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scoring import vocabulary as v
from streams import sources as s

SOURCE = "stripe"
_INVOICE_EVENTS = {
    "invoice.payment_failed": v.PAYMENT_FAILED,
    "invoice.payment_succeeded": v.PAYMENT_SUCCEEDED,
    "invoice.paid": v.PAYMENT_SUCCEEDED,
}
_SUBSCRIPTION_EVENTS = frozenset({"customer.subscription.created",
                                  "customer.subscription.updated",
                                  "customer.subscription.deleted"})


@s.mapper
def map_stripe(event: dict[str, Any], accounts: Mapping[str, str]) -> s.Outcome:
    """One Stripe event → the billing events it means."""
    if event.get("object") != "event":
        raise s.Refusal(s.MALFORMED, "not a Stripe event object")
    event_id = s.vendor_id(event.get("id"), "id")
    kind = event.get("type")
    if kind not in _INVOICE_EVENTS and kind not in _SUBSCRIPTION_EVENTS:
        return s.Ignored("a Stripe event type Telltale does not read")
    data = s.obj(event.get("data"), "data")
    item = s.obj(data.get("object"), "data.object")
    when = s.iso_time(event.get("created"))
    metadata = [item.get("metadata")]
    if kind in _INVOICE_EVENTS:
        parent = s.opt_obj(item.get("parent"))
        metadata += [s.opt_obj(item.get("subscription_details")).get("metadata"),
                     s.opt_obj(parent.get("subscription_details")).get("metadata")]
    account = s.account_of(metadata, item.get("customer"), accounts)

    def message(name: str, props: dict[str, Any], part: str = "") -> dict[str, Any]:
        return s.canonical(SOURCE, event_id + part, name, account, when, props)

    object_id = s.vendor_id(item.get("id"), "data.object.id")
    if kind in _INVOICE_EVENTS:
        name = _INVOICE_EVENTS[kind]
        props: dict[str, Any] = {"invoice_id": object_id}
        if name == v.PAYMENT_FAILED:
            props[v.AMOUNT] = s.major_units(item.get("amount_due"), item.get("currency"))
        return s.Mapped([message(name, props)])
    props = {"subscription_id": object_id}
    if kind == "customer.subscription.deleted":
        reason = s.text(s.opt_obj(item.get("cancellation_details")).get("reason"))
        return s.Mapped([message(v.SUBSCRIPTION_CANCELLED, {**props, "reason": reason})])
    seats = _quantity(item)
    if kind == "customer.subscription.created":
        if seats is None:
            return s.Ignored("a subscription without a quantity")
        return s.Mapped([message(v.SEATS_CHANGED, {**props, v.SEATS: seats})])
    previous = s.opt_obj(data.get("previous_attributes"))
    messages: list[dict[str, Any]] = []
    before = _quantity(previous)
    if before is not None and seats is not None and before != seats:
        messages.append(message(v.SEATS_CHANGED, {**props, v.SEATS: seats,
                                                  v.PREVIOUS_SEATS: before}, ":seats"))
    old_price, new_price = _price(previous), _price(item)
    if old_price is not None and new_price is not None:
        old_amount, new_amount = s.number(old_price.get("unit_amount")), s.number(
            new_price.get("unit_amount"))
        if old_amount is not None and new_amount is not None and new_amount < old_amount:
            messages.append(message(v.PLAN_DOWNGRADED, {
                **props, v.FROM_PLAN: _plan_name(old_price), v.TO_PLAN: _plan_name(new_price),
            }, ":plan"))
    if not messages:
        return s.Ignored("a subscription update that neither lowers the plan nor changes seats")
    return s.Mapped(messages)


def _items(subscription: dict[str, Any]) -> list[dict[str, Any]] | None:
    items = subscription.get("items")
    if not isinstance(items, dict) or not isinstance(items.get("data"), list):
        return None
    return [s.opt_obj(entry) for entry in items["data"]]


def _quantity(subscription: dict[str, Any]) -> int | None:
    """Seats of a subscription (or of its previous attributes): the items' quantities
    added up, or the older top-level ``quantity``."""
    items = _items(subscription)
    if items is not None:
        quantities = [s.number(entry.get("quantity")) for entry in items]
        if quantities and all(q is not None and q >= 0 for q in quantities):
            return int(sum(q for q in quantities if q is not None))
        return None
    quantity = s.number(subscription.get("quantity"))
    return int(quantity) if quantity is not None and quantity >= 0 else None


def _price(subscription: dict[str, Any]) -> dict[str, Any] | None:
    items = _items(subscription)
    if items:
        price = items[0].get("price") or items[0].get("plan")
        return price if isinstance(price, dict) else None
    plan = subscription.get("plan")
    return plan if isinstance(plan, dict) else None


def _plan_name(price: dict[str, Any]) -> str | None:
    for key in ("nickname", "lookup_key", "id"):
        name = s.text(price.get(key))
        if name:
            return name
    return None

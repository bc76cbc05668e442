"""Vendor webhook bodies, shaped as each vendor documents them, → canonical events the
collector's Segment normaliser accepts, for the right account, with ids from the
vendor's event ids; anything else ignored or refused with a reason, never raised."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import vocabulary as v
from streams.events import EventType, Source
from streams.normalize import NormalizeContext, Reason, Rejection, normalize
from streams.sources import MALFORMED, Ignored, Mapped, Mapper, Outcome, Refused
from streams.sources.chargebee import map_chargebee
from streams.sources.destination import map_destination
from streams.sources.freshdesk import map_freshdesk
from streams.sources.intercom import map_intercom
from streams.sources.stripe import map_stripe
from streams.sources.zendesk import map_zendesk
from tests.sources.fixtures import payload

STRIPE = {"cus_NffrFeUfNV2Hib": "acme"}
CHARGEBEE = {"16BPgETyVrQbiGh8": "globex"}
ZENDESK = {"509974": "initech"}
INTERCOM = {"u-dana": "initech"}
FRESHDESK = {"Umbrella Corp": "umbrella"}


def _mapped(outcome: Outcome) -> list[dict[str, Any]]:
    assert isinstance(outcome, Mapped), outcome
    for message in outcome.messages:
        event = normalize(message, NormalizeContext("acme", 1_764_500_000.0, Source.SEGMENT))
        assert not isinstance(event, Rejection), (message, event)
        assert event.type is EventType.TRACK
        assert event.user_id is None  # about the account, not a person
        assert event.account_id == message["context"]["groupId"]
    return outcome.messages


def _one(outcome: Outcome) -> dict[str, Any]:
    messages = _mapped(outcome)
    assert len(messages) == 1
    return messages[0]


def test_a_failed_stripe_invoice_is_a_payment_failure_in_dollars() -> None:
    message = _one(map_stripe(payload("stripe_invoice_payment_failed"), {}))
    assert message["event"] == v.PAYMENT_FAILED
    assert message["messageId"] == "stripe:evt_1NG8Du2eZvKYlo2CUI79vXWy"
    assert message["context"] == {"groupId": "acme"}  # from the subscription's metadata
    assert message["anonymousId"] == "stripe:acme"
    assert message["properties"][v.AMOUNT] == 1200.0
    assert message["timestamp"] == "2025-11-25T09:00:00Z"


def test_a_paid_stripe_invoice_takes_its_account_from_the_mapping() -> None:
    message = _one(map_stripe(payload("stripe_invoice_paid"), STRIPE))
    assert (message["event"], message["context"]["groupId"]) == (v.PAYMENT_SUCCEEDED, "acme")
    assert isinstance(map_stripe(payload("stripe_invoice_paid"), {}), Refused)


def test_a_stripe_downgrade_with_fewer_seats_is_two_events() -> None:
    messages = _mapped(map_stripe(payload("stripe_subscription_updated"), {}))
    by_name = {m["event"]: m for m in messages}
    assert by_name[v.SEATS_CHANGED]["properties"].items() >= {
        v.SEATS: 20, v.PREVIOUS_SEATS: 25}.items()
    assert by_name[v.PLAN_DOWNGRADED]["properties"].items() >= {
        v.FROM_PLAN: "Business", v.TO_PLAN: "Pro"}.items()
    assert len({m["messageId"] for m in messages}) == 2


def test_a_stripe_upgrade_alone_is_ignored() -> None:
    event = payload("stripe_subscription_updated")
    previous = event["data"]["previous_attributes"]["items"]["data"][0]
    previous["quantity"] = 20
    previous["price"]["unit_amount"] = 1000
    assert isinstance(map_stripe(event, {}), Ignored)


def test_a_deleted_stripe_subscription_is_a_cancellation_with_its_reason() -> None:
    message = _one(map_stripe(payload("stripe_subscription_deleted"), {}))
    assert message["event"] == v.SUBSCRIPTION_CANCELLED
    assert message["properties"]["reason"] == "cancellation_requested"


def test_stripe_event_types_telltale_does_not_read_are_ignored() -> None:
    event = payload("stripe_invoice_paid")
    event["type"] = "charge.refunded"
    assert isinstance(map_stripe(event, STRIPE), Ignored)


def test_chargebee_payment_failure_subscription_and_cancellation() -> None:
    failed = _one(map_chargebee(payload("chargebee_payment_failed"), {}))
    assert (failed["event"], failed["context"]["groupId"]) == (v.PAYMENT_FAILED, "globex")
    assert failed["properties"][v.AMOUNT] == 450.0
    assert failed["messageId"] == "chargebee:ev_16BPgETyVrQbiGhA"
    created = _one(map_chargebee(payload("chargebee_subscription_created"), CHARGEBEE))
    assert (created["event"], created["properties"][v.SEATS]) == (v.SEATS_CHANGED, 12)
    cancelled = _one(map_chargebee(payload("chargebee_subscription_cancelled"), CHARGEBEE))
    assert cancelled["event"] == v.SUBSCRIPTION_CANCELLED
    assert cancelled["properties"]["reason"] == "Too expensive"


def test_zendesk_ticket_opened_solved_and_rated() -> None:
    opened = _one(map_zendesk(payload("zendesk_ticket_created"), ZENDESK))
    solved = _one(map_zendesk(payload("zendesk_ticket_solved"), ZENDESK))
    rated = _one(map_zendesk(payload("zendesk_satisfaction_rated"), ZENDESK))
    assert [m["event"] for m in (opened, solved, rated)] == [
        v.TICKET_OPENED, v.TICKET_RESOLVED, v.CSAT_SUBMITTED]
    assert opened["properties"][v.TICKET_ID] == solved["properties"][v.TICKET_ID] == "35436"
    assert rated["properties"][v.SCORE] == 1
    assert {m["context"]["groupId"] for m in (opened, solved, rated)} == {"initech"}
    assert opened["messageId"] == "zendesk:01HNXK2C1P3W5Y7Z9A1B3C5D7E"


def test_a_zendesk_status_change_short_of_solved_is_ignored() -> None:
    event = payload("zendesk_ticket_solved")
    event["event"] = {"current": "PENDING", "previous": "OPEN"}
    assert isinstance(map_zendesk(event, ZENDESK), Ignored)


def test_intercom_conversation_opened_and_rated() -> None:
    opened = _one(map_intercom(payload("intercom_conversation_created"), INTERCOM))
    assert (opened["event"], opened["context"]["groupId"]) == (v.TICKET_OPENED, "initech")
    assert opened["properties"][v.TICKET_ID] == "147"
    rated = _one(map_intercom(payload("intercom_conversation_rated"), {}))
    assert (rated["event"], rated["properties"][v.SCORE]) == (v.CSAT_SUBMITTED, 2)
    closed = payload("intercom_conversation_created")
    closed["topic"], closed["id"] = "conversation.admin.closed", "notif_closed_1"
    assert _one(map_intercom(closed, INTERCOM))["event"] == v.TICKET_RESOLVED
    ping = {"type": "notification_event", "topic": "ping", "id": "notif_ping",
            "data": {"item": {"type": "ping", "message": "hi"}}}
    assert isinstance(map_intercom(ping, {}), Ignored)


def test_freshdesk_ticket_created_and_resolved_have_stable_ids() -> None:
    opened = _one(map_freshdesk(payload("freshdesk_ticket_created"), FRESHDESK))
    resolved = _one(map_freshdesk(payload("freshdesk_ticket_resolved"), FRESHDESK))
    assert (opened["event"], resolved["event"]) == (v.TICKET_OPENED, v.TICKET_RESOLVED)
    assert opened["messageId"] == "freshdesk:2046:opened"
    assert _one(map_freshdesk(payload("freshdesk_ticket_created"), FRESHDESK)) == opened
    rating = {"freshdesk_webhook": {"event": "satisfaction", "ticket_id": 2046,
                                    "rating": "Unhappy", "company": "Umbrella Corp"}}
    assert _one(map_freshdesk(rating, FRESHDESK))["properties"][v.SCORE] == 2


def test_a_destination_message_passes_as_it_is_and_unknown_types_are_ignored() -> None:
    message = payload("segment_track")
    assert map_destination(message, {}) == Mapped([message])
    assert isinstance(map_destination({**message, "type": "screenview"}, {}), Ignored)
    assert isinstance(map_destination([message], {}), Refused)


@pytest.mark.parametrize("hostile", [
    "acme/../../x", "acme\r\nX-Injected: 1", "a" * 200, "<script>", "acme corp"])
def test_metadata_that_names_no_account_id_is_refused(hostile: str) -> None:
    event = payload("stripe_invoice_payment_failed")
    event["data"]["object"]["subscription_details"]["metadata"]["telltale_account_id"] = hostile
    outcome = map_stripe(event, {})
    assert isinstance(outcome, Refused) and outcome.reason == Reason.BAD_IDENTITY


def test_vendor_ids_that_could_break_a_message_id_are_refused() -> None:
    event = payload("stripe_invoice_payment_failed")
    event["id"] = "evt_1\nx"
    outcome = map_stripe(event, {})
    assert isinstance(outcome, Refused) and outcome.reason == Reason.BAD_IDENTITY


MAPPERS: list[tuple[Mapper, str, dict[str, str]]] = [
    (map_stripe, "stripe_subscription_updated", STRIPE),
    (map_chargebee, "chargebee_payment_failed", CHARGEBEE),
    (map_zendesk, "zendesk_ticket_created", ZENDESK),
    (map_intercom, "intercom_conversation_rated", INTERCOM),
    (map_freshdesk, "freshdesk_ticket_resolved", FRESHDESK),
    (map_destination, "segment_track", {}),
]

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=12)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(range(len(MAPPERS))), st.data(), _json)
def test_any_field_replaced_by_any_json_yields_an_outcome(which: int, data: st.DataObject,
                                                          replacement: Any) -> None:
    map_fn, name, accounts = MAPPERS[which]
    event = copy.deepcopy(payload(name))
    path = data.draw(st.sampled_from(_paths(event)))
    holder = event
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = replacement
    outcome = map_fn(event, accounts)
    assert isinstance(outcome, Mapped | Ignored | Refused)
    if isinstance(outcome, Mapped) and map_fn is not map_destination:
        _mapped(outcome)


def test_a_body_of_the_wrong_shape_is_refused_as_malformed() -> None:
    for map_fn, _, accounts in MAPPERS:
        assert isinstance(map_fn("a string", accounts), Refused)
    outcome = map_stripe({"object": "event", "id": "evt_1", "type": "invoice.paid",
                          "data": []}, STRIPE)
    assert isinstance(outcome, Refused) and outcome.reason == MALFORMED


def test_a_new_stripe_subscription_sets_the_seats_it_bought() -> None:
    event = payload("stripe_subscription_updated")
    event["type"], event["id"] = "customer.subscription.created", "evt_created_1"
    del event["data"]["previous_attributes"]
    message = _one(map_stripe(event, {}))
    assert (message["event"], message["properties"][v.SEATS]) == (v.SEATS_CHANGED, 20)
    assert "previous_seats" not in message["properties"]


def test_a_chargebee_payment_success_is_a_payment_succeeded() -> None:
    event = payload("chargebee_payment_failed")
    event["event_type"], event["id"] = "payment_succeeded", "ev_paid_1"
    message = _one(map_chargebee(event, {}))
    assert message["event"] == v.PAYMENT_SUCCEEDED
    assert v.AMOUNT not in message["properties"]

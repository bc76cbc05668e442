"""Segment-spec calls (and RudderStack's and direct producers' variants of them) →
:class:`~streams.events.Event`.

The six call types of the Segment spec map one to one. Event time is corrected for the
client's clock the way the spec does it: ``timestamp = receivedAt - (sentAt -
originalTimestamp)``, with ``originalTimestamp`` falling back to ``timestamp`` (what the
Python and Node libraries send) and ``sentAt`` taken from the message or, failing that,
from the batch. ``context.groupId`` attributes a single non-group call to an account;
a group call's account is its ``groupId``.
"""

from __future__ import annotations

from typing import Any

from streams.events import Event, EventType, Source
from streams.normalize._common import (
    Invalid,
    NormalizeContext,
    Reason,
    check_measure,
    identity,
    message_id,
    name,
    parse_time,
    parse_time_lenient,
    rejecting,
    scalars,
    skew_corrected,
)

_TYPES = {t.value: t for t in EventType}
# Segment's reserved traits are camelCase; the scoring vocabulary is snake_case.
_TRAIT_ALIASES = {"createdAt": "created_at", "renewalDate": "renewal_date"}


@rejecting
def normalize_segment(payload: Any, ctx: NormalizeContext) -> Event:
    """One Segment-spec message → an :class:`Event`, or a :class:`Rejection` with a reason."""
    if not isinstance(payload, dict):
        raise Invalid(Reason.NOT_AN_OBJECT, f"expected a JSON object, got {_kind(payload)}")
    if ctx.check_size:
        check_measure(payload)
    raw_type = payload.get("type")
    if raw_type is None or raw_type == "":
        raise Invalid(Reason.MISSING_TYPE, "type is required")
    type_ = _TYPES.get(raw_type.lower()) if isinstance(raw_type, str) else None
    if type_ is None:
        raise Invalid(Reason.UNKNOWN_TYPE, f"type {str(raw_type)[:40]!r} is not a Segment call")

    mid = message_id(payload.get("messageId"), payload, "messageId")
    user_id = identity(payload.get("userId"), "userId")
    anonymous_id = identity(payload.get("anonymousId"), "anonymousId")
    if user_id is None and anonymous_id is None:
        raise Invalid(Reason.MISSING_IDENTITY, "userId or anonymousId is required")

    received_at = ctx.received_at
    if ctx.source is Source.KAFKA:
        # A direct producer replaying collected history keeps its original receipt time.
        received_at = parse_time_lenient(payload.get("receivedAt")) or received_at
    original = parse_time(payload.get("originalTimestamp"), "originalTimestamp")
    if original is None:
        original = parse_time(payload.get("timestamp"), "timestamp")
    sent_at = parse_time_lenient(payload.get("sentAt"))
    if sent_at is None:
        sent_at = ctx.sent_at
    timestamp = skew_corrected(original, sent_at, received_at)

    context = payload.get("context")
    if not isinstance(context, dict):
        context = {}
    account_id = identity(context.get("groupId"), "context.groupId")
    event_name: str | None = None
    properties: dict[str, Any] = {}
    traits: dict[str, Any] = {}

    if type_ is EventType.TRACK:
        event_name = name(payload.get("event"), "event")
        if event_name is None:
            raise Invalid(Reason.MISSING_EVENT_NAME, "track calls need an event name")
        properties = scalars(payload.get("properties"))
    elif type_ in (EventType.PAGE, EventType.SCREEN):
        props = payload.get("properties")
        properties = scalars(props)
        event_name = name(payload.get("name"), "name")
        if event_name is None and isinstance(props, dict):
            event_name = name(props.get("name"), "properties.name")
        category = payload.get("category")
        if isinstance(category, str) and category:
            properties.setdefault("category", category[:256])
    elif type_ is EventType.IDENTIFY:
        # RudderStack puts identify traits in context.traits; Segment in traits.
        traits = _traits(context.get("traits"))
        traits.update(_traits(payload.get("traits")))
    elif type_ is EventType.GROUP:
        account_id = identity(payload.get("groupId"), "groupId")
        if account_id is None:
            raise Invalid(Reason.MISSING_GROUP_ID, "group calls need a groupId")
        traits = _traits(payload.get("traits"))
    elif type_ is EventType.ALIAS:
        previous = identity(payload.get("previousId"), "previousId")
        if previous is not None:
            properties = {"previous_id": previous}

    return Event(
        workspace=ctx.workspace,
        message_id=mid,
        type=type_,
        timestamp=timestamp,
        received_at=received_at,
        source=ctx.source,
        name=event_name,
        user_id=user_id,
        anonymous_id=anonymous_id,
        account_id=account_id,
        properties=properties,
        traits=traits,
    )


def _traits(raw: Any) -> dict[str, Any]:
    traits = scalars(raw)
    for camel, snake in _TRAIT_ALIASES.items():
        if camel in traits:
            traits.setdefault(snake, traits.pop(camel))
    return traits


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__

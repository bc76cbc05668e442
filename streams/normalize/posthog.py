"""PostHog capture events → :class:`~streams.events.Event`.

Mapping (PostHog event names are kept as they are, so a ``Report Published`` capture is
the same track event as a Segment one):

- ``$identify`` and ``$set`` → identify; traits from ``$set`` then ``$set_once``;
  ``$anon_distinct_id`` becomes the anonymous id.
- ``$groupidentify`` → group call of account ``$group_key`` with traits ``$group_set``
  (no user: PostHog links people to groups through ``$groups`` on their events).
- ``$create_alias`` → alias (``properties.alias`` is the previous id).
- ``$pageview`` → page named by ``properties.name``, ``$pathname`` or ``$current_url``;
  ``$screen`` → screen named by ``$screen_name``.
- anything else → track with the event name as it is.

``distinct_id`` (top level, or in properties) is the user id. ``$groups`` attributes the
event to an account: the ``company``/``organization``/``account`` group when present,
else the first group. ``uuid`` is the message id. PostHog's own ``$``-properties are
dropped. Event time is corrected with the batch's ``sent_at`` like Segment's ``sentAt``.
"""

from __future__ import annotations

from typing import Any

from streams.events import Event, EventType
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

ACCOUNT_GROUP_TYPES = ("company", "organization", "organisation", "account")


@rejecting
def normalize_posthog(payload: Any, ctx: NormalizeContext) -> Event:
    if not isinstance(payload, dict):
        raise Invalid(Reason.NOT_AN_OBJECT, "expected a JSON object")
    if ctx.check_size:
        check_measure(payload)
    event = payload.get("event")
    if event is None or event == "":
        raise Invalid(Reason.MISSING_TYPE, "event is required")
    if not isinstance(event, str):
        raise Invalid(Reason.MISSING_EVENT_NAME, "event must be a string")
    props = payload.get("properties")
    if not isinstance(props, dict):
        props = {}

    mid = message_id(payload.get("uuid"), payload, "uuid")
    raw_distinct = payload.get("distinct_id")
    if raw_distinct is None:
        raw_distinct = props.get("distinct_id", props.get("$distinct_id"))
    user_id = identity(raw_distinct, "distinct_id")

    original = parse_time(payload.get("timestamp"), "timestamp")
    if original is None and isinstance(payload.get("offset"), int | float):
        offset = payload["offset"]
        if not isinstance(offset, bool) and 0 <= offset < 10 * 365 * 86_400_000:
            original = ctx.received_at - offset / 1000.0
    sent_at = parse_time_lenient(payload.get("sent_at")) or ctx.sent_at
    timestamp = skew_corrected(original, sent_at, ctx.received_at)

    anonymous_id: str | None = None
    account_id = _account_from_groups(props.get("$groups"))
    properties: dict[str, Any] = {}
    traits: dict[str, Any] = {}
    event_name: str | None = None

    if event in ("$identify", "$set"):
        type_ = EventType.IDENTIFY
        traits = scalars(props.get("$set_once"))
        traits.update(scalars(props.get("$set")))
        anonymous_id = identity(props.get("$anon_distinct_id"), "$anon_distinct_id")
    elif event == "$groupidentify":
        type_ = EventType.GROUP
        account_id = identity(props.get("$group_key"), "$group_key")
        if account_id is None:
            raise Invalid(Reason.MISSING_GROUP_ID, "$groupidentify needs a $group_key")
        traits = scalars(props.get("$group_set"))
        user_id = None
    elif event == "$create_alias":
        type_ = EventType.ALIAS
        previous = identity(props.get("alias"), "alias")
        if previous is not None:
            properties = {"previous_id": previous}
    elif event == "$pageview":
        type_ = EventType.PAGE
        event_name = _first_name(props, ("name", "$pathname", "$current_url"))
        properties = scalars(props, skip_dollar=True)
    elif event == "$screen":
        type_ = EventType.SCREEN
        event_name = _first_name(props, ("$screen_name", "name"))
        properties = scalars(props, skip_dollar=True)
    else:
        type_ = EventType.TRACK
        event_name = name(event, "event")
        if event_name is None:
            raise Invalid(Reason.MISSING_EVENT_NAME, "event must not be blank")
        properties = scalars(props, skip_dollar=True)
        if isinstance(props.get("$set"), dict):
            traits = scalars(props["$set"])

    if user_id is None and type_ is not EventType.GROUP:
        raise Invalid(Reason.MISSING_IDENTITY, "distinct_id is required")

    return Event(
        workspace=ctx.workspace,
        message_id=mid,
        type=type_,
        timestamp=timestamp,
        received_at=ctx.received_at,
        source=ctx.source,
        name=event_name,
        user_id=user_id,
        anonymous_id=anonymous_id,
        account_id=account_id,
        properties=properties,
        traits=traits,
    )


def _account_from_groups(groups: Any) -> str | None:
    if not isinstance(groups, dict) or not groups:
        return None
    for group_type in ACCOUNT_GROUP_TYPES:
        if group_type in groups:
            return identity(groups[group_type], f"$groups.{group_type}")
    return identity(next(iter(groups.values())), "$groups")


def _first_name(props: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = props.get(key)
        if isinstance(value, str) and value.strip():
            return name(value, key)
    return None

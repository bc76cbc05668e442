"""Segment's and RudderStack's webhook destinations: each POST is ONE Segment-spec
message carrying its own ``type``, already in Telltale's terms; it goes on to the
collector's Segment normaliser as it is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams import sources as s

CALLS = frozenset({"track", "identify", "group", "page", "screen", "alias"})


@s.mapper
def map_destination(message: dict[str, Any], _accounts: Mapping[str, str]) -> s.Outcome:
    """A destination's message → itself, or ignored when it is no Segment call."""
    kind = message.get("type")
    if not isinstance(kind, str) or kind.lower() not in CALLS:
        return s.Ignored("not a Segment call type")
    return s.Mapped([message])

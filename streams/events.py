"""The canonical event: one compact record for every product, support, billing or
relationship event, whatever source it came from.

Times are UTC epoch seconds (float). ``timestamp`` is event time, already corrected for
client clock skew the way the Segment spec does it; everything downstream (windows,
inactivity, scores) is measured on it, never on the wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    TRACK = "track"
    IDENTIFY = "identify"
    GROUP = "group"
    PAGE = "page"
    SCREEN = "screen"
    ALIAS = "alias"


class Source(StrEnum):
    SEGMENT = "segment"
    RUDDERSTACK = "rudderstack"
    POSTHOG = "posthog"
    KAFKA = "kafka"  # Segment-spec JSON produced straight into the events topic
    IMPORT = "import"  # history files loaded for replay and backtests


@dataclass(slots=True)
class Event:
    """One event in Telltale's own terms.

    Treated as immutable once handed on: a stage that needs a different event builds a
    new one; only the stage that builds an event completes it (the importer attaches
    the account). It is not a frozen dataclass only because building one takes 2.5
    times as long, and every stage builds one per event it reads.

    ``name`` is the track event name, or the page/screen name; ``None`` for identify,
    group and alias. ``account_id`` is ``None`` until identity resolution attaches it.
    ``properties`` holds track/page properties, ``traits`` identify/group traits (and
    ``context.traits``); both only carry JSON-compatible values.
    """

    workspace: str
    message_id: str
    type: EventType
    timestamp: float
    received_at: float
    source: Source
    name: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    account_id: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)

    @property
    def actor(self) -> str | None:
        """The id that stands for the person: user id when known, else anonymous id."""
        return self.user_id or self.anonymous_id

    def to_wire(self) -> dict[str, Any]:
        """Compact dict for the batch envelope; empty optional fields are left out."""
        wire: dict[str, Any] = {
            "ws": self.workspace,
            "id": self.message_id,
            "t": self.type.value,
            "ts": self.timestamp,
            "rx": self.received_at,
            "src": self.source.value,
        }
        if self.name is not None:
            wire["n"] = self.name
        if self.user_id is not None:
            wire["u"] = self.user_id
        if self.anonymous_id is not None:
            wire["a"] = self.anonymous_id
        if self.account_id is not None:
            wire["acc"] = self.account_id
        if self.properties:
            wire["p"] = self.properties
        if self.traits:
            wire["tr"] = self.traits
        return wire

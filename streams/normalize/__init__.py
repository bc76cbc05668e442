"""Normalisers: one source's payload (a decoded JSON value) plus what the receiver knows
(workspace, receipt time, source, batch ``sentAt``) → a canonical
:class:`~streams.events.Event`, or a :class:`Rejection` with a stable reason code.

Pure functions: no I/O, no clock. Any JSON value, however malformed, yields one of the
two outcomes; nothing raises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.events import Event, Source
from streams.normalize._common import (
    MAX_DEPTH,
    MAX_MESSAGE_BYTES,
    MAX_MESSAGE_ID_CHARS,
    REASONS,
    NormalizeContext,
    Reason,
    Rejection,
    id_problem,
    identity_lenient,
    parse_time_lenient,
)
from streams.normalize.kafka import normalize_direct
from streams.normalize.posthog import normalize_posthog
from streams.normalize.rudderstack import normalize_rudderstack
from streams.normalize.segment import normalize_segment

Normalizer = Callable[[Any, NormalizeContext], Event | Rejection]

NORMALIZERS: dict[Source, Normalizer] = {
    Source.SEGMENT: normalize_segment,
    Source.RUDDERSTACK: normalize_rudderstack,
    Source.POSTHOG: normalize_posthog,
    Source.KAFKA: normalize_direct,
    Source.IMPORT: normalize_segment,
}


def normalize(payload: Any, ctx: NormalizeContext) -> Event | Rejection:
    """Dispatch on ``ctx.source``."""
    return NORMALIZERS[ctx.source](payload, ctx)


def segment_family_source(message: Any) -> Source:
    """Segment and RudderStack share ``/v1/batch``; RudderStack's SDKs mark every message
    with ``channel`` or name themselves in ``context.library``."""
    if isinstance(message, dict):
        if "channel" in message:
            return Source.RUDDERSTACK
        context = message.get("context")
        if isinstance(context, dict):
            library = context.get("library")
            if isinstance(library, dict):
                lib_name = library.get("name")
                if isinstance(lib_name, str) and "rudder" in lib_name.lower():
                    return Source.RUDDERSTACK
    return Source.SEGMENT


__all__ = [
    "MAX_DEPTH",
    "MAX_MESSAGE_BYTES",
    "MAX_MESSAGE_ID_CHARS",
    "NORMALIZERS",
    "REASONS",
    "NormalizeContext",
    "Reason",
    "Rejection",
    "id_problem",
    "identity_lenient",
    "normalize",
    "normalize_direct",
    "normalize_posthog",
    "normalize_rudderstack",
    "normalize_segment",
    "parse_time_lenient",
    "segment_family_source",
]

"""Segment-spec JSON written straight into the events topic by a direct producer.

Same rules as the HTTP collector's Segment calls, with the ``kafka`` source; a
``receivedAt`` in the payload is kept (a producer replaying collected history), otherwise
receipt time is the Kafka message's timestamp.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from streams.events import Event, Source
from streams.normalize._common import NormalizeContext, Rejection
from streams.normalize.segment import normalize_segment


def normalize_direct(payload: Any, ctx: NormalizeContext) -> Event | Rejection:
    if ctx.source is not Source.KAFKA:
        ctx = replace(ctx, source=Source.KAFKA)
    return normalize_segment(payload, ctx)

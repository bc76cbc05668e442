"""RudderStack's variant of the Segment spec.

The HTTP API and payloads are Segment's, with three differences that matter here:
identify traits travel in ``context.traits`` (handled by the Segment normaliser, which
merges them), every message carries ``channel`` (ignored), and the Python SDK gzips its
bodies (handled by the collector). Events are tagged with the ``rudderstack`` source.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from streams.events import Event, Source
from streams.normalize._common import NormalizeContext, Rejection
from streams.normalize.segment import normalize_segment


def normalize_rudderstack(payload: Any, ctx: NormalizeContext) -> Event | Rejection:
    if ctx.source is not Source.RUDDERSTACK:
        ctx = replace(ctx, source=Source.RUDDERSTACK)
    return normalize_segment(payload, ctx)

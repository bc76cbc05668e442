"""What the webhook routes need to know of one vendor."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agents.sources.verify import Delivery
from streams.events import Source
from streams.sources import Mapper
from streams.sources_config import SourceConfig

Check = Callable[[Delivery, SourceConfig], bool]


@dataclass(frozen=True, slots=True)
class Vendor:
    name: str
    """The source's name in URLs, the sources file and metrics."""
    checks: Sequence[Check]
    """Ways a webhook may prove it is this vendor's; a configured one must pass."""
    map: Mapper
    stream_source: Source = Source.SEGMENT
    """How the collector normalises the mapped messages (all are Segment-spec)."""

    def verified(self, delivery: Delivery, source: SourceConfig) -> bool:
        """True when at least one check passes (unconfigured ones always fail)."""
        return any(check(delivery, source) for check in self.checks)

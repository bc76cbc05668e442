"""The one place the sources reach into the collector: its intake of Segment-spec
messages (normalise, check ids, deduplicate, group commit, dead letters) and its
dead-letter path.

The collector has no public method for either yet; this adapter is the only code that
knows their names, so a public one replaces them here alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents import collector as collector_module
from agents import metrics
from agents.collector import Collector
from streams.dlq import DeadLetter
from streams.events import Source


@dataclass(frozen=True, slots=True)
class Taken:
    accepted: int
    duplicates: int
    dead_lettered: int


class IntakeUnavailable(Exception):
    """The collector refused for now (Kafka or Redis unavailable): answer with
    ``status`` and ``headers`` so the vendor retries."""

    def __init__(self, status: int, headers: dict[str, str]) -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers


class Intake:
    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    async def accept(self, workspace: str, messages: list[dict[str, Any]], source: Source,
                     received_at: float) -> Taken:
        """Accept ``messages`` as the collector accepts an SDK's batch."""
        received = collector_module._Received(received_at, True)
        try:
            outcome = await self.collector._accept(workspace, list(messages), received, None,
                                                   lambda _message: source)
        except collector_module._Reply as reply:
            raise IntakeUnavailable(reply.status, reply.headers) from None
        return Taken(outcome.accepted, outcome.duplicates, outcome.dead_lettered)

    async def dead_letter(self, workspace: str, dead: DeadLetter) -> None:
        """Send ``dead`` to the events dead-letter topic, acknowledged."""
        try:
            await self.collector._produce(workspace, [], [dead])
        except collector_module._Reply as reply:
            raise IntakeUnavailable(reply.status, reply.headers) from None
        metrics.EVENTS_DEAD_LETTERED.labels(reason=dead.reason).inc()

"""How the sources hand canonical messages to the collector's intake (normalise, check
ids, deduplicate, group commit, dead letters) and to its dead-letter path, with the
sources' own outcome counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents import metrics
from agents.collector import Collector, CollectorUnavailable
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
        try:
            outcome = await self.collector.accept(workspace, messages, source, received_at)
        except CollectorUnavailable as busy:
            raise IntakeUnavailable(busy.status, busy.headers) from None
        return Taken(outcome.accepted, outcome.duplicates, outcome.dead_lettered)

    async def dead_letter(self, workspace: str, dead: DeadLetter) -> None:
        """Send ``dead`` to the events dead-letter topic, acknowledged."""
        try:
            await self.collector.dead_letter(workspace, dead)
        except CollectorUnavailable as busy:
            raise IntakeUnavailable(busy.status, busy.headers) from None
        metrics.EVENTS_DEAD_LETTERED.labels(reason=dead.reason).inc()

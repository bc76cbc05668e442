"""Topic names. Every topic shares one prefix so several Telltale installations (or
several test runs) can share a broker without seeing each other's data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TopicNames:
    prefix: str = "telltale"

    @property
    def events(self) -> str:
        """Raw events from the collector and direct producers, keyed by user or account."""
        return f"{self.prefix}.events"

    @property
    def events_dlq(self) -> str:
        """Input that could not be accepted, with the original payload and a reason."""
        return f"{self.prefix}.events.dlq"

    @property
    def by_account(self) -> str:
        """Batch envelopes keyed by account; also carries clock ticks."""
        return f"{self.prefix}.events.by-account"

    @property
    def health_changes(self) -> str:
        """Health-change events keyed by account (schema: streams/schemas)."""
        return f"{self.prefix}.health-changes"

    @property
    def deliveries_dlq(self) -> str:
        """Notifications (Slack, webhooks, CRM) that failed after all retries."""
        return f"{self.prefix}.deliveries.dlq"

    @property
    def actions(self) -> str:
        """What people did about accounts (acknowledge, snooze, assign, note, step done),
        keyed by account; the worklist's audit log, kept long and never compacted."""
        return f"{self.prefix}.actions"

"""Churn by type and reason: voluntary (the customer cancelled), involuntary (payments
failed and never recovered) or a downgrade (the account stayed on less), with the reason
a cancellation carries, normalised to a short vocabulary.

Evidence comes from the history's own events, per account up to its outcome date:
``Subscription Cancelled`` (``reason``, ``cancel_reason`` or ``cancellation_reason``
property), ``Payment Failed`` / ``Payment Succeeded``. An outcomes file may also say it
outright (``churn_type`` and ``churn_reason`` columns), which wins.

A reason is text from an event, so it is never shown as sent: it maps to one of
:data:`REASONS` by keyword, else ``other``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scoring import vocabulary as v
from streams.events import Event, EventType

if TYPE_CHECKING:  # importers reads the churn columns with this module's vocabulary
    from history.importers import OutcomeRecord

VOLUNTARY, INVOLUNTARY, DOWNGRADE = "voluntary", "involuntary", "downgrade"
CHURN_TYPES = (VOLUNTARY, INVOLUNTARY, DOWNGRADE)
REASONS = ("price", "missing_feature", "competitor", "no_value", "business_closed",
           "payment", "other")
UNKNOWN_REASON = "unknown"  # no cancellation said why
REASON_PROPERTIES = ("reason", "cancel_reason", "cancellation_reason")
MAX_REASON_CHARS = 200

# keyword (in the lower-cased reason, spaces and dashes as underscores) → reason; the
# first match wins, so the more specific words come first
_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("payment", "payment"), ("card", "payment"), ("billing", "payment"),
    ("competitor", "competitor"), ("switch", "competitor"), ("vendor", "competitor"),
    ("alternative", "competitor"),
    ("feature", "missing_feature"), ("missing", "missing_feature"),
    ("integration", "missing_feature"),
    ("price", "price"), ("pricing", "price"), ("budget", "price"), ("expensive", "price"),
    ("cost", "price"),
    ("no_value", "no_value"), ("value", "no_value"), ("not_using", "no_value"),
    ("no_longer_needed", "no_value"), ("unused", "no_value"), ("need", "no_value"),
    ("acquired", "business_closed"), ("closed", "business_closed"),
    ("bankrupt", "business_closed"), ("shut", "business_closed"),
)


def normalise_reason(raw: object) -> str:
    """A cancellation's stated reason as one of :data:`REASONS`."""
    if not isinstance(raw, str) or not raw.strip():
        return UNKNOWN_REASON
    text = raw.strip().lower()[:MAX_REASON_CHARS].replace(" ", "_").replace("-", "_")
    if text in REASONS:
        return text
    for word, reason in _KEYWORDS:
        if word in text:
            return reason
    return "other"


@dataclass(slots=True)
class _Evidence:
    cancelled: float | None = None
    reason: str = UNKNOWN_REASON
    failed: float | None = None  # the latest payment failure not yet followed by success


@dataclass(slots=True)
class ChurnEvidence:
    """What each account's billing and cancellation events said, fed in time order."""

    accounts: dict[str, _Evidence] = field(default_factory=dict)

    def add(self, e: Event) -> None:
        if e.type is not EventType.TRACK or e.account_id is None:
            return
        name = e.name
        if name == v.SUBSCRIPTION_CANCELLED:
            ev = self.accounts.setdefault(e.account_id, _Evidence())
            ev.cancelled = e.timestamp
            for prop in REASON_PROPERTIES:
                if prop in e.properties:
                    ev.reason = normalise_reason(e.properties[prop])
                    break
        elif name == v.PAYMENT_FAILED:
            self.accounts.setdefault(e.account_id, _Evidence()).failed = e.timestamp
        elif name == v.PAYMENT_SUCCEEDED:
            ev_ok = self.accounts.get(e.account_id)
            if ev_ok is not None:
                ev_ok.failed = None

    def classify(self, o: OutcomeRecord) -> tuple[str | None, str | None]:
        """(type, reason) of an outcome; ``(None, None)`` when the account stayed whole."""
        if o.churn_type is not None:
            return o.churn_type, o.churn_reason or UNKNOWN_REASON
        if o.outcome == "contracted":
            return DOWNGRADE, o.churn_reason or UNKNOWN_REASON
        if not o.churned:
            return None, None
        ev = self.accounts.get(o.account_id, _Evidence())
        reason = o.churn_reason or ev.reason
        if reason == "payment" or (ev.failed is not None and ev.failed <= o.epoch
                                   and (ev.cancelled is None or ev.reason == UNKNOWN_REASON)):
            return INVOLUNTARY, "payment"
        return VOLUNTARY, reason


def classify_outcomes(events: list[Event] | None, outcomes: list[OutcomeRecord],
                      ) -> dict[str, tuple[str | None, str | None]]:
    """Type and reason per account with an outcome, from ``events`` (time order)."""
    evidence = ChurnEvidence()
    for e in events or ():
        evidence.add(e)
    return {o.account_id: evidence.classify(o) for o in outcomes}

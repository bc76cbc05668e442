"""Event names Telltale recognises beyond the configurable activity events (COMMON event
vocabulary): support, billing and relationship events, and the expansion interests, with
the properties of each that the core reads.

``docs/events.md`` and ``streams/schemas/events.v1.json`` document this vocabulary; a
test keeps both in step with this module and with what ``scoring/apply.py`` reads.
"""

from __future__ import annotations

TICKET_OPENED = "Ticket Opened"
TICKET_RESOLVED = "Ticket Resolved"
CSAT_SUBMITTED = "CSAT Submitted"
PAYMENT_FAILED = "Payment Failed"
PAYMENT_SUCCEEDED = "Payment Succeeded"
PLAN_DOWNGRADED = "Plan Downgraded"
SEATS_CHANGED = "Seats Changed"
SUBSCRIPTION_CANCELLED = "Subscription Cancelled"
NPS_SUBMITTED = "NPS Submitted"
MEETING_HELD = "Meeting Held"
MEETING_MISSED = "Meeting Missed"
QBR_HELD = "QBR Held"
QBR_SKIPPED = "QBR Skipped"
FEATURE_GATED_CLICKED = "Feature Gated Clicked"
UPGRADE_PAGE_VIEWED = "Upgrade Page Viewed"
HIGHER_TIER_ASKED = "Higher Tier Asked"

# Events that are about the account's relationship with us, not product use: they never
# count as activity (a support ticket is not engagement).
NON_ACTIVITY = frozenset(
    {
        TICKET_OPENED,
        TICKET_RESOLVED,
        CSAT_SUBMITTED,
        PAYMENT_FAILED,
        PAYMENT_SUCCEEDED,
        PLAN_DOWNGRADED,
        SEATS_CHANGED,
        SUBSCRIPTION_CANCELLED,
        NPS_SUBMITTED,
        MEETING_HELD,
        MEETING_MISSED,
        QBR_HELD,
        QBR_SKIPPED,
    }
)

MEETING_KINDS = {
    MEETING_HELD: "meeting_held",
    MEETING_MISSED: "meeting_missed",
    QBR_HELD: "qbr_held",
    QBR_SKIPPED: "qbr_skipped",
}

# Properties the core reads, by name. apply.py reads them only through these constants.
TICKET_ID = "ticket_id"
SCORE = "score"
AMOUNT = "amount"
FROM_PLAN = "from_plan"
TO_PLAN = "to_plan"
SEATS = "seats"
PREVIOUS_SEATS = "previous_seats"
FEATURE = "feature"

# What each event carries that the core reads: event name -> property names. An event
# not listed carries nothing the core reads (its name and time are the signal).
EVENT_PROPERTIES: dict[str, tuple[str, ...]] = {
    TICKET_OPENED: (TICKET_ID,),
    TICKET_RESOLVED: (TICKET_ID,),
    CSAT_SUBMITTED: (SCORE,),
    PAYMENT_FAILED: (AMOUNT,),
    PAYMENT_SUCCEEDED: (),
    PLAN_DOWNGRADED: (FROM_PLAN, TO_PLAN),
    SEATS_CHANGED: (SEATS, PREVIOUS_SEATS),
    SUBSCRIPTION_CANCELLED: (),
    NPS_SUBMITTED: (SCORE,),
    MEETING_HELD: (),
    MEETING_MISSED: (),
    QBR_HELD: (),
    QBR_SKIPPED: (),
    FEATURE_GATED_CLICKED: (FEATURE,),
    UPGRADE_PAGE_VIEWED: (),
    HIGHER_TIER_ASKED: (),
}

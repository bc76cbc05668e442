"""Support: ticket spikes and tickets open too long."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from scoring.labels import ReasonType
from scoring.signals.unit import RISK, Detected, Look, SignalType, SignalUnit
from state.aggregates import AccountState

if TYPE_CHECKING:
    from scoring.config import ScoringConfig

TICKET_SPIKE = SignalType(
    "ticket_spike", RISK, "`ticket_spike_count` tickets within `ticket_spike_days`",
    examples=({"count": 4, "days": 10},),
    routes=("support",), reason=ReasonType.SUPPORT_SPIKE,
)
TICKET_OPEN_LONG = SignalType(
    "ticket_open_long", RISK, "a ticket open longer than `ticket_open_days`",
    examples=({"ticket_id": "T-17", "days": 6},),
    routes=("support",), reason=ReasonType.TICKET_OPEN_LONG,
)


def detect(look: Look) -> list[Detected]:
    account, f, sg, today = look.account, look.f, look.config.signals, look.f.today
    out: list[Detected] = []
    if f.tickets_recent >= sg.ticket_spike_count:
        out.append(Detected(
            TICKET_SPIKE.name, TICKET_SPIKE.name, None, TICKET_SPIKE.severity, today,
            {"count": f.tickets_recent, "days": sg.ticket_spike_days},
        ))
    for tid, days_open in f.aged_tickets:
        opened = account.open_tickets[tid]
        out.append(Detected(
            TICKET_OPEN_LONG.name, f"{TICKET_OPEN_LONG.name}:{tid}", None,
            TICKET_OPEN_LONG.severity, opened + sg.ticket_open_days,
            {"ticket_id": tid, "days": days_open},
        ))
    return out


def due(account: AccountState, today: int, config: ScoringConfig) -> Iterable[int]:
    """Every day while a ticket is open (its age grows); a spike ends when its tickets
    leave ``ticket_spike_days``."""
    if account.open_tickets:
        return (today + 1,)
    spike = config.signals.ticket_spike_days
    return [d + spike for d in account.ticket_days]


UNIT = SignalUnit(
    "support", "Support", (TICKET_SPIKE, TICKET_OPEN_LONG),
    ("signals.ticket_spike_count", "signals.ticket_spike_days", "signals.ticket_open_days"),
    detect, due,
)

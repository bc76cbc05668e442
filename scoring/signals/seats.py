"""Seat utilisation: active users of the last 30 days against the 30 before."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from scoring.labels import ReasonType
from scoring.signals.unit import RISK, Detected, Look, SignalType, SignalUnit, fall
from state.aggregates import AccountState

if TYPE_CHECKING:
    from scoring.config import ScoringConfig

SEAT_UTILISATION_DROP = SignalType(
    "seat_utilisation_drop", RISK,
    "active users of 30 days fell `seat_drop_pct` against the 30 before",
    examples=({"previous": 12, "current": 8, "seats": 20, "drop_pct": 33.3},),
    routes=("usage_falling",), reason=ReasonType.SEATS_FELL,
)


def detect(look: Look) -> list[Detected]:
    """While an episode lasts it is measured against the level it started from, so a
    decline that keeps going (and drags the earlier month down with it) is not mistaken
    for recovery."""
    f, sg = look.f, look.config.signals
    episode = look.ongoing.get(SEAT_UTILISATION_DROP.name)
    base = episode.detail["previous"] if episode is not None else f.active_prev_30
    if base < sg.seat_drop_min_users or not base:
        return []
    return fall(look, SEAT_UTILISATION_DROP, episode, base, f.active_30, sg.seat_drop_pct,
                "drop_pct", {"seats": f.seats})


def due(account: AccountState, today: int, config: ScoringConfig) -> Iterable[int]:
    """Every day while someone was active within the two 30-day windows."""
    for s in account.users.values():
        if s.last_day is not None and today - s.last_day < 60:
            return (today + 1,)
    return ()


UNIT = SignalUnit(
    "seats", "Seat utilisation", (SEAT_UTILISATION_DROP,),
    ("signals.seat_drop_pct", "signals.seat_drop_min_users"), detect, due,
)

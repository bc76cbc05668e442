"""Core-feature decline: core ("sticky") events of 28 days against the 28 before."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from scoring.labels import ReasonType
from scoring.signals.unit import RISK, Detected, Look, SignalType, SignalUnit, fall
from state.aggregates import AccountState

if TYPE_CHECKING:
    from scoring.config import ScoringConfig

CORE_FEATURE_DECLINE = SignalType(
    "core_feature_decline", RISK, "core-feature use of 28 days fell `core_decline_pct`",
    examples=({"previous": 40, "current": 20, "decline_pct": 50.0},),
    routes=("usage_falling",), reason=ReasonType.CORE_USAGE_FELL,
)


def detect(look: Look) -> list[Detected]:
    """The same episode rule as a seat drop; a new one needs enough events in the 28 days
    before and those days covered by history."""
    f, sg = look.f, look.config.signals
    episode = look.ongoing.get(CORE_FEATURE_DECLINE.name)
    if episode is not None:
        base: int | None = episode.detail["previous"]
    elif f.core_prev_28 >= sg.core_decline_min_events and f.covered(29, 56) >= 28:
        base = f.core_prev_28
    else:
        base = None
    if not base:
        return []
    return fall(look, CORE_FEATURE_DECLINE, episode, base, f.core_28, sg.core_decline_pct,
                "decline_pct", {})


def due(account: AccountState, today: int, config: ScoringConfig) -> Iterable[int]:
    """Every day while a core event is in one of the two 28-day windows."""
    for day in account.core_days:
        if today - day <= 56:
            return (today + 1,)
    return ()


UNIT = SignalUnit(
    "core_features", "Core-feature decline", (CORE_FEATURE_DECLINE,),
    ("signals.core_decline_pct", "signals.core_decline_min_events"), detect, due,
)

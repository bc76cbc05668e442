"""Onboarding: milestones missed while the account is young enough to be onboarding."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from scoring.labels import ReasonType
from scoring.signals.unit import RISK, Detected, Look, SignalType, SignalUnit
from scoring.stages import created_day
from state.aggregates import AccountState

if TYPE_CHECKING:
    from scoring.config import ScoringConfig

ONBOARDING_MILESTONE_MISSED = SignalType(
    "onboarding_milestone_missed", RISK, "an onboarding milestone past its due day",
    examples=({"milestone": "first_report", "due_days": 14, "late_days": 3},),
    routes=("onboarding",), reason=ReasonType.ONBOARDING_MISSED,
)


def detect(look: Look) -> list[Detected]:
    account, config, born, today = look.account, look.config, look.created_day, look.f.today
    kind = ONBOARDING_MILESTONE_MISSED
    out: list[Detected] = []
    if born is not None and today - born < config.stages.mature_days:
        for ms in config.milestones:
            due_day = born + ms.due_days
            if ms.name not in account.milestones and today > due_day:
                out.append(Detected(
                    kind.name, f"{kind.name}:{ms.name}", None, kind.severity, due_day + 1,
                    {"milestone": ms.name, "due_days": ms.due_days,
                     "late_days": today - due_day},
                ))
    return out


def due(account: AccountState, today: int, config: ScoringConfig) -> Iterable[int]:
    """The day after each milestone's due day."""
    born = created_day(account)
    if born is None:
        return ()
    return [born + ms.due_days + 1 for ms in config.milestones]


UNIT = SignalUnit(
    "onboarding", "Onboarding", (ONBOARDING_MILESTONE_MISSED,),
    ("milestones", "stages.mature_days"), detect, due,
)

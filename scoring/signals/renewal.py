"""Renewal checkpoints (info): the nearest checkpoint already passed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from scoring.signals.unit import INFO, Detected, Look, SignalType, SignalUnit
from state.aggregates import AccountState

if TYPE_CHECKING:
    from scoring.config import ScoringConfig

RENEWAL_CHECKPOINT = SignalType(
    "renewal_checkpoint", INFO,
    "the nearest renewal checkpoint passed (`renewal.checkpoints`)",
    examples=({"checkpoint": 90, "days_to_renewal": 88},
              {"checkpoint": 45, "days_to_renewal": 1}),
    routes=("renewal_checkpoint",),
)


def detect(look: Look) -> list[Detected]:
    account, config, left = look.account, look.config, look.days_to_renewal
    kind = RENEWAL_CHECKPOINT
    if left is None or left <= 0 or account.renewal_day is None:
        return []
    passed = [c for c in config.renewal.checkpoints if left <= c]
    if not passed:
        return []
    c = min(passed)
    return [Detected(kind.name, f"{kind.name}:T-{c}:{account.renewal_day}", None,
                     kind.severity, account.renewal_day - c,
                     {"checkpoint": c, "days_to_renewal": left})]


def due(account: AccountState, today: int, config: ScoringConfig) -> Iterable[int]:
    """Each checkpoint's day."""
    if account.renewal_day is None:
        return ()
    return [account.renewal_day - c for c in config.renewal.checkpoints]


UNIT = SignalUnit(
    "renewal", "Renewal checkpoints", (RENEWAL_CHECKPOINT,), ("renewal.checkpoints",),
    detect, due,
)

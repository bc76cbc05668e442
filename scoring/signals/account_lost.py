"""Account lost: nobody active for ``signals.account_lost_days``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from scoring.labels import ReasonType
from scoring.signals.unit import RISK, Detected, Look, SignalType, SignalUnit
from state.aggregates import DAY, AccountState

if TYPE_CHECKING:
    from scoring.config import ScoringConfig

ACCOUNT_INACTIVE = SignalType(
    "account_inactive", RISK, "nobody active for `account_lost_days`",
    examples=({"days": 45},),
    routes=("account_lost",), reason=ReasonType.ACCOUNT_INACTIVE,
)


def detect(look: Look) -> list[Detected]:
    f, sg, today = look.f, look.config.signals, look.f.today
    kind = ACCOUNT_INACTIVE
    if f.inactive_days is None or f.inactive_days < sg.account_lost_days:
        return []
    last = today - f.inactive_days
    return [Detected(kind.name, f"{kind.name}:{last}", None, kind.severity,
                     last + sg.account_lost_days, {"days": f.inactive_days})]


def due(account: AccountState, today: int, config: ScoringConfig) -> Iterable[int]:
    """``account_lost_days`` after the last activity."""
    if account.last_seen is None:
        return ()
    return (int(account.last_seen // DAY) + config.signals.account_lost_days,)


UNIT = SignalUnit(
    "account_lost", "Account lost", (ACCOUNT_INACTIVE,), ("signals.account_lost_days",),
    detect, due,
)

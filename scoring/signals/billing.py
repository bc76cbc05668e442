"""Billing: failed payments, plan downgrades and seat reductions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from scoring.labels import ReasonType
from scoring.signals.unit import RISK, Detected, Look, SignalType, SignalUnit
from state.aggregates import AccountState

if TYPE_CHECKING:
    from scoring.config import ScoringConfig

PAYMENT_FAILED = SignalType(
    "payment_failed", RISK, "a failed payment, until paid",
    examples=({"amount": 1200}, {"amount": None}),
    routes=("billing",), reason=ReasonType.PAYMENT_FAILED,
)
PLAN_DOWNGRADED = SignalType(
    "plan_downgraded", RISK, "a downgrade within `downgrade_days`",
    examples=({"from": "pro", "to": "starter"}, {"from": None, "to": None}),
    routes=("billing",), reason=ReasonType.PLAN_DOWNGRADED,
)
SEATS_REDUCED = SignalType(
    "seats_reduced", RISK, "a seat reduction within `downgrade_days`",
    examples=({"from": 40, "to": 25},),
    routes=("billing",), reason=ReasonType.SEATS_REDUCED,
)
#: The types the renewal forecast counts as billing trouble.
BILLING_TYPES = frozenset({PAYMENT_FAILED.name, PLAN_DOWNGRADED.name, SEATS_REDUCED.name})


def detect(look: Look) -> list[Detected]:
    account, sg, today = look.account, look.config.signals, look.f.today
    out: list[Detected] = []
    if account.payment_failed is not None:
        day, amount = account.payment_failed
        out.append(Detected(
            PAYMENT_FAILED.name, f"{PAYMENT_FAILED.name}:{day}", None, PAYMENT_FAILED.severity,
            day, {"amount": amount},
        ))
    if account.downgrade is not None and today - account.downgrade[0] < sg.downgrade_days:
        day, frm, to = account.downgrade
        out.append(Detected(
            PLAN_DOWNGRADED.name, f"{PLAN_DOWNGRADED.name}:{day}", None,
            PLAN_DOWNGRADED.severity, day, {"from": frm, "to": to},
        ))
    if account.seat_reduction is not None and today - account.seat_reduction[0] < sg.downgrade_days:
        sday, sfrom, sto = account.seat_reduction
        out.append(Detected(
            SEATS_REDUCED.name, f"{SEATS_REDUCED.name}:{sday}", None, SEATS_REDUCED.severity,
            sday, {"from": sfrom, "to": sto},
        ))
    return out


def due(account: AccountState, today: int, config: ScoringConfig) -> Iterable[int]:
    """A downgrade or seat cut stops being recent ``downgrade_days`` after it (a failed
    payment lasts until paid: no time rule)."""
    days = config.signals.downgrade_days
    return [rec[0] + days for rec in (account.downgrade, account.seat_reduction)
            if rec is not None]


UNIT = SignalUnit(
    "billing", "Billing", (PAYMENT_FAILED, PLAN_DOWNGRADED, SEATS_REDUCED),
    ("signals.downgrade_days",), detect, due,
)

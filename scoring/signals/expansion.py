"""Expansion leads: seat saturation with advanced use, gated-feature clicks, upgrade
interest."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from scoring.labels import ReasonType
from scoring.signals.unit import EXPANSION, Detected, Look, SignalType, SignalUnit, after
from state.aggregates import AccountState

if TYPE_CHECKING:
    from scoring.config import ScoringConfig

SEAT_SATURATION = SignalType(
    "seat_saturation", EXPANSION, "nearly every seat active, with advanced use",
    examples=({"active": 19, "seats": 20, "pct": 95},),
    routes=("upsell",), reason=ReasonType.SEAT_SATURATION,
)
GATED_FEATURE_CLICKED = SignalType(
    "gated_feature_clicked", EXPANSION, "users clicked features of a higher plan",
    examples=({"count": 1, "features": ["sso"]}, {"count": 3, "features": []}),
    routes=("upsell",), reason=ReasonType.GATED_FEATURE,
)
UPGRADE_INTEREST = SignalType(
    "upgrade_interest", EXPANSION, "users looked at upgrading",
    examples=({"count": 1}, {"count": 4}),
    routes=("upsell",), reason=ReasonType.UPGRADE_INTEREST,
)


def detect(look: Look) -> list[Detected]:
    account, f, today = look.account, look.f, look.f.today
    ex = look.config.expansion
    out: list[Detected] = []
    if f.seats_known and account.advanced_day is not None and (
        today - account.advanced_day < ex.advanced_days
    ):
        pct = 100.0 * f.active_30 / f.seats
        # ends only well below the threshold: one person more or less in a small
        # account must not start and end it every few days
        if pct >= ex.saturation_pct - 20:
            out.append(Detected(
                SEAT_SATURATION.name, SEAT_SATURATION.name, None, SEAT_SATURATION.severity,
                today, {"active": f.active_30, "seats": f.seats, "pct": round(pct)},
                sustain_only=pct < ex.saturation_pct,
            ))
    gated = [g for g in account.gated if today - g[0] < ex.recent_days]
    if gated:
        feats = sorted({g[1] for g in gated if g[1]})
        out.append(Detected(
            GATED_FEATURE_CLICKED.name, GATED_FEATURE_CLICKED.name, None,
            GATED_FEATURE_CLICKED.severity, gated[0][0],
            {"count": len(gated), "features": feats},
        ))
    ups = [u for u in account.upgrade_days if today - u[0] < ex.recent_days]
    if ups:
        out.append(Detected(
            UPGRADE_INTEREST.name, UPGRADE_INTEREST.name, None, UPGRADE_INTEREST.severity,
            ups[0][0], {"count": len(ups)},
        ))
    return out


def due(account: AccountState, today: int, config: ScoringConfig) -> Iterable[int]:
    """Advanced use leaves ``advanced_days``, clicks and visits leave ``recent_days``.
    (Saturation also moves with the 30-day active users, which the seat rule ticks.)"""
    ex = config.expansion
    days = [*after(account.gated, ex.recent_days), *after(account.upgrade_days, ex.recent_days)]
    if account.advanced_day is not None:
        days.append(account.advanced_day + ex.advanced_days)
    return days


UNIT = SignalUnit(
    "expansion", "Expansion", (SEAT_SATURATION, GATED_FEATURE_CLICKED, UPGRADE_INTEREST),
    ("expansion.saturation_pct", "expansion.advanced_days", "expansion.recent_days",
     "expansion.upgrade_pages"),
    detect, due,
)

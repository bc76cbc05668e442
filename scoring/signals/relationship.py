"""Relationship: NPS detractors and missed meetings or skipped QBRs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from scoring.labels import ReasonType
from scoring.signals.unit import RISK, Detected, Look, SignalType, SignalUnit, after, user_name
from state.aggregates import AccountState

if TYPE_CHECKING:
    from scoring.config import ScoringConfig

NPS_DETRACTOR = SignalType(
    "nps_detractor", RISK, "an NPS answer below `nps_detractor_below` within `nps_days`",
    examples=({"score": 3, "name": "Dana"}, {"score": 5, "name": None}),
    routes=("detractor",), reason=ReasonType.NPS_DETRACTOR,
)
MEETING_MISSED = SignalType(
    "meeting_missed", RISK, "a missed meeting or skipped QBR within `meeting_missed_days`",
    examples=({"kind": "meeting_missed"}, {"kind": "qbr_skipped"}),
    routes=("meetings",), reason=ReasonType.MEETING_MISSED,
)
_MISSED = ("meeting_missed", "qbr_skipped")


def detect(look: Look) -> list[Detected]:
    """The latest answer per person within the window; the last missed meeting unless a
    held one came after it."""
    account, sg, today = look.account, look.config.signals, look.f.today
    out: list[Detected] = []
    latest: dict[str | None, list[Any]] = {}
    for rec in account.nps:
        if today - rec[0] < sg.nps_days:
            latest[rec[2]] = rec
    for who, (nday, score, _) in sorted(latest.items(), key=lambda kv: str(kv[0])):
        if score < sg.nps_detractor_below:
            out.append(Detected(
                NPS_DETRACTOR.name, f"{NPS_DETRACTOR.name}:{who or '-'}:{nday}", who,
                NPS_DETRACTOR.severity, nday,
                {"score": score, "name": user_name(account, who)},
            ))
    last_missed: list[Any] | None = None
    for rec in account.meetings:
        if rec[1] in _MISSED:
            last_missed = rec
        elif last_missed is not None and rec[0] >= last_missed[0]:
            last_missed = None  # a held meeting since then repairs it
    if last_missed is not None and today - last_missed[0] < sg.meeting_missed_days:
        out.append(Detected(
            MEETING_MISSED.name, f"{MEETING_MISSED.name}:{last_missed[0]}", None,
            MEETING_MISSED.severity, last_missed[0], {"kind": last_missed[1]},
        ))
    return out


def due(account: AccountState, today: int, config: ScoringConfig) -> Iterable[int]:
    """Answers and meetings leave their windows."""
    sg = config.signals
    return [*after(account.nps, sg.nps_days), *after(account.meetings, sg.meeting_missed_days)]


UNIT = SignalUnit(
    "relationship", "Relationship", (NPS_DETRACTOR, MEETING_MISSED),
    ("signals.nps_detractor_below", "signals.nps_days", "signals.meeting_missed_days"),
    detect, due,
)

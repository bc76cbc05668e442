"""People going quiet: a power user, or a regular user, not seen past a threshold."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from scoring.labels import ReasonType
from scoring.signals.unit import INFO, RISK, Detected, Look, SignalType, SignalUnit
from state.aggregates import AccountState

if TYPE_CHECKING:
    from scoring.config import ScoringConfig


_USER_INACTIVE_PREFIX = "user_inactive_"


def user_inactive_type(days: int) -> str:
    """The signal type of a regular user quiet for ``days`` days (a configured threshold)."""
    return f"{_USER_INACTIVE_PREFIX}{days}d"


POWER_USER_INACTIVE = SignalType(
    "power_user_inactive", RISK,
    "a power user has been quiet `power_user_inactive_days`",
    examples=({"user_id": "u1", "name": "Dana", "days": 21},),
    routes=("champion_quiet",), reason=ReasonType.CHAMPION_QUIET,
)
USER_INACTIVE = SignalType(
    "user_inactive_<n>d", RISK,
    "a regular user has been quiet `n` days, one type per `user_inactive_days`",
    examples=({"user_id": "u2", "name": "Sam", "days": 10},
              {"user_id": "u2", "name": "Sam", "days": 1}),
    routes=("user_inactive",), text_key=user_inactive_type(10),
    route_pattern="user_inactive_*", severity_doc="info (first threshold), risk",
    expand=lambda config: tuple(user_inactive_type(n) for n in config.signals.user_inactive_days),
)


def quiet_rank(signal_type: str) -> int:
    """How strong a person's quiet signal is: the threshold of a regular user's
    (:func:`user_inactive_type`), above any of them a power user's; -1 for a signal that
    is not about a quiet person. One sentence per quiet person names the strongest."""
    if signal_type == POWER_USER_INACTIVE.name:
        return 10_000
    if signal_type.startswith(_USER_INACTIVE_PREFIX):
        return int(signal_type[len(_USER_INACTIVE_PREFIX):-1])
    return -1


def detect(look: Look) -> list[Detected]:
    """Power users and regular users quiet past their thresholds (days).

    An open episode ends only when the person is really back (quiet for less than half
    the threshold); an older event delivered late must not end it and start it again a
    day or two later."""
    account, f, ongoing = look.account, look.f, look.ongoing
    sg, today = look.config.signals, look.f.today
    out: list[Detected] = []
    power = set(f.power)
    for uid, s in account.users.items():
        last = s.last_day
        if last is None:
            continue
        quiet = today - last
        if quiet >= sg.user_forget_days:
            continue
        name = s.name or uid
        detail = {"user_id": uid, "name": name, "days": quiet}
        ident = f"power_user_inactive:{uid}"
        threshold = sg.power_user_inactive_days
        if uid in power and (quiet >= threshold or (
                ident in ongoing and quiet * 2 >= threshold)):
            out.append(Detected(POWER_USER_INACTIVE.name, ident, uid,
                                POWER_USER_INACTIVE.severity, last + threshold, detail,
                                sustain_only=quiet < threshold))
        if (s.mask & ((1 << 30) - 1)).bit_count() >= sg.user_regular_active_days:
            for n in sg.user_inactive_days:
                kind = user_inactive_type(n)
                ident = f"{kind}:{uid}"
                if quiet >= n or (ident in ongoing and quiet * 2 >= n):
                    out.append(Detected(
                        kind, ident, uid,
                        INFO if n == sg.user_inactive_days[0] else USER_INACTIVE.severity,
                        last + n, detail, sustain_only=quiet < n,
                    ))
    return out


def due(account: AccountState, today: int, config: ScoringConfig) -> Iterable[int]:
    """Every day while anyone is still counted: quiet thresholds are days since seen."""
    forget = config.signals.user_forget_days
    for s in account.users.values():
        if s.last_day is not None and today - s.last_day <= forget:
            return (today + 1,)
    return ()


UNIT = SignalUnit(
    "people", "People going quiet", (POWER_USER_INACTIVE, USER_INACTIVE),
    ("signals.power_user_inactive_days", "signals.user_inactive_days",
     "signals.user_regular_active_days", "signals.user_forget_days"),
    detect, due,
)

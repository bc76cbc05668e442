"""Which signal raises which attention reason is said once, on the signal's unit: attention
reads it from the registry, so a unit that declares a reason needs no other edit."""

from __future__ import annotations

import pytest

from scoring import attention, signals
from scoring.attention import EXPANSION_REASONS, HealthFacts, ReasonType, decide
from scoring.config import load_config
from scoring.signals import SignalType, SignalUnit, signal_reasons
from scoring.signals.unit import RISK, Detected, Look
from state.aggregates import DAY, AccountState, SignalState

RULES = load_config().attention
TODAY = 20_000
#: A healthy account with no renewal in sight: any reason comes from the signal alone.
CALM = HealthFacts(today=TODAY, score=85, band="healthy", score_before=85, change_30d=0,
                   forecast=None, segment="smb", arr=None, renewal_day=None,
                   renewal_window=60)
REASONED = [(unit, kind) for unit, kind in signals.signal_kinds() if kind.reason is not None]


def _never(look: Look) -> list[Detected]:
    return []


def _no_day(account: AccountState, today: int, config: object) -> list[int]:
    return []


LOCAL = SignalType("test_local_silence", RISK, "a condition only this test knows",
                   examples=({"days": 50},), reason=ReasonType.ACCOUNT_INACTIVE)
LOCAL_UNIT = SignalUnit("local", "Test-local", (LOCAL,), ("signals.account_lost_days",),
                        _never, _no_day)


def _active(kind: SignalType) -> SignalState:
    detail = dict(kind.examples[0])
    return SignalState(kind.name, f"{kind.name}:x@{TODAY - 3}", "u1", kind.severity,
                       (TODAY - 3) * DAY, detail)


def test_attention_keeps_no_table_of_its_own() -> None:
    assert attention.SIGNAL_REASONS is signals.SIGNAL_REASONS
    assert dict(attention.SIGNAL_REASONS) == signal_reasons(signals.UNITS)
    assert dict(attention.SIGNAL_REASONS) == {kind.name: kind.reason for _, kind in REASONED}


def test_a_reason_declared_on_a_unit_is_the_only_edit_it_needs() -> None:
    widened = signal_reasons((*signals.UNITS, LOCAL_UNIT))
    assert widened == {**signals.SIGNAL_REASONS, "test_local_silence": ReasonType.ACCOUNT_INACTIVE}
    assert "test_local_silence" not in signals.SIGNAL_REASONS  # nothing leaked into the registry


@pytest.mark.parametrize("pair", REASONED, ids=lambda pair: pair[1].name)
def test_every_signal_with_a_reason_puts_the_account_on_the_list(
        pair: tuple[SignalUnit, SignalType]) -> None:
    _, kind = pair
    a = decide(CALM, [_active(kind)], RULES)
    raised = [r.type for r in (*a.reasons, *a.expansion)]
    assert raised == [kind.reason]
    listed = a.expansion if kind.severity == "expansion" else a.reasons
    assert [r.key for r in listed] == [f"{kind.name}:x@{TODAY - 3}"]


def test_signals_without_a_reason_raise_none() -> None:
    quiet = [kind for _, kind in signals.signal_kinds() if kind.reason is None]
    assert {k.name for k in quiet} >= {"user_inactive_<n>d"}
    for kind in quiet:
        for name in kind.names(load_config()):
            a = decide(CALM, [_active(SignalType(name, kind.severity, kind.holds,
                                                 kind.examples))], RULES)
            assert a.reasons == a.expansion == (), name


def test_expansion_leads_are_the_reasons_of_expansion_signals() -> None:
    leads = {ReasonType.SEAT_SATURATION, ReasonType.GATED_FEATURE, ReasonType.UPGRADE_INTEREST}
    assert leads == EXPANSION_REASONS


def test_a_type_per_threshold_cannot_raise_a_reason() -> None:
    with pytest.raises(ValueError, match="per threshold"):
        SignalType("quiet_<n>d", RISK, "quiet n days", examples=({"days": 3},),
                   reason=ReasonType.CHAMPION_QUIET, expand=lambda config: ("quiet_3d",))

"""The registry of signal units, and what is read from it: detection, the catalogue of
types, due days, routing patterns and the signals document.

Adding a signal means adding a unit (one module in this package) and listing it in
:data:`UNITS`; the registry test (``tests/scoring/test_signal_units.py``) then checks it
has its configuration, text, documentation, due rule and routing tags.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from scoring.labels import ReasonType
from scoring.signals import (
    account_lost,
    billing,
    core_features,
    expansion,
    onboarding,
    people,
    relationship,
    renewal,
    seats,
    support,
)
from scoring.signals.unit import Detected, Look, SignalType, SignalUnit
from state.aggregates import AccountState, SignalState

if TYPE_CHECKING:
    from scoring.config import ScoringConfig
    from scoring.scores import Facts

#: Every signal unit, in the order their detections are listed.
UNITS: tuple[SignalUnit, ...] = (
    people.UNIT,
    seats.UNIT,
    core_features.UNIT,
    support.UNIT,
    billing.UNIT,
    relationship.UNIT,
    onboarding.UNIT,
    account_lost.UNIT,
    expansion.UNIT,
    renewal.UNIT,
)

_DETECTORS = tuple(unit.detect for unit in UNITS)
#: The units' due-time rules (see :func:`scoring.engine.next_due`), in registry order.
DUE_RULES = tuple(unit.due for unit in UNITS)


def signal_kinds() -> Iterator[tuple[SignalUnit, SignalType]]:
    """Every declared type with the unit that declares it, in registry order."""
    for unit in UNITS:
        for kind in unit.types:
            yield unit, kind


#: Every type with a fixed name, in registry order; types per configured threshold
#: (:func:`~scoring.signals.people.user_inactive_type`) are not listed here.
FIXED_SIGNAL_TYPES: tuple[str, ...] = tuple(
    kind.name for _, kind in signal_kinds() if kind.expand is None)


def signal_reasons(units: Iterable[SignalUnit] = UNITS) -> dict[str, ReasonType]:
    """Signal type → the attention reason it raises, as ``units`` declare it (a type
    without a reason is not one on its own: a regular user quiet 10 days, a renewal
    checkpoint)."""
    return {kind.name: kind.reason for unit in units for kind in unit.types
            if kind.reason is not None}


#: The registry's :func:`signal_reasons`: what :func:`scoring.attention.decide` reads.
SIGNAL_REASONS: Mapping[str, ReasonType] = signal_reasons()


def signal_types(config: ScoringConfig) -> tuple[str, ...]:
    """Every signal type :func:`detect` can emit under ``config``: the fixed names first,
    then those per configured threshold."""
    per_threshold = [n for _, kind in signal_kinds() if kind.expand is not None
                     for n in kind.names(config)]
    return (*FIXED_SIGNAL_TYPES, *per_threshold)


def _active_by_ident(active: dict[str, SignalState]) -> dict[str, SignalState]:
    return {sig.key.rsplit("@", 1)[0]: sig for sig in active.values()}


def detect(
    account: AccountState, f: Facts, config: ScoringConfig, created_day: int | None,
    days_to_renewal: int | None,
) -> list[Detected]:
    """All conditions that hold at ``f.today`` (hysteresis-only ones flagged), unit by
    unit in registry order."""
    look = Look(account, f, config, _active_by_ident(account.signals), created_day,
                days_to_renewal)
    out: list[Detected] = []
    for family in _DETECTORS:
        out.extend(family(look))
    return out


def routing_patterns(tag: str) -> tuple[str, ...]:
    """The globs of the types that carry routing ``tag``, in registry order."""
    return tuple(kind.pattern for _, kind in signal_kinds() if tag in kind.routes)


def routing_tags() -> frozenset[str]:
    """Every routing tag some type carries."""
    return frozenset(tag for _, kind in signal_kinds() for tag in kind.routes)


def _first_line(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n")[0].split()).replace("``", "`")


def signals_markdown() -> str:
    """The generated part of ``docs/signals.md``: one row per declared type, then one
    per unit with the settings it reads and its due rule."""
    rows = ["| type | severity | holds while | attention reason | routing tags |",
            "|---|---|---|---|---|"]
    for _, kind in signal_kinds():
        reason = f"`{kind.reason}`" if kind.reason is not None else "none"
        tags = ", ".join(f"`{t}`" for t in kind.routes)
        rows.append(f"| `{kind.name}` | {kind.severity_doc or kind.severity} | {kind.holds} "
                    f"| {reason} | {tags} |")
    rows += ["", "| family | module | types | settings | due again |", "|---|---|---|---|---|"]
    for unit in UNITS:
        types = ", ".join(f"`{k.name}`" for k in unit.types)
        settings = ", ".join(f"`{s}`" for s in unit.settings)
        rows.append(f"| {unit.title} | `scoring/signals/{unit.family}.py` | {types} "
                    f"| {settings} | {_first_line(unit.due.__doc__)} |")
    return "\n".join(rows)

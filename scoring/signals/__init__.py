"""Signals: named conditions with episodes (an onset, a resolution, a stable key).

One module per family of signals, each declaring one :class:`SignalUnit` (types,
severity, settings, detector, due rule, routing tags, text key, documentation);
:mod:`scoring.signals.registry` lists them and :func:`detect` runs them;
:func:`merge` (:mod:`scoring.signals.episodes`) turns what they detect into episodes.
"""

from scoring.signals.episodes import merge
from scoring.signals.people import user_inactive_type
from scoring.signals.registry import (
    DUE_RULES,
    FIXED_SIGNAL_TYPES,
    SIGNAL_REASONS,
    UNITS,
    detect,
    routing_patterns,
    routing_tags,
    signal_kinds,
    signal_reasons,
    signal_types,
    signals_markdown,
)
from scoring.signals.unit import Detected, Look, SignalType, SignalUnit

__all__ = [
    "DUE_RULES",
    "FIXED_SIGNAL_TYPES",
    "SIGNAL_REASONS",
    "UNITS",
    "Detected",
    "Look",
    "SignalType",
    "SignalUnit",
    "detect",
    "merge",
    "routing_patterns",
    "routing_tags",
    "signal_kinds",
    "signal_reasons",
    "signal_types",
    "signals_markdown",
    "user_inactive_type",
]

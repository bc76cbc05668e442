"""Episodes: detected conditions against the signals already active.

A condition that continues keeps its key and ``since``; a new one starts an episode
keyed ``<ident>@<onset day>``; an active signal no longer detected ends. A person's
inactivity is identified by the person alone, not by their last active day: an older
event that arrives late moves the last active day but, while the person is still quiet
past the threshold, the episode continues instead of ending and starting again in one
breath. Identities that carry their own anchor (a ticket id) make a new episode after
every resolution.
"""

from __future__ import annotations

from typing import Any

from scoring import explain
from scoring.signals.unit import Detected
from state.aggregates import DAY, SignalState

#: Texts already said, by type and detail numbers: many signals hold for weeks with the
#: same numbers (a saturated team), and each evaluation would say them again.
_TEXTS: dict[tuple[Any, ...], str] = {}
_TEXTS_MAX = 4096


def _text(kind: str, detail: dict[str, Any]) -> str:
    """:func:`scoring.explain.signal_text` in English, remembered for details of plain
    values (a pure function of them)."""
    try:
        # the types too: 1, 1.0 and True are equal keys but not the same words
        key = (kind, *detail.items(), *map(type, detail.values()))
        text = _TEXTS.get(key)
    except TypeError:  # a list or a dict among the numbers: not a key
        return explain.signal_text(kind, detail)
    if text is None:
        if len(_TEXTS) >= _TEXTS_MAX:
            _TEXTS.clear()
        text = _TEXTS[key] = explain.signal_text(kind, detail)
    return text


def merge(
    active: dict[str, SignalState], detected: list[Detected]
) -> tuple[dict[str, SignalState], list[SignalState], list[SignalState]]:
    """New active set, signals started, signals ended (each sorted by key)."""
    by_ident: dict[str, SignalState] = {}
    for sig in active.values():
        by_ident[sig.key.rsplit("@", 1)[0]] = sig
    new_active: dict[str, SignalState] = {}
    started: list[SignalState] = []
    for d in detected:
        text = _text(d.type, d.detail)
        prev = by_ident.get(d.ident)
        if prev is not None:
            # a fresh record: changes already emitted keep the numbers they were sent with
            new_active[prev.key] = SignalState(
                prev.type, prev.key, prev.subject, prev.severity, prev.since, d.detail, text
            )
            continue
        if d.sustain_only:
            continue
        sig = SignalState(
            type=d.type, key=f"{d.ident}@{d.onset_day}", subject=d.subject,
            severity=d.severity, since=d.onset_day * DAY, detail=d.detail, text=text,
        )
        new_active[sig.key] = sig
        started.append(sig)
    ended = [s for k, s in active.items() if k not in new_active]
    started.sort(key=lambda s: s.key)
    ended.sort(key=lambda s: s.key)
    return dict(sorted(new_active.items())), started, ended

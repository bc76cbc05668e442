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

from scoring import explain
from scoring.signals.unit import Detected
from state.aggregates import DAY, SignalState


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
        text = explain.signal_text(d.type, d.detail)
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

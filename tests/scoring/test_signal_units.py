"""Every registered signal is complete: configuration, detector, due rule, text for every
example, documentation and routing tags that routing accepts. A signal added to the
registry without one of them fails here, not in production."""

from __future__ import annotations

import random
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from agents.sinks.routing import DEFAULT_PLAYBOOKS, SIGNAL_PLAYBOOKS
from scoring import signals
from scoring.attention import SIGNAL_REASONS
from scoring.config import DEFAULT_CONFIG_PATH, ScoringConfig, load_config
from scoring.engine import step
from scoring.explain import signal_ended_text, signal_text
from scoring.scores import measure
from scoring.signals import SignalType, SignalUnit
from scoring.stages import created_day, days_to_renewal
from state.aggregates import DAY, AccountState, UserState
from streams.events import Event, EventType, Source

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "signals.md"
CONFIG = load_config()
RAW_DEFAULT = tomllib.loads(DEFAULT_CONFIG_PATH.read_text())
KINDS = list(signals.signal_kinds())


def _kind_id(pair: tuple[SignalUnit, SignalType]) -> str:
    return pair[1].name


def _unit_id(unit: SignalUnit) -> str:
    return unit.family


def test_the_registry_lists_every_unit_once_and_every_type_once() -> None:
    families = [u.family for u in signals.UNITS]
    assert len(families) == len(set(families)) == 10
    names = [kind.name for _, kind in KINDS]
    assert len(names) == len(set(names))
    assert set(signals.signal_types(CONFIG)) == {
        n for _, kind in KINDS for n in kind.names(CONFIG)}


@pytest.mark.parametrize("unit", signals.UNITS, ids=_unit_id)
def test_every_setting_a_unit_reads_is_configured_and_shipped(unit: SignalUnit) -> None:
    assert unit.settings, f"{unit.family} declares no configuration"
    assert (ROOT / "scoring" / "signals" / f"{unit.family}.py").exists()
    for setting in unit.settings:
        section, _, key = setting.partition(".")
        value: Any = getattr(CONFIG, section)
        shipped: Any = RAW_DEFAULT[section]
        if key:
            assert hasattr(value, key), f"{setting}: no such setting in ScoringConfig"
            assert key in shipped, f"{setting}: not in scoring/default.toml"
        else:
            assert value and shipped, f"{setting}: empty in the default configuration"


@pytest.mark.parametrize("pair", KINDS, ids=_kind_id)
def test_every_example_has_text_with_nothing_left_unfilled(
        pair: tuple[SignalUnit, SignalType]) -> None:
    _, kind = pair
    assert kind.examples, f"{kind.name} has no example to render"
    keys = [kind.key, *kind.names(CONFIG)]
    generic = {kind.key.replace("_", " "), f"{kind.key.replace('_', ' ')} ended"}
    for key in keys:
        for detail in kind.examples:
            for text in (signal_text(key, dict(detail)), signal_ended_text(key, dict(detail))):
                assert text.strip(), (key, detail)
                assert text not in generic, f"{key} has no sentence of its own: {text!r}"
                assert not re.search(r"[{}<>]|None|\bnan\b", text), (key, text)


@pytest.mark.parametrize("pair", KINDS, ids=_kind_id)
def test_every_type_is_documented_in_the_signals_doc(
        pair: tuple[SignalUnit, SignalType]) -> None:
    unit, kind = pair
    doc = DOC.read_text()
    assert kind.holds.strip()
    assert f"| `{kind.name}` | {kind.severity_doc or kind.severity} | {kind.holds} |" in doc
    assert f"`scoring/signals/{unit.family}.py`" in doc


def test_the_signals_doc_is_generated_from_the_registry() -> None:
    table = re.search(r"<!-- signals-table:start -->\n(.*?)\n<!-- signals-table:end -->",
                      DOC.read_text(), re.S)
    assert table is not None, "docs/signals.md lost its table markers"
    assert table.group(1) == signals.signals_markdown(), "run scripts/update-readme"


@pytest.mark.parametrize("pair", KINDS, ids=_kind_id)
def test_every_type_has_routing_tags_that_routing_accepts(
        pair: tuple[SignalUnit, SignalType]) -> None:
    _, kind = pair
    assert kind.routes, f"{kind.name} reaches no default playbook"
    for tag in kind.routes:
        assert tag in SIGNAL_PLAYBOOKS, f"{kind.name}: routing knows no tag {tag!r}"
        rule = next(r for r in DEFAULT_PLAYBOOKS if r.name == SIGNAL_PLAYBOOKS[tag])
        assert kind.pattern in rule.signals


def test_attention_reasons_are_the_ones_the_units_declare() -> None:
    declared = {kind.name: kind.reason for _, kind in KINDS if kind.reason is not None}
    assert declared == dict(SIGNAL_REASONS)


# --------------------------------------------------------------------------- behaviour

D0 = 20_000
_NAMES = ["Logged In", "Dashboard Viewed", "Report Published", "Workflow Completed",
          "Automation Created", "Feature Gated Clicked", "Upgrade Page Viewed",
          "Ticket Opened", "Ticket Resolved", "NPS Submitted", "Payment Failed",
          "Plan Downgraded", "Meeting Missed", "QBR Skipped", "Meeting Held"]


def _history(seed: int, days: int = 150) -> list[tuple[float, list[Event]]]:
    """A random account: a busy team that thins out and goes quiet for spells, with
    tickets, answers, billing trouble and a renewal on the way."""
    rng = random.Random(seed)
    out: list[tuple[float, list[Event]]] = []
    n = 0
    for day in range(days):
        base = (D0 + day) * DAY
        evs: list[Event] = []
        if day == 0:
            evs.append(Event("t", f"g{seed}", EventType.GROUP, base, base, Source.SEGMENT,
                             user_id="u0", account_id="a",
                             traits={"seats": 14, "renewal_date": "2025-03-01"}))
        team = 12 if day < 60 else (6 if day < 100 else 0)
        quiet = 70 <= day < 80 or day >= 120
        for _ in range(0 if quiet else rng.randrange(5, 60)):
            n += 1
            name = rng.choices(_NAMES, [30, 30, 8, 8, 3, 1, 1, 1, 1, 0.5, 0.2, 0.1, 0.2,
                                        0.1, 0.2])[0]
            uid = f"u{int(rng.paretovariate(1.1)) % max(team, 1)}"
            props: dict[str, Any] = {"ticket_id": f"t{rng.randrange(8)}",
                                     "score": rng.randrange(11), "feature": "sso",
                                     "to_plan": "starter"}
            ts = base + rng.random() * (DAY - 1)
            evs.append(Event("t", f"m{seed}-{n}", EventType.TRACK, ts, ts, Source.SEGMENT,
                             name=name, user_id=uid, account_id="a", properties=props))
        out.append((base + DAY - 1, evs))
    return out


def _run(seed: int, config: ScoringConfig) -> set[str]:
    """Steps the account day by day; at each day every unit's detector and due rule run
    on the state the engine left, and must stay within what the unit declares."""
    acc: AccountState | None = None
    users: dict[str, UserState] = {}
    seen: set[str] = set()
    for now, evs in _history(seed):
        r = step(acc, users, evs, now, config, "t", "a")
        acc = r.account
        users.update(r.users)
        today = int(now // DAY)
        look = signals.Look(acc, measure(acc, today, config), config,
                            {s.key.rsplit("@", 1)[0]: s for s in acc.signals.values()},
                            created_day(acc), days_to_renewal(acc, today))
        for unit in signals.UNITS:
            # type name -> the severities its declaration allows
            allowed = {n: {str(kind.severity)} | ({"info"} if "info" in kind.severity_doc
                                                  else set())
                       for kind in unit.types for n in kind.names(config)}
            for d in unit.detect(look):
                assert d.type in allowed, f"{unit.family} emitted undeclared {d.type}"
                assert d.severity in allowed[d.type], (d.type, d.severity)
                seen.add(d.type)
            due = list(unit.due(acc, today, config))
            assert all(isinstance(day, int) for day in due), unit.family
        assert {s.type for s in acc.signals.values()} <= set(signals.signal_types(config))
    return seen


def test_detectors_emit_only_what_their_unit_declares() -> None:
    seen: set[str] = set()
    for seed in range(3):
        seen |= _run(seed, CONFIG)
    # the histories are rich enough that most families fire; a unit whose detector never
    # runs would leave this short
    assert len(seen) >= 14, sorted(seen)


def _silent_after(seed: int, busy_days: int) -> list[tuple[float, list[Event]]]:
    return [(now, evs if i < busy_days else []) for i, (now, evs) in
            enumerate(_history(seed, days=busy_days))]


def _decisions(history: list[tuple[float, list[Event]]], quiet_days: int,
               every_day: bool) -> list[tuple[int, str, tuple[str, ...]]]:
    """Change ids decided over ``history`` and then ``quiet_days`` without events, ticking
    every day or only at ``next_due``."""
    acc: AccountState | None = None
    users: dict[str, UserState] = {}
    out: list[tuple[int, str, tuple[str, ...]]] = []
    due: float | None = None
    for now, evs in history:
        r = step(acc, users, evs, now, CONFIG, "t", "a")
        acc, due = r.account, r.next_due
        users.update(r.users)
        out.extend((int(now // DAY), c.id, tuple(c.reasons)) for c in r.changes)
    end = history[-1][0] + quiet_days * DAY
    t = history[-1][0] + DAY
    while t <= end:
        if every_day or (due is not None and t >= due):
            r = step(acc, {}, [], t, CONFIG, "t", "a")
            acc, due = r.account, r.next_due
            out.extend((int(t // DAY), c.id, tuple(c.reasons)) for c in r.changes)
        t += DAY
    return out


def _only(*names: str, day: int = 0) -> list[tuple[float, list[Event]]]:
    base = (D0 + day) * DAY
    return [(base + DAY - 1, [
        Event("t", f"x{i}", EventType.TRACK, base + i, base + i, Source.SEGMENT, name=name,
              user_id="u1", account_id="a", properties={"ticket_id": f"t{i % 3}"})
        for i, name in enumerate(names)])]


@pytest.mark.parametrize("history", [
    _only("Ticket Opened", "Ticket Opened", "Ticket Opened", "Ticket Resolved",
          "Ticket Resolved", "Ticket Resolved"),
    _only("Meeting Missed"),
    _only("NPS Submitted", "Plan Downgraded", "Upgrade Page Viewed"),
    *(_silent_after(seed, 60) for seed in range(3)),
], ids=["ticket spike", "meeting missed", "answers and billing", "seed 0", "seed 1", "seed 2"])
def test_ticking_only_when_due_decides_what_ticking_every_day_does(
        history: list[tuple[float, list[Event]]]) -> None:
    """The due rules never miss a day on which a signal (or anything else) changes."""
    daily = _decisions(history, 200, every_day=True)
    assert daily, "the history decides nothing"
    assert _decisions(history, 200, every_day=False) == daily

"""Sentences are written for what is emitted: an evaluation that decides no change writes
no drivers and no paragraph, one that decides a change gives the assessment the change's
own, and the assessment's signals are said in the workspace's language either way."""

from __future__ import annotations

from dataclasses import replace

from scoring import explain, signals
from scoring.changes import HealthChange
from scoring.config import LocaleSettings, ScoringConfig, load_config
from scoring.engine import AccountAssessment, step
from scoring.signals.people import quiet_rank, user_inactive_type
from state.aggregates import DAY, AccountState, UserState
from streams.events import Event, EventType, Source

ENGLISH = load_config()
FRENCH = replace(ENGLISH, locale=LocaleSettings("fr", "EUR", "Europe/Paris"))
D0 = 20_000


def _day(day: int) -> list[Event]:
    """A team of three at work every day; a payment fails on day 5 and stays unpaid."""
    base = (D0 + day) * DAY + 9 * 3600.0
    out = [Event("ws", f"m{day}-{u}", EventType.TRACK, base + i, base + i, Source.SEGMENT,
                 name="Report Published", user_id=u, account_id="acme")
           for i, u in enumerate(("ana", "ben", "cy"))]
    if day == 0:
        out.append(Event("ws", "g0", EventType.GROUP, base - 60, base - 60, Source.SEGMENT,
                         user_id="ana", account_id="acme", traits={"seats": 5}))
    if day == 5:
        out.append(Event("ws", "pay5", EventType.TRACK, base + 60, base + 60, Source.SEGMENT,
                         name="Payment Failed", account_id="acme",
                         properties={"amount": 1200}))
    return out


def _steps(config: ScoringConfig,
           emit: bool = True) -> list[tuple[AccountAssessment, list[HealthChange]]]:
    """Twenty days, evaluated at noon with the day's events and again at six."""
    acc: AccountState | None = None
    users: dict[str, UserState] = {}
    seen: list[tuple[AccountAssessment, list[HealthChange]]] = []
    for day in range(20):
        for now in ((D0 + day) * DAY + 12 * 3600.0, (D0 + day) * DAY + 18 * 3600.0):
            r = step(acc, users, _day(day) if now % DAY == 12 * 3600.0 else [], now, config,
                     "ws", "acme", emit=emit)
            acc = r.account
            users.update(r.users)
            seen.append((r.assessment, list(r.changes)))
    return seen


def test_an_evaluation_that_decides_nothing_writes_no_sentence() -> None:
    seen = _steps(ENGLISH)
    quiet = [a for a, changes in seen if not changes]
    told = [(a, changes) for a, changes in seen if changes]
    assert len(quiet) > 20 and len(told) >= 2
    for a in quiet:
        assert a.change_id is None
        assert a.explanation == "" and a.drivers == []
    for a, (change,) in told:
        assert a.change_id == change.id
        assert a.explanation == change.explanation != ""
        assert a.drivers == change.drivers


def test_the_signals_are_said_in_the_workspace_language_on_a_quiet_day_too() -> None:
    french = FRENCH.locale.translator()
    quiet_with_signal = 0
    for a, changes in _steps(FRENCH):
        for s in a.signals:
            assert s.text == explain.signal_text(s.type, s.detail, french)
            assert s.text != explain.signal_text(s.type, s.detail)  # not the English
        if not changes and any(s.type == "payment_failed" for s in a.signals):
            quiet_with_signal += 1
            assert a.explanation == ""
    assert quiet_with_signal > 10


def test_emit_changes_only_the_sentences() -> None:
    for (told, changes), (lean, none) in zip(_steps(FRENCH), _steps(FRENCH, emit=False),
                                             strict=True):
        assert none == []
        assert (told.score, told.band, told.change_id, told.alert) == (
            lean.score, lean.band, lean.change_id, lean.alert)
        assert lean.explanation == "" and lean.drivers == []
        assert bool(changes) == (told.change_id is not None)


def test_the_people_unit_ranks_its_own_quiet_signals() -> None:
    """Which signal is the strongest of a quiet person (the one a paragraph says) is
    decided by the unit that names those types, for every threshold configured."""
    names = [n for _, kind in signals.signal_kinds() for n in kind.names(ENGLISH)]
    quiet = {n: quiet_rank(n) for n in names if quiet_rank(n) >= 0}
    thresholds = ENGLISH.signals.user_inactive_days
    assert quiet == {"power_user_inactive": 10_000,
                     **{user_inactive_type(n): n for n in thresholds}}
    assert all(quiet["power_user_inactive"] > quiet_rank(user_inactive_type(n))
               for n in range(1, 1000))

"""The in-memory driver: routing, the evaluation grid, due accounts, snapshots."""

from __future__ import annotations

import pytest

from scoring.config import load_config
from scoring.replay import Replay
from state.aggregates import DAY
from streams.events import Event, EventType, Source

D0 = 20_000


def ev(n: int, day: float, account: str | None, name: str = "Logged In",
       user: str = "ana") -> Event:
    ts = (D0 + day) * DAY
    return Event("ws", f"m{n}", EventType.TRACK, ts, ts, Source.SEGMENT, name=name,
                 user_id=user, account_id=account)


def test_routes_by_account_and_counts_unrouted() -> None:
    r = Replay(load_config())
    r.run([ev(1, 0.1, "a"), ev(2, 0.2, "b"), ev(3, 0.3, None)])
    assert r.account_keys() == [("ws", "a"), ("ws", "b")]
    assert r.stats.unrouted == 1
    assert set(r.assessments()) == {("ws", "a"), ("ws", "b")}
    assert r.users[("ws", "a", "ana")].events == 1


def test_daily_grid_and_due_accounts_without_events() -> None:
    r = Replay(load_config())
    r.feed([ev(i, d + 0.5, "a", user=f"u{i}") for i, d in enumerate(range(0, 3))])
    r.advance_to((D0 + 3) * DAY)
    a = r.assessment("ws", "a")
    assert a is not None and a.day == D0 + 3  # grid points are midnights
    assert a.active_users_30d == 3
    steps = r.stats.steps
    r.advance_to((D0 + 30) * DAY)
    a = r.assessment("ws", "a")
    assert a is not None and a.day == D0 + 30  # kept current by due ticks
    assert r.stats.due_steps >= 20
    assert r.stats.steps > steps


def test_assess_at_is_read_only_and_sees_pending_events() -> None:
    r = Replay(load_config())
    r.feed([ev(1, 0.5, "a"), ev(2, 1.5, "a", user="ben")])
    r.advance_to((D0 + 1) * DAY)  # day 0 evaluated, ben's event still pending
    before = r.accounts[("ws", "a")].to_bytes()
    snap = r.assess_at("ws", "a", (D0 + 1) * DAY + 0.6 * DAY)
    assert snap is not None and snap.active_users_30d == 2
    assert r.accounts[("ws", "a")].to_bytes() == before
    latest = r.assessment("ws", "a")
    assert latest is not None and latest.active_users_30d == 1
    assert r.assess_at("ws", "nobody", D0 * DAY) is None


def test_late_event_is_evaluated_at_the_next_grid_point() -> None:
    r = Replay(load_config())
    r.feed([ev(1, 2.5, "a")])
    r.advance_to((D0 + 3) * DAY)
    r.feed([ev(2, 1.2, "a", user="ben")])  # older than the last grid point
    r.advance_to((D0 + 4) * DAY)
    a = r.assessment("ws", "a")
    assert a is not None and a.active_users_30d == 2


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval"):
        Replay(load_config(), interval=0)


def test_not_building_changes_decides_the_same_and_leaves_the_same_state() -> None:
    """A backtest skips building changes and explanations; it must not skip deciding."""
    from history.importers import segment_events
    from history.simulate import simulate

    events = list(segment_events(simulate(accounts=8, days=150, seed=11).events(),
                                 workspace="ws"))
    full, lean = Replay(load_config()), Replay(load_config(), keep_changes=False)
    changes = full.run(events)
    assert not lean.emits and lean.run(events) == [] and lean.changes == []
    assert len(changes) == full.stats.changes == lean.stats.changes > 50
    assert {k: a.to_list() for k, a in full.accounts.items()} == {
        k: a.to_list() for k, a in lean.accounts.items()}
    assert {k: u.to_list() for k, u in full.users.items()} == {
        k: u.to_list() for k, u in lean.users.items()}
    for key, assessment in full.assessments().items():
        other = lean.assessment(*key)
        assert other is not None and other.explanation == "" and other.drivers == []
        assert (other.score, other.band, other.change_id) == (
            assessment.score, assessment.band, assessment.change_id)
    assert {a.change_id for a in full.assessments().values()} <= {c.id for c in changes} | {None}

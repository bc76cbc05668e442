"""Property-based checks: determinism across batch groupings, idempotence on duplicate
message ids, scores within 0-100 whose components sum exactly, bounded state."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring.config import load_config
from scoring.engine import step, user_views
from scoring.replay import Replay
from state.aggregates import DAY, AccountState, UserState
from streams.events import Event, EventType, Source
from streams.health_change import validate

BASE = 20_000 * DAY
CONFIG = load_config()

KINDS: list[tuple[EventType, str | None, dict[str, Any]]] = [
    (EventType.TRACK, "Logged In", {}),
    (EventType.TRACK, "Dashboard Viewed", {}),
    (EventType.TRACK, "Report Published", {}),
    (EventType.TRACK, "Workflow Completed", {}),
    (EventType.TRACK, "Export Created", {}),
    (EventType.TRACK, "Teammate Invited", {}),
    (EventType.TRACK, "Something Else", {}),
    (EventType.TRACK, "Ticket Opened", {"ticket_id": "T1"}),
    (EventType.TRACK, "Ticket Opened", {"ticket_id": "T2"}),
    (EventType.TRACK, "Ticket Resolved", {"ticket_id": "T1"}),
    (EventType.TRACK, "NPS Submitted", {"score": 4}),
    (EventType.TRACK, "NPS Submitted", {"score": 9}),
    (EventType.TRACK, "CSAT Submitted", {"score": 1}),
    (EventType.TRACK, "Payment Failed", {"amount": 50}),
    (EventType.TRACK, "Payment Succeeded", {"amount": 50}),
    (EventType.TRACK, "Plan Downgraded", {"from_plan": "Pro", "to_plan": "Lite"}),
    (EventType.TRACK, "Seats Changed", {"seats": 3, "previous_seats": 6}),
    (EventType.TRACK, "Meeting Missed", {}),
    (EventType.TRACK, "QBR Held", {}),
    (EventType.TRACK, "Feature Gated Clicked", {"feature": "sso"}),
    (EventType.PAGE, "Pricing", {}),
    (EventType.GROUP, None, {"seats": 6, "name": "Acme", "renewal_date": "2025-01-20"}),
    (EventType.IDENTIFY, None, {"name": "Ana Silva"}),
]

raw_event = st.tuples(
    st.integers(0, 3),  # account
    st.integers(0, 70),  # day
    st.integers(0, 23),  # hour
    st.integers(0, 5),  # user (5 = no user)
    st.integers(0, len(KINDS) - 1),
)


def build(raws: list[tuple[int, int, int, int, int]]) -> list[Event]:
    events = []
    for n, (acc, day, hour, user, kind) in enumerate(raws):
        type_, name, payload = KINDS[kind]
        ts = BASE + day * DAY + hour * 3600 + n % 60
        uid = None if user == 5 else f"u{user}"
        if type_ is EventType.IDENTIFY and uid is None:
            uid = "u0"
        props = payload if type_ in (EventType.TRACK, EventType.PAGE) else {}
        traits = payload if type_ in (EventType.GROUP, EventType.IDENTIFY) else {}
        events.append(Event("ws", f"m{n}", type_, ts, ts, Source.SEGMENT, name=name,
                            user_id=uid, account_id=f"a{acc}", properties=props,
                            traits=traits))
    events.sort(key=lambda e: (e.timestamp, e.message_id))
    return events


def replay_in_chunks(events: list[Event], cuts: list[int]) -> Replay:
    r = Replay(CONFIG, interval=3600.0)
    edges = sorted({c % (len(events) + 1) for c in cuts} | {0, len(events)})
    for a, b in itertools.pairwise(edges):
        r.feed(events[a:b])
    r.finish(BASE + 80 * DAY)
    return r


def snapshot(r: Replay) -> tuple[dict[Any, bytes], dict[Any, bytes], list[dict[str, Any]]]:
    return (
        {k: a.to_bytes() for k, a in r.accounts.items()},
        {k: u.to_bytes() for k, u in r.users.items()},
        [c.to_dict() for c in r.changes],
    )


FAST = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FAST
@given(st.lists(raw_event, min_size=1, max_size=120), st.lists(st.integers(0, 500), max_size=8))
def test_any_batch_grouping_gives_identical_state_and_decisions(
    raws: list[tuple[int, int, int, int, int]], cuts: list[int]
) -> None:
    events = build(raws)
    one = snapshot(replay_in_chunks(events, []))
    assert snapshot(replay_in_chunks(events, cuts)) == one
    for change in one[2]:
        validate(change)


@FAST
@given(st.lists(raw_event, min_size=1, max_size=80), st.data())
def test_redelivered_events_change_nothing(
    raws: list[tuple[int, int, int, int, int]], data: st.DataObject
) -> None:
    events = build(raws)
    picks = data.draw(st.lists(st.integers(0, len(events) - 1), max_size=30))
    doubled = list(events)
    for i in picks:
        doubled.append(events[i])  # same message id and timestamp
    doubled.sort(key=lambda e: e.timestamp)
    assert snapshot(replay_in_chunks(doubled, [7, 19])) == snapshot(
        replay_in_chunks(events, [])
    )


@FAST
@given(st.lists(raw_event, min_size=1, max_size=80), st.lists(st.integers(1, 40), max_size=4))
def test_step_aggregates_do_not_depend_on_batching(
    raws: list[tuple[int, int, int, int, int]], cuts: list[int]
) -> None:
    events = [e for e in build(raws) if e.account_id == "a0"] or build(raws)[:1]
    acc_id = events[0].account_id or "a0"

    def run(groups: list[list[Event]]) -> tuple[list[Any], dict[str, bytes]]:
        acc: AccountState | None = None
        users: dict[str, UserState] = {}
        for g in groups:
            now = max(e.timestamp for e in g)
            r = step(acc, users, g, now, CONFIG, "ws", acc_id)
            acc = r.account
            users.update(r.users)
        assert acc is not None
        lst = acc.to_list()
        aggregates = [lst[3], lst[4], lst[6], lst[7], lst[8], lst[9],
                      [[uid, s[:7]] for uid, s in lst[5]]]  # summaries without power flags
        return aggregates, {u: s.to_bytes() for u, s in users.items()}

    edges = sorted({c % (len(events) + 1) for c in cuts} | {0, len(events)})
    groups = [events[a:b] for a, b in itertools.pairwise(edges) if b > a]
    assert run(groups) == run([events])
    # the same batch again changes nothing and decides nothing
    acc0 = step(None, {}, events, events[-1].timestamp, CONFIG, "ws", acc_id)
    before = acc0.account.to_bytes()
    again = step(acc0.account, acc0.users, events, events[-1].timestamp, CONFIG, "ws", acc_id)
    assert again.account.to_bytes() == before
    assert again.changes == []


weights = st.lists(st.integers(0, 40), min_size=len(CONFIG.metrics),
                   max_size=len(CONFIG.metrics)).filter(lambda w: sum(w) > 0)


@FAST
@given(st.lists(raw_event, min_size=1, max_size=100), weights)
def test_scores_within_bounds_and_components_sum(
    raws: list[tuple[int, int, int, int, int]], w: list[int]
) -> None:
    # rescale random weights to sum to exactly 100
    total = sum(w)
    scaled = [x * 100 // total for x in w]
    scaled[0] += 100 - sum(scaled)
    metrics = {
        name: replace(m, weight=scaled[i])
        for i, (name, m) in enumerate(CONFIG.metrics.items())
    }
    config = replace(CONFIG, metrics=metrics).validate()
    r = Replay(config, interval=6 * 3600.0)
    seen = 0

    def check(change: Any) -> None:
        nonlocal seen
        seen += 1
        d = change.to_dict()
        comps = d["current"]["components"]
        assert 0 <= d["current"]["score"] <= 100
        assert sum(c["points"] for c in comps.values()) == d["current"]["score"]
        assert all(0 <= c["points"] <= c["weight"] for c in comps.values())

    r.on_change = check
    r.run(build(raws), until=BASE + 100 * DAY)
    for (_, acc_id), a in r.assessments().items():
        assert 0 <= a.score <= 100
        assert sum(c.points for c in a.components) == a.score
        acc = r.accounts[("ws", acc_id)]
        for view in user_views(acc, a.day, config):
            assert 0 <= view.score <= 100
            assert sum(c.points for c in view.components) == view.score
    assert r.assessments()


def test_state_stays_bounded_over_years() -> None:
    """Three years of daily use, tickets, NPS and billing: sizes stop growing."""
    acc: AccountState | None = None
    users: dict[str, UserState] = {}
    sizes: dict[int, tuple[int, int]] = {}
    n = 0
    for day in range(3 * 365):
        now = BASE + day * DAY
        evs = []
        for u in range(12):
            for name in ("Logged In", "Report Published", "Dashboard Viewed"):
                n += 1
                evs.append(Event("ws", f"e{n}", EventType.TRACK, now + 3600 + u, now + 3600,
                                 Source.SEGMENT, name=name, user_id=f"u{u}-{day // 200}",
                                 account_id="a"))
        for name, props in (("Ticket Opened", {"ticket_id": f"t{day}"}),
                            ("NPS Submitted", {"score": day % 11}),
                            ("Meeting Missed", {}), ("Payment Failed", {"amount": 5}),
                            ("Feature Gated Clicked", {"feature": f"f{day}"})):
            n += 1
            evs.append(Event("ws", f"e{n}", EventType.TRACK, now + 7200, now + 7200,
                             Source.SEGMENT, name=name, user_id="u0-0", account_id="a",
                             properties=props))
        r = step(acc, {u: users[u] for u in {e.user_id for e in evs} if u in users}, evs,
                 now + DAY - 1, CONFIG, "ws", "a")
        acc = r.account
        users.update(r.users)
        if day in (364, 729, 1094):
            sizes[day] = (len(acc.to_bytes()), max(len(u.to_bytes()) for u in users.values()))
    assert acc is not None
    y1, y3 = sizes[364], sizes[1094]
    # users come and go (a new cohort every 200 days); the account keeps at most the
    # configured number of users and the windows stay 90 days long
    assert y3[0] <= y1[0] * 1.5
    assert y3[1] <= y1[1] * 1.1
    assert y3[0] < 120_000 and y3[1] < 8_000
    assert len(acc.days) <= CONFIG.limits.window_days + 1
    assert len(acc.open_tickets) <= CONFIG.limits.max_open_tickets
    assert len(acc.history) <= CONFIG.decisions.history_days
    assert all(len(u.seen) <= CONFIG.limits.recent_ids_per_user for u in users.values())
    assert len(acc.nps) <= CONFIG.limits.recent_records


json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats(allow_nan=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=6,
)
NAMES = [k[1] for k in KINDS if k[1]] + ["Upgrade", "", "x" * 50]
PROP_KEYS = ["ticket_id", "score", "amount", "seats", "previous_seats", "feature",
             "from_plan", "to_plan", "priority"]
TRAIT_KEYS = ["name", "seats", "arr", "segment", "renewal_date", "created_at", "owner",
              "email", "hubspot_company_id", "plan", "firstName"]


@FAST
@given(st.lists(st.tuples(
    st.sampled_from(list(EventType)),
    st.sampled_from(NAMES),
    st.dictionaries(st.sampled_from(PROP_KEYS), json_value, max_size=4),
    st.dictionaries(st.sampled_from(TRAIT_KEYS), json_value, max_size=4),
    st.floats(-1e6, 2e6),
), min_size=1, max_size=40))
def test_garbage_values_never_crash_a_step(
    raws: list[tuple[EventType, str, dict[str, Any], dict[str, Any], float]],
) -> None:
    events = [
        Event("ws", f"g{i}", t, BASE + off, BASE, Source.SEGMENT, name=name or None,
              user_id=f"u{i % 3}" if i % 4 else None, account_id="a", properties=props,
              traits=traits)
        for i, (t, name, props, traits, off) in enumerate(raws)
    ]
    r = step(None, {}, events, BASE + 3 * DAY, CONFIG, "ws", "a")
    assert 0 <= r.assessment.score <= 100
    for change in r.changes:
        validate(change.to_dict())
    AccountState.from_bytes(r.account.to_bytes())
    r2 = step(r.account, r.users, [], BASE + 40 * DAY, CONFIG, "ws", "a")
    for change in r2.changes:
        validate(change.to_dict())

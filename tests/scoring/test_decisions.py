"""When a health change is emitted, with what id, and what it says."""

from __future__ import annotations

from dataclasses import replace

import pytest

from scoring import explain
from scoring.changes import change_id
from scoring.config import Bands, load_config
from scoring.engine import step
from scoring.scores import band_of, split_points, sticky_band
from state.aggregates import DAY
from streams.events import Event, EventType, Source
from streams.health_change import HEALTH_CHANGES, validate
from tests.scoring.story import Story


def test_band_thresholds() -> None:
    b = Bands()
    assert [band_of(s, b) for s in (100, 70, 69, 40, 39, 0)] == [
        "healthy", "healthy", "watch", "watch", "at_risk", "at_risk"
    ]


@pytest.mark.parametrize(
    ("start", "scores", "expected"),
    [
        # hovering around 70 never flaps
        ("healthy", [69, 70, 68, 71, 67, 72, 69], ["healthy"] * 7),
        ("watch", [70, 69, 72, 68, 71, 67, 72], ["watch"] * 7),
        # leaving needs 3 points past the boundary
        ("healthy", [67, 66, 69, 72, 73], ["healthy", "watch", "watch", "watch", "healthy"]),
        ("watch", [42, 38, 37, 36, 40, 42, 43],
         ["watch", "watch", "watch", "at_risk", "at_risk", "at_risk", "watch"]),
        # big moves cross several bands at once
        ("healthy", [20], ["at_risk"]),
        ("at_risk", [90], ["healthy"]),
    ],
)
def test_sticky_band_hysteresis(start: str, scores: list[int], expected: list[str]) -> None:
    b = Bands()
    band = start
    seen = []
    for score in scores:
        band = sticky_band(score, band, b)
        seen.append(band)
    assert seen == expected


def test_hovering_score_does_not_flap_end_to_end() -> None:
    """An account whose score wobbles 69/70/71 day to day emits one change, not many."""
    cfg = load_config()
    s = Story(config=cfg)
    s.group(0, name="Acme", seats=10, created_at=s.iso_day(-300))
    s.run_to(0, hour=12)
    acc = s.replay.accounts[("ws", "acme")]
    wobble = [71, 69, 70, 68, 71, 69, 70, 68, 72, 69]
    bands = []
    for score in wobble:
        bands.append(sticky_band(score, acc.band, cfg.bands))
        acc.band = bands[-1]
    assert set(bands) == {acc.band}


def test_split_points_sums_exactly() -> None:
    assert split_points([6.5, 6.5, 7.0]) == [7, 6, 7]
    assert sum(split_points([19.99, 14.4, 10.3, 0.33, 9.8])) == 55
    assert split_points([0.0, 0.0]) == [0, 0]
    assert sum(split_points([33.333333, 33.333333, 33.333334])) == 100


def _ev(n: int, ts: float, name: str, user: str = "ana", acc: str = "acme") -> Event:
    return Event("ws", f"{acc}-{n}", EventType.TRACK, ts, ts, Source.SEGMENT, name=name,
                 user_id=user, account_id=acc)


def test_first_assessment_emits_with_no_previous() -> None:
    cfg = load_config()
    now = 20_000 * DAY + 3600
    r = step(None, {}, [_ev(1, now - 60, "Logged In")], now, cfg, "ws", "acme")
    assert len(r.changes) == 1
    c = r.changes[0]
    assert c.previous is None
    assert c.reasons == ["band_changed"]
    assert c.delta == 0
    d = c.to_dict()
    validate(d)
    assert d["previous"] is None
    assert d["config_version"] == cfg.version
    assert HEALTH_CHANGES.decode(HEALTH_CHANGES.encode(c)).wire == d
    # nothing new an hour later: no change
    r2 = step(r.account, {}, [], now + 3600, cfg, "ws", "acme")
    assert r2.changes == []


def _steady_account() -> Story:
    s = Story()
    s.group(0, name="Acme", seats=5, created_at=s.iso_day(-300))
    for d in range(0, 30):
        for u in ("ana", "ben", "cy"):
            s.track(d, u, "Workflow Completed", times=2)
    return s


def test_score_moved_ten_points_since_the_last_report() -> None:
    s = _steady_account()
    s.track(28, "ana", "Feature Gated Clicked", feature="sso")  # a report on day 28
    s.run_to(29, hour=12)
    assert s.changes[-1].day == 20_028
    before = s.assessment.score
    assert s.changes[-1].current.score == before
    s.track(29, None, "Payment Failed", hour=14, amount=10)  # -6 points
    s.track(29, None, "Plan Downgraded", hour=14, from_plan="Pro", to_plan="Lite")  # -4
    changes = s.run_to(29, hour=16)
    assert s.assessment.score == before - 10
    moved = [c for c in changes if "score_moved" in c.reasons]
    assert len(moved) == 1
    assert moved[0].delta == -10
    assert moved[0].previous is not None and moved[0].previous.score == before
    assert moved[0].explanation == (
        f"Health fell 10 points ({before} → {before - 10}) because a payment of $10 failed "
        "and the plan was downgraded from Pro to Lite."
    )


def test_score_moved_ten_points_within_seven_days() -> None:
    """The last report is weeks old and the score rose 4 points since, unreported; a
    10-point fall within the week is still news, told against the last report."""
    s = _steady_account()
    s.run_to(29, hour=12)
    last = s.changes[-1]
    assert last.day == 20_006
    before = s.assessment.score
    assert before - last.current.score == 4
    s.track(29, None, "Payment Failed", hour=14, amount=10)
    s.track(29, None, "Plan Downgraded", hour=14, from_plan="Pro", to_plan="Lite")
    changes = s.run_to(29, hour=16)
    moved = [c for c in changes if "score_moved" in c.reasons]
    assert len(moved) == 1
    assert moved[0].delta == -6
    assert moved[0].change_7d == -10
    assert moved[0].explanation == (
        f"Health fell 6 points ({last.current.score} → {before - 10}; down 10 in 7 days) "
        "because a payment of $10 failed and the plan was downgraded from Pro to Lite."
    )


def test_change_ids_are_deterministic_and_distinct() -> None:
    a = change_id("ws", "acme", ["band:healthy", "start:x@1"], 20_000)
    assert a == change_id("ws", "acme", ["start:x@1", "band:healthy"], 20_000)
    assert a != change_id("ws", "acme", ["band:healthy", "start:x@1"], 20_001)
    assert a != change_id("ws", "other", ["band:healthy", "start:x@1"], 20_000)
    assert a != change_id("ws2", "acme", ["band:healthy", "start:x@1"], 20_000)


def test_replaying_twice_gives_the_same_change_ids() -> None:
    def run() -> list[str]:
        s = Story()
        s.group(0, name="Acme", seats=5, created_at=s.iso_day(-300))
        s.daily(["ana", "ben"], range(0, 12))
        s.track(5, None, "Ticket Opened", ticket_id="T1")
        s.run_to(40)
        return [c.id for c in s.changes]

    first = run()
    assert first == run()
    assert len(set(first)) == len(first)


def test_explanation_templates_name_people_and_numbers() -> None:
    prev = {"active": 25, "seats": 30}
    cur = {"active": 20, "seats": 30}
    seats = explain.component_change_text("active_seats", prev, cur, -3)
    power = explain.component_change_text(
        "power_users", {"inactive": [], "active": 1, "power_users": 1},
        {"inactive": [{"user_id": "d", "name": "Dana Reyes", "days": 22}], "active": 0,
         "power_users": 1}, -12,
    )
    text = explain.paragraph(72, 57, "watch", [power, seats], [], None, [])
    assert text == (
        "Health fell 15 points (72 → 57) because Dana Reyes, a power user, has been "
        "inactive for 22 days and seat usage fell 20% (25 → 20 of 30 seats)."
    )


def test_every_change_in_a_busy_story_validates() -> None:
    cfg = replace(load_config(), version="test-7")
    s = Story(config=cfg)
    s.group(0, name="Acme", seats=8, arr=60_000, created_at=s.iso_day(-10),
            renewal_date=s.iso_day(150), owner="Kim Lee", owner_email="kim@x.test",
            hubspot_company_id=123, salesforce_account_id="001Aa00000Xyz12AAA")
    s.identify(0, "ana", "Ana Silva", "ana@acme.test")
    s.daily(["ana", "ben", "cy"], range(0, 40), "Report Published", times=2)
    s.track(3, "ana", "Ticket Opened", ticket_id="T1")
    s.track(4, "ben", "NPS Submitted", score=3)
    s.track(6, None, "Payment Failed", amount="1,250.50")
    s.track(7, "cy", "Feature Gated Clicked", feature="audit-log")
    s.track(8, None, "Meeting Missed")
    s.run_to(70)
    assert len(s.changes) > 5
    for c in s.changes:
        d = c.to_dict()
        validate(d)
        assert d["config_version"] == "test-7"
        assert d["external_ids"] == {"hubspot_company_id": "123",
                                     "salesforce_account_id": "001Aa00000Xyz12AAA"}
        assert sum(x["points"] for x in d["current"]["components"].values()) == (
            d["current"]["score"]
        )
    assert any("a payment of $1,250.50 failed" in c.explanation for c in s.changes)


def test_emitted_changes_keep_the_numbers_they_were_sent_with() -> None:
    s = Story()
    sent = []
    s.replay.on_change = lambda c: sent.append(c.to_dict())
    s.group(0, name="Acme", seats=5, created_at=s.iso_day(-300))
    s.daily(["ana", "ben"], range(0, 40))
    s.track(2, "ana", "Ticket Opened", ticket_id="T1")  # open 5+ days: its age grows daily
    s.run_to(30)
    assert [c.to_dict() for c in s.changes] == sent
    ticket = [x for c in sent for x in c["active_signals"] if x["type"] == "ticket_open_long"]
    assert ticket[0]["detail"]["days"] == 5

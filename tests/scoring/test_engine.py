"""step() as the live pipeline drives it: batches, clock ticks at next_due, hysteresis
with a hand-made config, and the assessment it returns."""

from __future__ import annotations

from dataclasses import replace

from scoring.config import Curve, Metric, ScoringConfig, load_config
from scoring.engine import AccountAssessment, step
from state.aggregates import DAY, AccountState, UserState
from streams.events import Event, EventType, Source

D0 = 20_000


def ev(n: int, day: float, name: str | None, user: str | None = "dana",
       type_: EventType = EventType.TRACK, **kw: object) -> Event:
    ts = (D0 + day) * DAY + 36_000
    return Event("ws", f"e{n}", type_, ts, ts, Source.SEGMENT, name=name, user_id=user,
                 account_id="acme", **kw)  # type: ignore[arg-type]


def test_ticks_at_next_due_fire_inactivity_on_the_right_day_without_events() -> None:
    cfg = load_config()
    events = [ev(0, 0, None, type_=EventType.GROUP,
                 traits={"name": "Acme", "seats": 10, "created_at": "2020-01-01",
                         "renewal_date": "2025-09-30"}),
              ev(1, 0, None, type_=EventType.IDENTIFY, traits={"name": "Dana Reyes"})]
    n = 2
    for day in range(0, 11):
        for _ in range(5):
            n += 1
            events.append(ev(n, day, "Report Published"))
        n += 1
        events.append(ev(n, day, "Logged In", user="sam"))
    r = step(None, {}, events, (D0 + 10) * DAY + 40_000, cfg, "ws", "acme")
    account, users = r.account, r.users
    assert r.next_due == (D0 + 11) * DAY  # tomorrow: windows roll at midnight
    fired_on = None
    due: float | None = r.next_due
    ticks = 0
    while due is not None and fired_on is None and ticks < 60:
        ticks += 1
        assert due is not None
        r = step(account, {}, [], due, cfg, "ws", "acme")
        account = r.account
        if any(s.type == "power_user_inactive" for c in r.changes for s in c.signals_started):
            fired_on = int(due // DAY) - D0
        assert r.next_due is None or r.next_due > due
        due = r.next_due
    assert fired_on == 31  # last seen day 10 + 21 days
    assert users["dana"].events == 57  # 55 tracks, the identify and the group call


def test_quiet_account_is_due_only_at_its_next_milestone() -> None:
    cfg = load_config()
    acc = AccountState("ws", "acme", renewal_day=D0 + 400, created_day=D0 - 1000)
    r = step(acc, {}, [], D0 * DAY, cfg, "ws", "acme")
    # nothing in the rolling windows: next is the T-180 checkpoint of the renewal
    assert r.next_due == (D0 + 400 - 180) * DAY


def test_hovering_score_does_not_flap_the_band() -> None:
    """Support is the whole score here: one open ticket makes it 69, none 71. A ticket
    opened and closed every other day keeps the score hovering at the 70 boundary."""
    base = load_config()
    metrics = {name: replace(m, weight=0) for name, m in base.metrics.items()}
    metrics["support"] = Metric(100, Curve(((0, 71), (1, 69), (10, 0))))
    cfg = replace(base, metrics=metrics, support=replace(base.support, spike=0.0)).validate()
    no_margin = replace(cfg, bands=replace(cfg.bands, hysteresis=0))

    def run(config: object) -> tuple[list[int], list[str]]:
        account: AccountState | None = None
        users: dict[str, UserState] = {}
        scores, band_changes = [], []
        for day in range(1, 21):
            name = "Ticket Opened" if day % 2 else "Ticket Resolved"
            r = step(account, users, [ev(day, day, name, properties={"ticket_id": "T1"})],
                     (D0 + day) * DAY + 50_000, config, "ws", "acme")  # type: ignore[arg-type]
            account = r.account
            users.update(r.users)
            scores.append(r.assessment.score)
            band_changes += [c.current.band for c in r.changes if "band_changed" in c.reasons]
        return scores, band_changes

    scores, changes = run(cfg)
    assert set(scores) == {69, 71}
    assert len(changes) == 1  # the first report only (watch: day 1 had an open ticket)
    _, flapping = run(no_margin)
    assert len(flapping) == 19  # without a margin the band flips every day after the first


def test_step_returns_only_changed_users_and_an_assessment() -> None:
    cfg = load_config()
    events = [ev(1, 0, "Logged In"), ev(2, 0, "Report Published", user="sam")]
    r = step(None, {"other": UserState("other")}, events, (D0 + 1) * DAY, cfg, "ws", "acme")
    assert sorted(r.users) == ["dana", "sam"]
    a = r.assessment
    assert a.account_id == "acme" and a.config_version == cfg.version
    assert {u.user_id for u in a.users} == {"dana", "sam"}
    d = a.to_dict()
    assert d["score"] == sum(c["points"] for c in d["components"].values())
    assert d["active_users_30d"] == 2
    assert d["history"] == [["2024-10-05", a.score]]
    # out-of-range and malformed input does not crash
    bad = [ev(3, 0, "NPS Submitted", properties={"score": "eleven"}),
           ev(4, 0, None, type_=EventType.GROUP, traits={"seats": "lots",
                                                        "renewal_date": "soon"}),
           ev(5, 0, "CSAT Submitted", properties={"score": 42}),
           ev(6, 5, "Logged In")]  # stamped after `now`: counted at `now`
    r2 = step(r.account, r.users, bad, (D0 + 1) * DAY + 10, cfg, "ws", "acme")
    assert r2.account.nps == [] and r2.account.csat == []
    assert r2.account.seats is None and r2.account.renewal_day is None
    assert r2.account.last_seen == (D0 + 1) * DAY + 10


def test_malformed_events_are_skipped_with_a_reason_and_the_rest_applied() -> None:
    cfg = load_config()
    good = ev(1, 0, "Logged In")
    bad_props = Event("ws", "bad1", EventType.TRACK, good.timestamp, good.timestamp,
                      Source.SEGMENT, name="Feature Gated Clicked", user_id="dana",
                      account_id="acme", properties=["not", "a", "dict"])  # type: ignore[arg-type]
    bad_time = Event("ws", "bad2", EventType.TRACK, None, 0.0,  # type: ignore[arg-type]
                     Source.SEGMENT, name="Logged In", user_id="sam", account_id="acme")
    r = step(None, {}, [bad_props, good, bad_time], (D0 + 1) * DAY, cfg, "ws", "acme")
    assert len(r.skipped) == 2
    assert r.skipped[0].startswith("'bad2'")
    assert r.skipped[1].startswith("bad1: AttributeError")
    assert r.account.last_seen == good.timestamp


def test_an_account_is_weighed_as_its_segment() -> None:
    """A segment with its own weights scores its accounts with them, and only them."""
    cfg = load_config()
    weights = {n: m.weight for n, m in cfg.metrics.items()}
    weights["recency"] += weights["relationship"]
    weights["relationship"] = 0
    own = replace(cfg, segment_weights={"enterprise": weights}).validate()

    def assessed(config: ScoringConfig, segment: str) -> AccountAssessment:
        events = [ev(0, 0, None, type_=EventType.GROUP, traits={"segment": segment}),
                  ev(1, 0, "Logged In")]
        return step(None, {}, events, (D0 + 1) * DAY, config, "ws", "acme").assessment

    big, small = assessed(own, "enterprise"), assessed(own, "smb")
    assert big.segment == "enterprise" and small.segment == "smb"
    assert big.component("relationship").weight == 0
    assert big.component("recency").weight == weights["recency"]
    assert big.score == sum(c.points for c in big.components)
    assert big.score != assessed(cfg, "enterprise").score
    assert small.components == assessed(cfg, "smb").components

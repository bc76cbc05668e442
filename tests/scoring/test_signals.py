"""One story per signal, in event time, with boundaries on both sides and the exact
sentences Telltale writes."""

from __future__ import annotations

from streams.health_change import validate
from tests.scoring.story import Story, saturated_account, small_account, upgrade_curious_account

OTHERS = [f"u{i:02d}" for i in range(1, 25)]


def team_account(story: Story, until: int, *, dana_until: int | None = None,
                 seats: int = 30, others: list[str] | None = None) -> None:
    """A 30-seat mid-market account: Dana Reyes publishes reports every day (the power
    user), 24 colleagues look at dashboards every day."""
    story.group(0, name="Acme", seats=seats, segment="mid_market",
                created_at=story.iso_day(-200), owner="Kim Lee")
    story.identify(0, "dana", "Dana Reyes", "dana@acme.test")
    team = OTHERS if others is None else others
    for u in team:
        story.identify(0, u, f"User {u}")
    story.daily(["dana"], range(0, (dana_until if dana_until is not None else until) + 1),
                "Report Published", times=6)
    story.daily(team, range(0, until + 1))


def all_valid(story: Story) -> None:
    for change in story.changes:
        validate(change.to_dict())


def test_power_user_inactive_starts_on_day_21_and_ends_when_she_returns() -> None:
    s = Story()
    team_account(s, 60, dana_until=10)  # her last active day is day 10
    s.run_to(30)
    assert s.active("power_user_inactive") == []
    changes = s.run_to(31)
    started = s.started(changes, "power_user_inactive")
    assert len(started) == 1
    sig = started[0]
    assert sig.subject == "dana"
    assert sig.key == f"power_user_inactive:dana@{20_031}"
    assert sig.text == "Dana Reyes, a power user, has been inactive for 21 days"
    assert changes[-1].explanation == (
        "Health held at 73 (healthy). "
        "New: Dana Reyes, a power user, has been inactive for 21 days."
    )
    s.run_to(39, hour=23)
    assert [x.key for x in s.active("power_user_inactive")] == [sig.key]  # same episode
    s.track(40, "dana", "Report Published", times=2)
    changes = s.run_to(40, hour=12)
    assert [x.key for x in s.ended(changes, "power_user_inactive")] == [sig.key]
    assert changes[-1].explanation == (
        "Health rose 15 points (73 → 88) because Dana Reyes, a power user, is active again."
    )
    assert changes[-1].day == 20_040
    all_valid(s)


def test_a_late_event_from_a_quiet_power_user_continues_her_episode() -> None:
    """An offline SDK delivers an event from day 12 on day 35: Dana's last active day moves,
    but she has still been quiet for 23 days, so the episode neither ends nor restarts."""
    s = Story()
    team_account(s, 60, dana_until=10)
    s.run_to(31)
    (episode,) = s.active("power_user_inactive")
    s.track(12, "dana", "Report Published")
    changes = s.run_to(35)
    assert s.started(changes, "power_user_inactive") == []
    assert s.ended(changes, "power_user_inactive") == []
    (still,) = s.active("power_user_inactive")
    assert still.key == episode.key
    assert still.detail["days"] == 23
    all_valid(s)


def test_power_user_going_quiet_lowers_health_and_names_her() -> None:
    s = Story()
    team_account(s, 40, dana_until=10)
    changes = s.run_to(24, hour=1)
    fall = [c for c in changes if c.delta < 0][-1]
    assert fall.explanation == (
        "Health fell 14 points (87 → 73) because Dana Reyes, a power user, "
        "has been inactive for 14 days."
    )
    # the 14-point fall within the week puts the account on the list too
    assert fall.reasons == ["score_moved", "signal_started", "attention_changed"]
    assert fall.attention is not None
    assert [r.type for r in fall.attention.reasons] == ["health_fell"]
    assert fall.drivers[0].component == "power_users"
    assert fall.drivers[0].delta == -15  # other components gained a point meanwhile


def test_user_inactive_10_and_14_days_for_regular_users_only() -> None:
    s = Story()
    team_account(s, 40, others=OTHERS[:20])
    s.identify(0, "sam", "Sam Ortiz")
    s.daily(["sam"], range(0, 20))  # last active day 19
    s.identify(0, "kai", "Kai Brown")
    s.daily(["kai"], range(18, 20))  # only two days: not a regular user
    changes, sig = s.starts_on(29, "user_inactive_10d")
    assert [(x.subject, x.text, x.severity) for x in sig] == [
        ("sam", "Sam Ortiz has been inactive for 10 days", "info")
    ]
    changes, sig = s.starts_on(33, "user_inactive_14d")
    assert [x.text for x in sig] == ["Sam Ortiz has been inactive for 14 days"]
    assert changes[-1].explanation == (
        "Health held at 89 (healthy). New: Sam Ortiz has been inactive for 14 days."
    )
    assert all(x.subject != "kai" for x in s.assessment.signals)
    s.track(35, "sam", "Logged In")
    changes = s.run_to(35, hour=12)
    assert {x.type for x in s.ended(changes, "user_inactive_10d")} == {"user_inactive_10d"}
    assert {x.type for x in s.ended(changes, "user_inactive_14d")} == {"user_inactive_14d"}
    assert changes[-1].explanation.endswith("Resolved: Sam Ortiz is active again.")


def _seat_story(stoppers: int) -> Story:
    s = Story()
    s.group(0, name="Acme", seats=30, segment="mid_market", created_at=s.iso_day(-200))
    team = [f"u{i:02d}" for i in range(25)]
    s.daily(team[:stoppers], range(0, 60))  # these stop after day 59
    s.daily(team[stoppers:], range(0, 100))
    return s


def test_seat_utilisation_drop_of_20_percent_fires() -> None:
    changes, sig = _seat_story(5).starts_on(89, "seat_utilisation_drop")
    assert [x.text for x in sig] == ["seat usage fell 20% (25 → 20 of 30 seats)"]
    assert changes[-1].explanation == (
        "Health fell 5 points (77 → 72) because seat usage fell 20% (25 → 20 of 30 seats) "
        "and weighted engagement is 9.4 points per seat per week, down 19% on the 60 days "
        "before (was down 8%)."
    )


def test_seat_utilisation_drop_below_20_percent_does_not_fire() -> None:
    s = _seat_story(4)
    s.run_to(95)
    assert s.active("seat_utilisation_drop") == []


def _core_story(after: int) -> Story:
    s = Story()
    s.group(0, name="Acme", seats=10, created_at=s.iso_day(-300))
    for d in range(0, 110):
        s.track(d, "ana", "Workflow Completed", times=10 if d < 70 else after)
        s.track(d, "ben", "Dashboard Viewed")
    return s


def test_core_feature_decline_of_30_percent_fires() -> None:
    _, sig = _core_story(7).starts_on(98, "core_feature_decline")
    assert [x.text for x in sig] == ["core-feature use fell 30% (280 → 196 events in 28 days)"]


def test_core_feature_decline_of_20_percent_does_not_fire() -> None:
    s = _core_story(8)
    s.run_to(108)
    assert s.active("core_feature_decline") == []


def test_ticket_spike_three_tickets_within_ten_days() -> None:
    s = _support_account_story([1, 5, 10])
    changes = s.run_to(10, hour=12)
    assert [x.text for x in s.started(changes, "ticket_spike")] == [
        "3 support tickets were opened in 10 days"
    ]
    s.run_to(11, hour=0)
    assert s.active("ticket_spike") == []  # day 1 fell out of the 10 days
    s2 = _support_account_story([1, 5, 11])
    s2.run_to(20)
    assert not any(c for c in s2.changes if s2.started([c], "ticket_spike"))


def _support_account_story(days: list[int]) -> Story:
    s = Story()
    small_account(s)
    for i, d in enumerate(days):
        s.track(d, "ana", "Ticket Opened", ticket_id=f"T-{i}", priority="high")
        s.track(d, "ana", "Ticket Resolved", ticket_id=f"T-{i}")
    return s


def test_ticket_open_five_days() -> None:
    s = Story()
    small_account(s)
    s.track(3, "ana", "Ticket Opened", ticket_id="T-7", priority="low")
    changes, sig = s.starts_on(8, "ticket_open_long")
    assert [x.text for x in sig] == ["support ticket T-7 has been open for 5 days"]
    assert sig[0].key == "ticket_open_long:T-7@20008"
    s.track(9, None, "Ticket Resolved", ticket_id="T-7")
    changes = s.run_to(9, hour=12)
    assert [x.key for x in s.ended(changes, "ticket_open_long")] == [sig[0].key]
    assert "Resolved: support ticket T-7 was closed." in changes[-1].explanation


def test_payment_failed_until_paid() -> None:
    s = Story()
    small_account(s)
    s.track(5, None, "Payment Failed", amount=1200)
    changes = s.run_to(5, hour=12)
    sig = s.started(changes, "payment_failed")
    assert [x.text for x in sig] == ["a payment of $1,200 failed"]
    assert changes[-1].explanation == (
        "Health fell 6 points (69 → 63) because a payment of $1,200 failed."
    )
    s.track(7, None, "Payment Succeeded", amount=1200)
    changes = s.run_to(7, hour=12)
    assert s.ended(changes, "payment_failed")
    assert changes[-1].explanation == (
        "Health rose 7 points (63 → 70) because the failed payment was settled."
    )


def test_downgrade_and_seat_reduction_last_thirty_days() -> None:
    s = Story()
    small_account(s)
    s.track(5, None, "Plan Downgraded", from_plan="Pro", to_plan="Starter")
    s.track(6, None, "Seats Changed", seats=3, previous_seats=5)
    s.run_to(6, hour=12)
    assert [x.text for x in s.active("plan_downgraded")] == [
        "the plan was downgraded from Pro to Starter"
    ]
    assert [x.text for x in s.active("seats_reduced")] == ["seats were cut from 5 to 3"]
    s.run_to(34, hour=23)
    assert s.active("plan_downgraded")
    s.run_to(35)
    assert s.active("plan_downgraded") == []
    assert s.active("seats_reduced")
    s.run_to(36)
    assert s.active("seats_reduced") == []


def test_seat_reduction_from_group_trait() -> None:
    s = Story()
    small_account(s)
    s.group(4, seats=4)
    s.run_to(4, hour=12)
    assert [x.text for x in s.active("seats_reduced")] == ["seats were cut from 5 to 4"]


def test_nps_below_seven_is_a_detractor_seven_is_not() -> None:
    s = Story()
    small_account(s)
    s.identify(0, "ana", "Ana Silva")
    s.track(3, "ben", "NPS Submitted", score=7)
    s.track(4, "ana", "NPS Submitted", score=6)
    changes = s.run_to(4, hour=12)
    sig = s.started(changes, "nps_detractor")
    assert [(x.subject, x.text) for x in sig] == [("ana", "Ana Silva gave an NPS of 6")]
    s.track(20, "ana", "NPS Submitted", score=9)
    changes = s.run_to(20, hour=12)
    assert s.ended(changes, "nps_detractor")
    assert s.active("nps_detractor") == []


def test_meeting_missed_until_a_meeting_is_held() -> None:
    s = Story()
    small_account(s)
    s.track(3, None, "QBR Skipped")
    changes = s.run_to(3, hour=12)
    assert [x.text for x in s.started(changes, "meeting_missed")] == ["a QBR was skipped"]
    s.track(6, None, "Meeting Held")
    changes = s.run_to(6, hour=12)
    assert s.ended(changes, "meeting_missed")
    s.track(8, None, "Meeting Missed")
    changes = s.run_to(8, hour=12)
    assert [x.text for x in s.started(changes, "meeting_missed")] == ["a meeting was missed"]


def test_onboarding_milestone_missed_on_the_day_after_due() -> None:
    s = Story()
    s.group(0, name="Newco", seats=10, created_at=s.iso_day(0))
    s.daily(["ana"], range(0, 20), "Logged In")
    s.run_to(7, hour=23)
    assert all(x.detail.get("milestone") != "workspace_setup"
               for x in s.active("onboarding_milestone_missed"))
    changes = s.run_to(8)
    sig = s.started(changes, "onboarding_milestone_missed")
    assert [x.text for x in sig] == [
        "onboarding milestone workspace setup is 1 day overdue (due day 7)"
    ]
    s.track(10, "ana", "Dashboard Viewed")
    changes = s.run_to(10, hour=12)
    assert [x.detail["milestone"] for x in s.ended(changes, "onboarding_milestone_missed")] == [
        "workspace_setup"
    ]
    assert "onboarding milestone workspace setup was reached" in changes[-1].explanation


def test_account_inactive_45_days_is_lost() -> None:
    s = Story()
    s.group(0, name="Acme", seats=5, created_at=s.iso_day(-300))
    s.daily(["ana", "ben"], range(0, 11))  # last activity day 10
    s.run_to(54, hour=23)
    assert s.active("account_inactive") == []
    assert s.assessment.lifecycle != "churned"
    changes = s.run_to(55)
    assert [x.text for x in s.started(changes, "account_inactive")] == [
        "nobody has used the product for 45 days"
    ]
    assert s.assessment.lifecycle == "churned"
    assert "lifecycle_changed" in changes[-1].reasons


def test_seat_saturation_with_advanced_use_is_expansion() -> None:
    s = saturated_account(Story(), 24)  # 80% of 30 seats
    sig = s.active("seat_saturation")
    assert [(x.severity, x.text) for x in sig] == [
        ("expansion", "24 of 30 seats are in use (80%) and advanced features are being used")
    ]
    assert saturated_account(Story(), 23).active("seat_saturation") == []


def test_gated_feature_click_and_upgrade_page_are_expansion_signals() -> None:
    s = upgrade_curious_account(Story())
    assert [x.text for x in s.active("gated_feature_clicked")] == [
        "users clicked a gated feature (sso)"
    ]
    assert [x.text for x in s.active("upgrade_interest")] == ["users looked at upgrading"]
    s.run_to(17, hour=0)
    assert s.active("gated_feature_clicked") == []  # 14 days later
    assert s.active("upgrade_interest")
    s.run_to(18, hour=0)
    assert s.active("upgrade_interest") == []


def test_renewal_checkpoints_are_info_signals() -> None:
    s = Story()
    s.group(0, name="Acme", seats=5, created_at=s.iso_day(-300), renewal_date=s.iso_day(200))
    s.daily(["ana", "ben"], range(0, 120))
    _, sig = s.starts_on(20, "renewal_checkpoint")
    assert [(x.severity, x.text) for x in sig] == [
        ("info", "renewal in 180 days: T-180 health check")
    ]
    changes = s.run_to(110)
    assert [x.detail["checkpoint"] for x in s.active("renewal_checkpoint")] == [90]
    assert s.ended(changes, "renewal_checkpoint")
    all_valid(s)


def test_higher_tier_question_and_upgrade_page_event_are_upgrade_interest() -> None:
    s = Story()
    small_account(s)
    s.track(3, "ana", "Higher Tier Asked")
    s.track(3, "ben", "Upgrade Page Viewed")
    s.page(3, "ben", "Upgrade")
    changes = s.run_to(3, hour=12)
    assert [x.text for x in s.started(changes, "upgrade_interest")] == [
        "users looked at upgrading (3 times)"
    ]
    assert s.started(changes, "upgrade_interest")[0].severity == "expansion"


def test_a_user_away_for_90_days_is_no_longer_counted_not_back() -> None:
    s = Story()
    small_account(s)  # ana and ben active days 0-29
    s.identify(0, "ana", "Ana Silva")
    s.daily(["ben"], range(30, 130))
    s.run_to(39, hour=0)
    assert [x.subject for x in s.active("user_inactive_10d")] == ["ana"]
    s.run_to(118, hour=23)
    assert s.active("user_inactive_14d")
    changes = s.run_to(119, hour=1)  # last seen day 29 + 90 days
    assert s.ended(changes, "user_inactive_14d")
    assert changes[-1].explanation.endswith(
        "Resolved: Ana Silva has been away for 90+ days and is no longer counted."
    )


def test_the_flagship_story_names_the_power_user_and_the_seats() -> None:
    """30 seats, 25 people; Dana Reyes (the power user) stops on day 40 and five
    colleagues stopped on day 24: on day 54 both show up in one explanation."""
    s = Story()
    s.group(0, name="Acme", seats=30, segment="mid_market", created_at=s.iso_day(-200),
            renewal_date=s.iso_day(150))
    s.identify(0, "dana", "Dana Reyes")
    team = [f"u{i:02d}" for i in range(24)]
    s.daily(["dana"], range(0, 41), "Report Published", times=3)
    s.daily(team[:5], range(0, 25))
    s.daily(team[5:], range(0, 70), "Report Published")
    s.run_to(53, hour=23)
    changes = s.run_to(54, hour=1)
    assert [c.explanation for c in changes] == [
        "Health fell 18 points (89 → 71; down 19 in 7 days) because Dana Reyes, a power "
        "user, has been inactive for 14 days and seat usage fell 20% (25 → 20 of 30 seats)."
    ]
    change = changes[0]
    assert [d.component for d in change.drivers] == ["power_users", "active_seats"]
    assert change.current.band == "healthy"  # told as a fall, before the band moves
    assert change.delta == -18 and change.change_7d == -19


def test_a_signal_text_said_again_is_the_one_its_numbers_give() -> None:
    """Texts are remembered by type and numbers: a number's type counts (``True`` is not
    ``1``), and numbers that cannot be a key (a list) are said afresh."""
    from scoring import explain
    from scoring.signals.episodes import _text

    for detail in ({"active": 19, "seats": 20, "pct": 95},
                   {"active": True, "seats": 20, "pct": 95},
                   {"active": 1, "seats": 20, "pct": 95},
                   {"active": 19, "seats": 20, "pct": 95}):
        assert _text("seat_saturation", detail) == explain.signal_text("seat_saturation", detail)
    gated = {"count": 3, "features": ["sso", "audit log"]}
    assert _text("gated_feature_clicked", gated) == explain.signal_text(
        "gated_feature_clicked", gated)

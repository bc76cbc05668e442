"""Lifecycle and forecast stages as stories, plus segment derivation."""

from __future__ import annotations

from dataclasses import replace

from scoring.config import ScoringConfig, load_config
from scoring.stages import forecast, segment
from state.aggregates import AccountState
from tests.scoring.story import Story


def test_lifecycle_onboarding_then_adopting_then_mature() -> None:
    s = Story()
    s.group(0, name="Newco", seats=10, created_at=s.iso_day(0))
    s.daily(["ana", "ben"], range(0, 100), "Dashboard Viewed")
    s.run_to(1)
    assert s.assessment.lifecycle == "onboarding"
    # all four milestones reached on day 12: onboarding is over
    for name in ("Report Published", "Teammate Invited", "Workflow Completed"):
        s.track(12, "ana", name)
    s.run_to(12, hour=9)
    assert s.assessment.lifecycle == "onboarding"
    changes = s.run_to(12, hour=12)
    assert s.assessment.lifecycle == "adopting"
    change = [c for c in changes if "lifecycle_changed" in c.reasons][-1]
    assert change.previous is not None and change.previous.lifecycle == "onboarding"
    assert change.explanation.endswith("The account is now adopting (was onboarding).")
    s.run_to(89, hour=23)
    assert s.assessment.lifecycle == "adopting"
    s.run_to(90)
    assert s.assessment.lifecycle == "mature"


def test_onboarding_ends_at_30_days_even_with_milestones_open() -> None:
    s = Story()
    s.group(0, name="Newco", seats=10, created_at=s.iso_day(0))
    s.daily(["ana"], range(0, 40), "Logged In")
    s.run_to(29, hour=23)
    assert s.assessment.lifecycle == "onboarding"
    s.run_to(30)
    assert s.assessment.lifecycle == "adopting"
    assert {x.detail["milestone"] for x in s.active("onboarding_milestone_missed")} == {
        "workspace_setup", "first_report", "team_invited"
    }


def test_renewal_window_opens_per_segment() -> None:
    s = Story()
    s.group(0, name="Big", seats=10, arr=120_000, created_at=s.iso_day(-400),
            renewal_date=s.iso_day(200))
    s.daily(["ana", "ben"], range(0, 40))
    s.run_to(19, hour=23)
    assert s.assessment.segment == "enterprise"
    assert s.assessment.lifecycle == "mature"
    s.run_to(20)  # 180 days before renewal
    assert s.assessment.lifecycle == "renewal_window"
    assert s.assessment.days_to_renewal == 180

    m = Story()
    m.group(0, name="Mid", seats=10, segment="mid-market", created_at=m.iso_day(-400),
            renewal_date=m.iso_day(130))
    m.daily(["ana", "ben"], range(0, 20))
    m.run_to(9, hour=23)
    assert m.assessment.segment == "mid_market"
    assert m.assessment.lifecycle == "mature"
    m.run_to(10)
    assert m.assessment.lifecycle == "renewal_window"


def test_churned_by_cancellation_and_by_inactivity_then_reactivated() -> None:
    s = Story()
    s.group(0, name="Acme", seats=5, created_at=s.iso_day(-300))
    s.daily(["ana"], range(0, 11))
    s.track(8, None, "Subscription Cancelled")
    s.run_to(8, hour=12)
    assert s.assessment.lifecycle == "churned"
    assert s.assessment.component("financial").points == 0

    q = Story()
    q.group(0, name="Quiet", seats=5, created_at=q.iso_day(-300))
    q.daily(["ana", "ben"], range(0, 11))
    q.run_to(55)
    assert q.assessment.lifecycle == "churned"
    q.track(60, "ana", "Logged In")
    changes = q.run_to(60, hour=12)
    assert q.assessment.lifecycle == "reactivated"
    change = changes[-1]
    assert "lifecycle_changed" in change.reasons
    assert "The account is now reactivated (was churned)." in change.explanation
    assert q.ended(changes, "account_inactive")
    q.daily(["ana"], range(61, 100))
    q.run_to(89, hour=23)
    assert q.assessment.lifecycle == "reactivated"
    q.run_to(90, hour=12)
    assert q.assessment.lifecycle == "mature"


def test_forecast_commit_best_case_and_at_risk() -> None:
    s = Story()
    s.group(0, name="Acme", seats=4, created_at=s.iso_day(-300), renewal_date=s.iso_day(100))
    for d in range(0, 60):
        for u in ("ana", "ben", "cy", "dee"):
            s.track(d, u, "Workflow Completed", times=3)
            s.track(d, u, "Dashboard Viewed")
    s.run_to(40)
    assert s.assessment.band == "healthy"
    assert s.assessment.forecast == "commit"
    s.track(41, None, "Payment Failed", amount=99)
    s.run_to(41, hour=12)
    # a new forecast must hold for 7 days before it is shown
    s.run_to(47, hour=23)
    assert s.assessment.forecast == "commit"
    changes = s.run_to(48, hour=1)
    assert s.assessment.forecast == "best_case"
    change = [c for c in changes if "forecast_changed" in c.reasons][-1]
    assert "Renewal forecast moved from commit to best case." in change.explanation
    # usage stops: health collapses, the forecast goes to at risk
    s.run_to(100)
    assert s.assessment.band == "at_risk"
    assert s.assessment.forecast == "at_risk"


def test_no_forecast_without_renewal_date() -> None:
    s = Story()
    s.group(0, name="Acme", seats=4, created_at=s.iso_day(-300))
    s.daily(["ana"], range(0, 3))
    s.run_to(3)
    assert s.assessment.forecast is None
    assert s.assessment.days_to_renewal is None


def test_forecast_rules() -> None:
    c = load_config()
    assert forecast("healthy", "mature", 0, 100, c, "smb", 0) == "commit"
    assert forecast("healthy", "mature", -10, 60, c, "smb", 0) == "best_case"
    assert forecast("healthy", "mature", -9, 60, c, "smb", 0) == "commit"
    # months before renewal a monthly swing does not move the forecast
    assert forecast("healthy", "mature", -15, 100, c, "smb", 0) == "commit"
    # having left commit, recovery needs the drop below half the threshold
    assert forecast("healthy", "mature", -6, 60, c, "smb", 0, "best_case") == "best_case"
    assert forecast("healthy", "mature", -4, 60, c, "smb", 0, "best_case") == "commit"
    assert forecast("watch", "mature", 0, 60, c, "smb", 0) == "best_case"
    assert forecast("watch", "renewal_window", -12, 60, c, "smb", 0) == "at_risk"
    assert forecast("watch", "mature", -12, 200, c, "smb", 0) == "best_case"
    assert forecast("at_risk", "mature", 5, 300, c, "smb", 0) == "at_risk"
    assert forecast("healthy", "churned", 0, 30, c, "smb", 0) == "at_risk"
    assert forecast("healthy", "mature", 0, None, c, "smb", 0) is None


def test_segment_from_trait_or_arr() -> None:
    c: ScoringConfig = load_config()
    a = AccountState("ws", "a")
    assert segment(a, c) == "smb"
    a.arr = 50_001
    assert segment(a, c) == "enterprise"
    a.arr = 50_000
    assert segment(a, c) == "mid_market"
    a.arr = 15_000
    assert segment(a, c) == "smb"
    a.segment_trait = "enterprise"
    assert segment(a, c) == "enterprise"
    a.segment_trait = "unknown-tier"
    assert segment(a, c) == "smb"
    c2 = replace(c, renewal=replace(c.renewal, enterprise_arr=10_000.0, mid_market_arr=5_000.0))
    assert segment(a, c2) == "enterprise"


def test_smb_renewal_window_opens_90_days_before() -> None:
    s = Story()
    s.group(0, name="Small", seats=3, arr=4_000, created_at=s.iso_day(-400),
            renewal_date=s.iso_day(100))
    s.daily(["ana"], range(0, 15))
    s.run_to(9, hour=23)
    assert s.assessment.segment == "smb"
    assert s.assessment.days_to_renewal == 91
    assert s.assessment.lifecycle == "mature"
    s.run_to(10)
    assert s.assessment.lifecycle == "renewal_window"

"""Attention: which accounts need a person today, and why. Stories in event time through
the same ``step`` as production, the sentences rendered for the day they are read, the
rules as configuration, and when a health change is an alert."""

from __future__ import annotations

import re
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from scoring.attention import (
    EXPANSION_REASONS,
    Attention,
    AttentionReason,
    HealthFacts,
    ReasonType,
    Severity,
    decide,
    priority,
    render,
)
from scoring.changes import HealthChange
from scoring.config import (
    DEFAULT_CONFIG_PATH,
    AttentionRules,
    ConfigError,
    config_from_dict,
    dump_config,
    load_config,
)
from scoring.engine import step
from state.aggregates import AccountState
from tests.scoring.story import START_DAY, Story, small_account
from tests.scoring.test_signals import _seat_story, all_valid, team_account


def types(attention: Attention) -> list[ReasonType]:
    return [r.type for r in attention.reasons]


def with_reason(changes: list[HealthChange], reason: str) -> list[HealthChange]:
    return [c for c in changes if reason in c.reasons]


# --------------------------------------------------------------------------- stories


def test_a_champion_quiet_for_21_days_lists_a_healthy_account_and_names_her() -> None:
    s = Story()
    team_account(s, 60, dana_until=10)  # Dana Reyes is last seen on day 10
    s.run_to(30)
    assert ReasonType.CHAMPION_QUIET not in types(s.assessment.attention)
    changes = s.run_to(31)
    a = s.assessment
    assert a.band == "healthy"  # the score alone would leave her account off the list
    assert a.attention.needed
    first = a.attention.reasons[0]
    assert first.type is ReasonType.CHAMPION_QUIET
    assert first.severity is Severity.HIGH
    assert first.subject == "dana"
    assert first.since_day == START_DAY + 11  # the day after she was last seen
    assert first.params == {"name": "Dana Reyes", "user_id": "dana",
                            "last_seen": s.iso_day(10)}
    assert a.attention.playbooks == ("champion_loss",)
    assert render(first, a.day) == "Dana Reyes, a power user, has not been seen for 21 days"
    # read on a later day, the same stored reason says the later count
    assert render(first, START_DAY + 38) == (
        "Dana Reyes, a power user, has not been seen for 28 days"
    )
    (told,) = with_reason(changes, "attention_changed")
    assert told.alert
    assert told.attention == a.attention
    assert told.to_dict()["attention"] == a.attention.to_dict()
    all_valid(s)


def test_attention_changed_is_emitted_once_per_standing_change_not_daily() -> None:
    s = Story()
    team_account(s, 70, dana_until=10)
    s.run_to(31)
    quiet = with_reason(s.run_to(41), "attention_changed")
    assert quiet == []  # ten more quiet days: the days count moves, the standing does not
    s.run_to(51)
    assert s.assessment.attention.reasons[0].severity is Severity.HIGH
    changes = s.run_to(52)  # quiet 42 days: one level worse
    (worse,) = with_reason(changes, "attention_changed")
    assert worse.alert
    # A change only about attention says why in its one sentence, as the worklist does.
    assert worse.reasons == ["attention_changed"]
    assert worse.explanation.endswith(
        "Needs attention: Dana Reyes, a power user, has not been seen for 42 days.")
    assert s.assessment.attention.reasons[0].severity is Severity.CRITICAL
    later = with_reason(s.run_to(60), "attention_changed")
    # only a new reason is news now (the reports she published stopped too)
    assert [ReasonType.CORE_USAGE_FELL in types(c.attention) for c in later  # type: ignore[arg-type]
            ] == [True]
    s.track(60, "dana", "Report Published", times=6)
    back = with_reason(s.run_to(60, hour=12), "attention_changed")
    assert len(back) == 1
    assert ReasonType.CHAMPION_QUIET not in types(s.assessment.attention)


def test_a_renewal_checkpoint_alone_does_not_list_a_healthy_stable_account() -> None:
    s = Story()
    s.group(0, name="Acme", seats=3, arr=60_000, created_at=s.iso_day(-300),
            renewal_date=s.iso_day(200))
    s.daily(["ana", "ben", "cy"], range(0, 130), "Report Published", times=3)
    s.run_to(20)
    a = s.assessment
    assert (a.band, a.segment, a.days_to_renewal) == ("healthy", "enterprise", 180)
    assert not a.attention.needed and a.attention.priority == 0.0
    assert a.attention.playbooks == ("renewal_health_check",)
    changes = s.run_to(110)  # T-90: the value review checkpoint passes
    assert s.assessment.attention.playbooks == ("renewal_value_review",)
    assert not s.assessment.attention.needed
    (checkpoint,) = [c for c in changes if Story.started([c], "renewal_checkpoint")]
    assert checkpoint.reasons == ["signal_started", "signal_ended"]
    assert not checkpoint.alert
    assert checkpoint.to_dict()["alert"] is False


def test_a_renewal_near_while_health_falls_is_at_risk() -> None:
    s = Story()
    s.group(0, name="Acme", seats=5, created_at=s.iso_day(-300), renewal_date=s.iso_day(57))
    for d in range(0, 30):
        for u in ("ana", "ben", "cy"):
            s.track(d, u, "Workflow Completed", times=2)
    s.run_to(29, hour=12)
    s.track(29, None, "Payment Failed", hour=14, amount=10)
    s.track(29, None, "Plan Downgraded", hour=14, from_plan="Pro", to_plan="Lite")
    s.run_to(29, hour=16)
    a = s.assessment.attention
    assert types(a)[0] is ReasonType.RENEWAL_AT_RISK
    renewal = a.reasons[0]
    assert renewal.severity is Severity.CRITICAL
    assert render(renewal, START_DAY + 29) == (
        "Renewal in 28 days and health fell 10 points this week"
    )
    assert {ReasonType.HEALTH_FELL, ReasonType.PAYMENT_FAILED,
            ReasonType.PLAN_DOWNGRADED} <= set(types(a))
    assert "renewal_contract" in a.playbooks and "failed_payment" in a.playbooks


def test_a_seat_drop_is_a_reason_with_its_numbers() -> None:
    s = _seat_story(5)
    s.run_to(89)
    (seats,) = [r for r in s.assessment.attention.reasons if r.type is ReasonType.SEATS_FELL]
    assert seats.params == {"previous": 25, "current": 20, "seats": 30, "drop_pct": 20.0}
    assert render(seats, START_DAY + 89) == (
        "Seat use fell 20% (25 → 20 of 30 seats) in 30 days"
    )


def test_a_failed_payment_is_listed_until_paid_and_its_end_is_not_an_alert() -> None:
    s = Story()
    small_account(s)
    s.track(5, None, "Payment Failed", amount=1200)
    changes = s.run_to(5, hour=12)
    a = s.assessment.attention
    (paid,) = [r for r in a.reasons if r.type is ReasonType.PAYMENT_FAILED]
    assert paid.severity is Severity.HIGH and paid.params == {"amount": 1200}
    assert "failed_payment" in a.playbooks
    assert with_reason(changes, "attention_changed")[0].alert
    assert render(paid, START_DAY + 8) == "A payment of $1,200 failed 3 days ago"
    s.track(7, None, "Payment Succeeded", amount=1200)
    changes = s.run_to(7, hour=12)
    assert ReasonType.PAYMENT_FAILED not in types(s.assessment.attention)
    (settled,) = with_reason(changes, "attention_changed")
    assert not settled.alert  # good news: recorded, nobody is paged


def test_an_onboarding_milestone_missed_starts_the_onboarding_playbook() -> None:
    s = Story()
    s.group(0, name="Newco", seats=10, created_at=s.iso_day(0))
    s.daily(["ana"], range(0, 20), "Logged In")
    s.run_to(8)
    a = s.assessment.attention
    (missed,) = [r for r in a.reasons if r.type is ReasonType.ONBOARDING_MISSED]
    assert missed.params == {"milestone": "workspace_setup", "due_days": 7}
    assert missed.since_day == START_DAY + 8
    assert "onboarding_rescue" in a.playbooks
    assert render(missed, START_DAY + 12) == (
        "Onboarding milestone workspace setup is 5 days overdue"
    )


def test_an_nps_detractor_names_the_person() -> None:
    s = Story()
    small_account(s)
    s.identify(0, "ana", "Ana Silva")
    s.track(4, "ana", "NPS Submitted", score=6)
    s.run_to(4, hour=12)
    a = s.assessment.attention
    (nps,) = [r for r in a.reasons if r.type is ReasonType.NPS_DETRACTOR]
    assert (nps.subject, nps.params) == ("ana", {"score": 6, "name": "Ana Silva"})
    assert "detractor_recovery" in a.playbooks
    assert render(nps, START_DAY + 16) == "Ana Silva gave an NPS of 6 (12 days ago)"


def test_expansion_leads_are_kept_apart_from_risk() -> None:
    s = Story()
    s.group(0, name="Acme", seats=30, created_at=s.iso_day(-300))
    s.daily([f"u{i:02d}" for i in range(26)], range(0, 10), "Report Published", times=2)
    s.track(5, "u00", "Export Created")
    s.track(6, "u01", "Feature Gated Clicked", feature="sso")
    changes = s.run_to(9, hour=12)
    a = s.assessment.attention
    assert [r.type for r in a.expansion] == [ReasonType.SEAT_SATURATION,
                                            ReasonType.GATED_FEATURE]
    assert not EXPANSION_REASONS & set(types(a))
    assert "expansion_lead" in a.playbooks
    assert render(a.expansion[1], a.day) == "Users clicked a gated feature (sso)"
    (lead,) = [c for c in changes if Story.started([c], "gated_feature_clicked")]
    assert lead.reasons == ["signal_started"]
    assert not lead.alert  # a lead for the worklist's expansion list, not a page


def test_a_minor_reason_and_its_resolution_are_not_alerts() -> None:
    s = Story()
    small_account(s)
    s.track(3, None, "Meeting Missed")
    changes = s.run_to(3, hour=12)
    (missed,) = [r for r in s.assessment.attention.reasons
                 if r.type is ReasonType.MEETING_MISSED]
    assert missed.severity is Severity.LOW
    (started,) = with_reason(changes, "attention_changed")
    assert not started.alert  # listed, but below alert_severity: nobody is paged
    s.track(6, None, "Meeting Held")
    changes = s.run_to(6, hour=12)
    (ended,) = [c for c in changes if Story.ended([c], "meeting_missed")]
    assert not ended.alert


def test_a_cancelled_account_is_lost_not_listed() -> None:
    s = Story()
    small_account(s)
    s.track(3, None, "Payment Failed", amount=100)
    s.track(5, None, "Subscription Cancelled")
    s.run_to(5, hour=12)
    assert s.assessment.lifecycle == "churned"
    assert s.assessment.attention == Attention(START_DAY + 5, 0.0)


def test_a_record_from_before_attention_was_kept_adopts_the_standing_silently() -> None:
    s = Story()
    small_account(s)
    s.track(3, None, "Payment Failed", amount=100)
    s.run_to(3, hour=12)
    acc = s.replay.accounts[("ws", "acme")].copy()
    assert acc.reported is not None and acc.reported.attention
    old = acc.reported.to_list()[:6]  # as written before the field existed
    acc = AccountState.from_list([*acc.to_list()[:13], old, *acc.to_list()[14:]])
    assert acc.reported is not None and acc.reported.attention is None
    r = step(acc, {}, [], Story.ts(3, 18), s.config, "ws", "acme")
    assert r.changes == []
    assert r.assessment.attention.needed


# --------------------------------------------------------------------------- sentences


SAMPLES: dict[ReasonType, tuple[dict[str, object], str]] = {
    ReasonType.CHAMPION_QUIET: ({"name": "Dana Reyes", "user_id": "dana",
                                 "last_seen": "2024-10-03"}, "22"),
    ReasonType.SEATS_FELL: ({"previous": 25, "current": 20, "seats": 30, "drop_pct": 20.0},
                            "25 → 20 of 30"),
    ReasonType.CORE_USAGE_FELL: ({"previous": 40, "current": 26, "decline_pct": 35.0}, "35%"),
    ReasonType.HEALTH_FELL: ({"points": 14, "from": 72, "to": 58, "days": 7}, "72 → 58"),
    ReasonType.HEALTH_AT_RISK: ({"score": 35}, "35"),
    ReasonType.RENEWAL_AT_RISK: ({"renewal_day": 20_079, "renewal_date": "2024-12-22",
                                  "score": 58, "band": "watch", "forecast": "best_case",
                                  "fell_points": 14, "fell_days": 7, "fell_30d": None},
                                 "57 days and health fell 14"),
    ReasonType.PAYMENT_FAILED: ({"amount": 1250.5}, "$1,250.50"),
    ReasonType.PLAN_DOWNGRADED: ({"from": "Pro", "to": "Lite"}, "Pro to Lite"),
    ReasonType.SEATS_REDUCED: ({"from": 30, "to": 20}, "from 30 to 20"),
    ReasonType.SUPPORT_SPIKE: ({"count": 4, "days": 10}, "4 support tickets"),
    ReasonType.TICKET_OPEN_LONG: ({"ticket_id": "T-17"}, "T-17"),
    ReasonType.NPS_DETRACTOR: ({"score": 3, "name": "Ana Silva"}, "NPS of 3"),
    ReasonType.MEETING_MISSED: ({"kind": "qbr_skipped"}, "QBR"),
    ReasonType.ONBOARDING_MISSED: ({"milestone": "first_report", "due_days": 14},
                                   "first report is 22 days"),
    ReasonType.ACCOUNT_INACTIVE: ({}, "22 days"),
    ReasonType.PLAYBOOK_STEP_OVERDUE: ({"playbook": "Champion gone quiet",
                                        "step": "Call the champion", "due_day": 20_019},
                                       "3 days overdue"),
    ReasonType.SEAT_SATURATION: ({"active": 28, "seats": 30, "pct": 93}, "28 of 30"),
    ReasonType.GATED_FEATURE: ({"count": 3, "features": "sso, audit_log"}, "3 times"),
    ReasonType.UPGRADE_INTEREST: ({"count": 2}, "2 times"),
}


@pytest.mark.parametrize("kind", list(ReasonType))
def test_every_reason_renders_a_sentence_with_its_numbers(kind: ReasonType) -> None:
    params, expected = SAMPLES[kind]
    today = 20_022
    reason = AttentionReason(kind, Severity.MEDIUM, f"{kind}:x", 20_001, None, params)  # type: ignore[arg-type]
    text = render(reason, today)
    assert expected in text, text
    assert not re.search(r"[{}]|None|\b_\b", text), text
    assert text[0].isupper() or text[0].isdigit()
    # the wire form renders the same sentence
    again = AttentionReason.from_dict(reason.to_dict())
    assert render(again, today) == text


# --------------------------------------------------------------------------- decisions


def facts(**kw: object) -> HealthFacts:
    base: dict[str, object] = dict(today=20_000, score=80, band="healthy", score_before=80,
                                   change_30d=0, forecast="commit", segment="mid_market",
                                   arr=40_000.0, renewal_day=None, renewal_window=120)
    base.update(kw)
    return HealthFacts(**base)  # type: ignore[arg-type]


def test_score_derived_reasons_and_their_order() -> None:
    rules = AttentionRules()
    assert decide(facts(), [], rules).reasons == ()
    a = decide(facts(score=35, band="at_risk", score_before=60, renewal_day=20_050), [], rules)
    assert types(a) == [ReasonType.RENEWAL_AT_RISK, ReasonType.HEALTH_FELL,
                        ReasonType.HEALTH_AT_RISK]
    assert [r.severity for r in a.reasons] == [Severity.CRITICAL, Severity.HIGH, Severity.HIGH]
    # a continuing score-derived reason keeps the onset it was reported with
    held = decide(facts(score=35, band="at_risk", score_before=35), [], rules,
                  reported={"health_at_risk": 19_990})
    assert held.reasons[0].key == "health_at_risk@19990"
    assert held.reasons[0].since_day == 19_990
    # a renewal date alone, or one far away, never lists anyone
    assert not decide(facts(renewal_day=20_030), [], rules).needed
    far = decide(facts(score=50, band="watch", score_before=65, renewal_day=20_300), [], rules)
    assert types(far) == [ReasonType.HEALTH_FELL]


def test_priority_weighs_severity_arr_and_renewal() -> None:
    rules = AttentionRules()

    def reason(level: Severity) -> AttentionReason:
        return AttentionReason(ReasonType.HEALTH_FELL, level, f"k{level}", 1)

    assert priority([], 90_000.0, 10, rules) == 0.0
    one = priority([reason(Severity.HIGH)], None, None, rules)
    assert one == 4.0  # a perfect score, no ARR, no renewal date
    assert priority([reason(Severity.HIGH)], 50_000.0, None, rules) == 4.0 * 1.25
    assert priority([reason(Severity.HIGH)], 500_000.0, 90, rules) == 4.0 * 1.5 * 2
    assert priority([reason(Severity.HIGH)], None, None, rules, score=40) == 4.0 * 2.2
    assert priority([reason(Severity.HIGH), reason(Severity.MEDIUM)], None, None,
                    rules) == 4.0 + 0.5 * 2
    # many small worries do not outrank one grave one
    assert priority([reason(Severity.LOW)] * 4, None, None, rules) < priority(
        [reason(Severity.HIGH)], None, None, rules)


# --------------------------------------------------------------------------- configuration


def test_attention_rules_and_playbooks_are_configuration_and_round_trip(tmp_path: Path) -> None:
    base = load_config()
    assert base.attention.worklist_size == 5
    assert {p.name for p in base.playbooks} >= {
        "champion_loss", "onboarding_rescue", "detractor_recovery", "support_escalation",
        "failed_payment", "renewal_health_check", "renewal_value_review", "renewal_pricing",
        "renewal_contract", "expansion_lead"}
    changed = replace(base, version="attention-7", attention=replace(
        base.attention, health_fell_points=8, worklist_size=3,
        severity={**base.attention.severity, "meeting_missed": "medium"}),
        playbooks=base.playbooks[:2]).validate()
    path = tmp_path / "c.toml"
    path.write_text(dump_config(changed))
    assert load_config(path) == changed


def test_attention_problems_are_listed_with_the_rest() -> None:
    raw = tomllib.loads(DEFAULT_CONFIG_PATH.read_text())
    raw["attention"]["worklist_size"] = 0
    raw["attention"]["severity"]["champion_quiet"] = "dire"
    raw["attention"]["severity"]["gossip"] = "low"
    raw["attention"]["renewal_weak_bands"] = ["grey"]
    raw["playbooks"][0]["reasons"] = ["champion_quiet", "moon_phase"]
    raw["playbooks"][1]["segments"] = ["galactic"]
    raw["playbooks"][2]["steps"] = []
    raw["playbooks"][3]["name"] = raw["playbooks"][4]["name"]
    raw["playbooks"][5]["renewal_beyond_days"] = 400
    raw["bands"]["hysteresis"] = "three"
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw)
    joined = "\n".join(info.value.problems)
    for fragment in (
        "attention.worklist_size: must be positive",
        "attention.severity.champion_quiet: must be one of",
        "attention.severity.gossip: unknown reason type",
        "attention.renewal_weak_bands: unknown band 'grey'",
        "playbooks[0].reasons: unknown reason types ['moon_phase']",
        "playbooks.onboarding_rescue.segments: unknown ['galactic']",
        "playbooks.detractor_recovery.steps: at least one step",
        "playbooks.failed_payment: duplicate playbook name",
        "playbooks.renewal_health_check.renewal_beyond_days: needs renewal_within_days",
        "bands.hysteresis: must be a number",
    ):
        assert fragment in joined, joined
    assert len(info.value.problems) == 10


def test_playbooks_trigger_on_their_situations_only() -> None:
    book = {p.name: p for p in load_config().playbooks}
    support = {ReasonType.SUPPORT_SPIKE}

    def on(name: str, present: set[ReasonType], segment: str = "smb",
           arr: float | None = 5_000.0, dtr: int | None = None) -> bool:
        return book[name].triggers(frozenset(present), segment, arr, dtr)

    assert on("support_escalation", support)
    assert not on("support_escalation", {ReasonType.NPS_DETRACTOR})
    assert on("renewal_health_check", set(), "enterprise", 90_000.0, 150)
    assert not on("renewal_health_check", set(), "smb", 90_000.0, 150)  # enterprise only
    assert not on("renewal_health_check", set(), "enterprise", 90_000.0, 80)  # next one now
    assert on("renewal_value_review", set(), "mid_market", dtr=80)
    assert on("renewal_pricing", set(), dtr=45) and not on("renewal_pricing", set(), dtr=20)
    assert on("renewal_contract", set(), dtr=0) and not on("renewal_contract", set(), dtr=-1)
    assert not on("renewal_contract", set(), dtr=None)
    assert on("expansion_lead", {ReasonType.UPGRADE_INTEREST})
    big = replace(book["failed_payment"], min_arr=50_000.0)
    assert not big.triggers(frozenset({ReasonType.PAYMENT_FAILED}), "smb", 5_000.0, None)
    assert big.triggers(frozenset({ReasonType.PAYMENT_FAILED}), "smb", 60_000.0, None)
    a = decide(facts(segment="enterprise", renewal_day=20_150, renewal_window=180), [],
               AttentionRules(), load_config().playbooks)
    assert not a.needed and a.playbooks == ("renewal_health_check",)


def test_the_reported_standing_is_kept_in_the_account_record() -> None:
    s = Story()
    small_account(s)
    s.track(3, None, "Payment Failed", amount=100)
    s.run_to(3, hour=12)
    acc = s.replay.accounts[("ws", "acme")]
    assert acc.reported is not None
    (paid,) = [r for r in s.assessment.attention.reasons
               if r.type is ReasonType.PAYMENT_FAILED]
    assert [paid.key, paid.severity.rank] in acc.reported.attention
    again = AccountState.from_bytes(acc.to_bytes())
    assert again.reported is not None and again.reported.attention == acc.reported.attention

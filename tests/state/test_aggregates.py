"""Aggregate records: compact round trips, activity masks, bounded recent ids."""

from __future__ import annotations

from state.aggregates import (
    MASK_DAYS,
    YEAR_DAYS,
    AccountState,
    Reported,
    SignalState,
    UserState,
    UserSummary,
    epoch_day,
    epoch_week,
    id_hash,
    mark_active,
    year_active_days,
    year_oldest_active,
)


def full_account() -> AccountState:
    a = AccountState("ws", "acme", name="Acme", plan="Pro", arr=12_000.5,
                     segment_trait="smb", renewal_day=20_300, created_day=19_000,
                     owner="Kim", owner_email="kim@x.test", owner_slack_id="U1",
                     external_ids={"hubspot_company_id": "42"}, seats=30)
    a.first_seen, a.last_seen, a.clock = 1.7e9, 1.72e9, 1.73e9
    a.days = {20_000: 12.0, 20_001: 3.5}
    a.core_days = {20_000: 2}
    a.advanced_day = 20_001
    a.users = {"u1": UserSummary("Dana", "d@x.test", 19_990, 20_001, 1.72e9, 0b1011,
                                 {2857: 40.0}, True, 19_995),
               "u2": UserSummary()}
    a.milestones = {"first_report": 19_010}
    a.open_tickets = {"T1": 19_999}
    a.ticket_days, a.resolved_days = [19_999, 20_000], [20_000]
    a.csat = [[20_000, 2.0]]
    a.payment_failed = [20_000, 99.0]
    a.payment_failed_days = [20_000]
    a.downgrade = [19_990, "Pro", "Lite"]
    a.seat_reduction = [19_991, 30, 25]
    a.cancelled_day = None
    a.nps = [[19_980, 6, "u1"]]
    a.meetings = [[19_970, "qbr_skipped"]]
    a.gated = [[20_000, "sso", "u1"]]
    a.upgrade_days = [[20_001, "page:Pricing", None]]
    a.score, a.band, a.forecast, a.lifecycle = 55, "watch", "best_case", "mature"
    a.churned_day, a.reactivated_day = None, 19_900
    a.signals = {"k@1": SignalState("payment_failed", "k@1", None, "risk", 1.7e9,
                                    {"amount": 99.0}, "a payment of $99 failed")}
    a.history = {20_000: 55, 19_999: 60}
    a.reported = Reported(1.72e9, 60, "watch", "best_case", "mature",
                          {"support": {"points": 3, "detail": {"open": 1}}})
    a.seen = dict.fromkeys([id_hash("m1"), id_hash("m2")])
    return a


def test_account_round_trip_is_exact() -> None:
    a = full_account()
    b = AccountState.from_bytes(a.to_bytes())
    assert b == a
    assert b.to_bytes() == a.to_bytes()
    assert a.copy() == a and a.copy() is not a


def test_user_round_trip_is_exact() -> None:
    u = UserState("u1", "acme", "Dana", "d@x.test", "admin", 1.7e9, 1.72e9, 12, 340,
                  {20_000: 4.0, 20_001: 9.0}, {2857: 3}, dict.fromkeys([1, 2**64 - 1]))
    assert UserState.from_bytes(u.to_bytes()) == u
    assert UserState.from_bytes(UserState("x").to_bytes()) == UserState("x")


def test_summary_mask_tracks_active_days() -> None:
    s = UserSummary()
    for day in (100, 101, 103, 110):
        s.touch(day)
    assert s.last_day == 110 and s.first_day == 100
    assert s.active_days_in(110, 1) == 1
    assert s.active_days_in(110, 11) == 4
    assert s.active_days_in(115, 10) == 1  # only day 110 is within days 106-115
    assert s.active_in(110, 7, 9)  # day 103 is 7 days back
    assert not s.active_in(110, 1, 6)
    s.touch(90)  # a late event for an older day
    assert s.first_day == 90
    assert s.active_days_in(110, 21) == 5
    s.touch(110 + MASK_DAYS + 5)  # far ahead: older bits fall off
    assert s.active_days_in(110 + MASK_DAYS + 5, MASK_DAYS) == 1
    assert s.mask < 2**MASK_DAYS


def test_points_window_and_prune() -> None:
    u = UserState("u")
    u.days = {d: 1.0 for d in range(100, 200)}
    u.core_weeks = {w: 1 for w in range(10, epoch_week(199) + 1)}
    assert u.points(199, 30) == 30
    u.prune(199, 90)
    assert min(u.days) == 199 - 90 and len(u.days) == 91
    assert len(u.core_weeks) <= 13


def test_recent_ids_are_bounded_and_forget_the_oldest() -> None:
    u = UserState("u")
    for i in range(300):
        u.remember(id_hash(f"m{i}"), 256)
    assert len(u.seen) == 256
    assert id_hash("m0") not in u.seen and id_hash("m299") in u.seen


def test_day_and_week_arithmetic() -> None:
    assert epoch_day(0) == 0 and epoch_day(86399.9) == 0 and epoch_day(86400) == 1
    # 1970-01-05 was a Monday: weeks change between Sunday and Monday
    assert epoch_week(3) == epoch_week(0) and epoch_week(4) == epoch_week(3) + 1
    assert id_hash("abc") == id_hash("abc") != id_hash("abd")


def test_recent_ids_are_packed_compactly_and_old_lists_still_load() -> None:
    u = UserState("u")
    for i in range(256):
        u.remember(id_hash(f"message-{i}"), 256)
    packed = u.to_list()[12]
    assert isinstance(packed, str) and len(packed) <= 256 * 8 * 4 // 3 + 4
    assert UserState.from_bytes(u.to_bytes()).seen == u.seen
    old = u.to_list()
    old[12] = list(u.seen)
    assert UserState.from_list(old).seen == u.seen


def test_the_year_of_active_days() -> None:
    """Bit k is the day ``anchor - k``: a later day shifts the year on, an earlier one
    (a late event) is set in place, a day a year or more before the newest falls off."""
    bits, anchor = mark_active(0, None, 100)
    assert (bits, anchor) == (1, 100)
    bits, anchor = mark_active(bits, anchor, 90)  # late
    bits, anchor = mark_active(bits, anchor, 102)
    assert anchor == 102 and year_active_days(bits, anchor, 102) == 3
    assert mark_active(bits, anchor, 102 - YEAR_DAYS) == (bits, anchor)  # too old
    assert year_active_days(bits, anchor, 101) == 2  # the clock behind the events
    # the year up to day 457 is days 93 to 457: 100 and 102
    assert year_active_days(bits, anchor, 457) == 2
    assert year_oldest_active(bits, anchor, 457) == 100
    assert year_oldest_active(bits, anchor, 465) == 102
    assert year_active_days(bits, anchor, 467) == 0
    assert year_oldest_active(bits, anchor, 467) is None
    bits, anchor = mark_active(bits, anchor, 900)
    assert (bits, anchor) == (1, 900)


def test_an_account_kept_before_the_year_was_loads_without_it() -> None:
    a = full_account()
    a.year_bits, a.year_anchor = mark_active(0b101, 20_000, 20_001)
    assert AccountState.from_bytes(a.to_bytes()) == a
    old = a.to_list()
    old[4] = old[4][:6]  # the activity record as it was written before
    b = AccountState.from_list(old)
    assert (b.year_bits, b.year_anchor) == (0, None)

"""Stories of the worklist: what a CSM sees on a day, after the core's attention and
what people did about it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from scoring.attention import Attention, Playbook, PlaybookStep, ReasonType, Severity
from scoring.worklist import (
    STEP_OVERDUE_PRIORITY,
    AttentionTrack,
    Handling,
    OpenStep,
    WorklistEntry,
    acknowledge,
    assign,
    entry,
    mark_step_done,
    per_owner,
    ranked,
    snooze,
    track,
)
from tests.fakes.changes import TEST_PLAYBOOKS, attention, reason

DAY0 = 20_600
QUIET = reason("champion_quiet", subject="dana", since_day=DAY0 - 5, days=22)
SEATS = reason("seats_fell", severity="medium", since_day=DAY0 - 3, pct=20)
NOTHING_DONE = Handling()
NO_HISTORY = AttentionTrack()


def listed(att: Attention | None, handling: Handling = NOTHING_DONE, today: int = DAY0, *,
           previous: AttentionTrack = NO_HISTORY, owner: str | None = "riley@x.example"
           ) -> WorklistEntry | None:
    return entry("acme", owner, track(previous, att), handling, TEST_PLAYBOOKS, today)


def shown(item: WorklistEntry | None) -> dict[str, Severity]:
    assert item is not None
    return {r.key: r.severity for r in item.reasons}


def test_an_account_with_reasons_is_listed_for_its_owner_and_one_without_is_not() -> None:
    item = listed(attention(QUIET, SEATS))
    assert item is not None and item.owner == "riley@x.example"
    assert [r.type for r in item.reasons] == [ReasonType.CHAMPION_QUIET, ReasonType.SEATS_FELL]
    assert listed(attention()) is None
    assert listed(None) is None


def test_acknowledging_removes_it_until_a_new_reason_appears() -> None:
    first = attention(QUIET, SEATS)
    handling = acknowledge(Handling(), shown(listed(first)))
    assert listed(first, handling) is None
    assert listed(first, handling, DAY0 + 3) is None  # days passing changes nothing
    ticket = reason("support_spike", severity="medium", since_day=DAY0 + 4, tickets=4)
    item = listed(attention(QUIET, SEATS, ticket, day=DAY0 + 4), handling, DAY0 + 4)
    assert item is not None and ticket.key in item.new


def test_a_reason_that_gets_worse_brings_an_acknowledged_account_back() -> None:
    first = attention(QUIET, SEATS)
    handling = acknowledge(Handling(), shown(listed(first)))
    worse = reason("seats_fell", severity="high", since_day=DAY0 - 3, pct=45)
    later = attention(QUIET, worse, day=DAY0 + 2)
    item = listed(later, handling, DAY0 + 2, previous=track(AttentionTrack(), first))
    assert item is not None and item.new == {"seats_fell"}  # worse, not begun, today
    milder = attention(QUIET, reason("seats_fell", severity="low", since_day=DAY0 - 3),
                       day=DAY0 + 2)
    assert listed(milder, handling, DAY0 + 2) is None


def test_a_snooze_returns_the_account_on_its_date() -> None:
    att = attention(QUIET)
    handling = snooze(Handling(), DAY0 + 7)
    assert listed(att, handling, DAY0) is None
    assert listed(att, handling, DAY0 + 6) is None
    assert listed(att, handling, DAY0 + 7) is not None


def test_assigning_moves_the_account_to_the_assignees_list() -> None:
    att = attention(QUIET)
    handling = assign(Handling(), "sam@x.example")
    item = listed(att, handling)
    assert item is not None and item.owner == "sam@x.example"
    lists = per_owner([item, _other("beta", "riley@x.example", 5.0)])
    assert [e.account_id for e in lists["sam@x.example"]] == ["acme"]
    assert [e.account_id for e in lists["riley@x.example"]] == ["beta"]
    back = listed(att, assign(handling, None))
    assert back is not None and back.owner == "riley@x.example"


def test_marking_a_step_done_opens_the_next_one_due_from_the_trigger_day() -> None:
    att = attention(QUIET, playbooks=("champion_save",))
    item = listed(att)
    assert item is not None
    (step,) = item.open_steps
    assert (step.index, step.step.title, step.due_day) == (0, "Call the champion", DAY0 + 2)
    done = mark_step_done(Handling(), "champion_save", 0, DAY0 + 1)
    (step,) = shown_steps(listed(att, done, DAY0 + 1))
    assert (step.index, step.due_day) == (1, DAY0 + 7)
    all_done = mark_step_done(done, "champion_save", 1, DAY0 + 1)
    assert shown_steps(listed(att, all_done, DAY0 + 1)) == ()


def shown_steps(item: WorklistEntry | None) -> tuple[OpenStep, ...]:
    assert item is not None
    return item.open_steps


def test_the_trigger_day_is_kept_while_the_playbook_keeps_triggering() -> None:
    first = track(AttentionTrack(), attention(QUIET, playbooks=("champion_save",)))
    later = track(first, attention(QUIET, day=DAY0 + 3, playbooks=("champion_save",)))
    assert later.playbook_since == {"champion_save": DAY0}
    assert AttentionTrack.from_dict(later.to_dict()) == later
    stopped = track(later, attention(SEATS, day=DAY0 + 4))
    again = track(stopped, attention(QUIET, day=DAY0 + 9, playbooks=("champion_save",)))
    assert again.playbook_since == {"champion_save": DAY0 + 9}


def test_a_step_done_in_an_earlier_episode_is_open_again_when_the_playbook_retriggers(
) -> None:
    done = mark_step_done(Handling(), "champion_save", 0, DAY0 + 1)
    again = track(AttentionTrack(), attention(QUIET, day=DAY0 + 9,
                                              playbooks=("champion_save",)))
    item = entry("acme", None, again, done, TEST_PLAYBOOKS, DAY0 + 9)
    assert item is not None and item.open_steps[0].index == 0


def test_an_overdue_step_adds_a_reason_and_raises_priority() -> None:
    att = attention(QUIET, playbooks=("champion_save",))
    on_time = listed(att, today=DAY0 + 2)
    late = listed(att, today=DAY0 + 3)
    assert on_time is not None and late is not None
    assert late.priority == on_time.priority + STEP_OVERDUE_PRIORITY
    overdue = [r for r in late.reasons if r.type is ReasonType.PLAYBOOK_STEP_OVERDUE]
    assert [(r.since_day, r.params["step"]) for r in overdue] == [(DAY0 + 3, "Call the champion")]
    assert overdue[0].key in late.new
    peer = _other("beta", "riley@x.example", on_time.priority + 1)
    assert [e.account_id for e in ranked([peer, late])] == ["acme", "beta"]


def test_an_overdue_step_follows_the_reasons_and_an_expansion_step_is_never_a_risk() -> None:
    lead = Playbook(name="expansion_lead", title="Expansion lead",
                    reasons=frozenset({ReasonType.SEAT_SATURATION}),
                    steps=(PlaybookStep("Qualify the interest", due_days=1),))
    att = attention(SEATS, playbooks=("champion_save", "expansion_lead"))
    late = entry("acme", "riley@x.example", track(AttentionTrack(), att), Handling(),
                 (*TEST_PLAYBOOKS, lead), DAY0 + 3)
    assert late is not None
    assert [r.type for r in late.reasons] == [ReasonType.SEATS_FELL,
                                              ReasonType.PLAYBOOK_STEP_OVERDUE]
    assert late.reasons[1].params["step"] == "Call the champion"
    assert [s.playbook.name for s in late.open_steps] == ["champion_save", "expansion_lead"]


def test_an_acknowledged_account_comes_back_when_its_step_falls_overdue() -> None:
    att = attention(QUIET, playbooks=("champion_save",))
    handling = acknowledge(Handling(), shown(listed(att)))
    assert listed(att, handling, DAY0 + 2) is None
    assert listed(att, handling, DAY0 + 3) is not None


def test_new_since_yesterday_counts_reasons_begun_yesterday_or_today() -> None:
    fresh = reason("payment_failed", severity="critical", since_day=DAY0 - 1)
    item = listed(attention(QUIET, fresh))
    assert item is not None and item.new == {"payment_failed"}
    a_day_later = listed(attention(QUIET, fresh), today=DAY0 + 1)
    assert a_day_later is not None and a_day_later.new == set()


def test_each_owner_gets_their_top_n_and_the_team_sees_everyone() -> None:
    items = [_other(f"a{i}", "riley@x.example" if i % 2 else "sam@x.example", float(i))
             for i in range(12)]
    lists = per_owner(items, limit=5)
    assert [e.account_id for e in lists["riley@x.example"]] == ["a11", "a9", "a7", "a5", "a3"]
    assert [e.account_id for e in lists["sam@x.example"]] == ["a10", "a8", "a6", "a4", "a2"]
    assert len(ranked(items)) == 12 and ranked(items)[0].account_id == "a11"


def _other(account_id: str, owner: str, priority: float) -> WorklistEntry:
    item = entry(account_id, owner, track(AttentionTrack(), attention(SEATS, priority=priority)),
                 Handling(), (), DAY0)
    assert item is not None
    return item


_KEYS = st.sampled_from(["champion_quiet:dana", "seats_fell", "payment_failed", "support_spike"])
_REASONS = st.lists(st.tuples(_KEYS, st.sampled_from(list(Severity))), max_size=4,
                    unique_by=lambda pair: pair[0])


@given(shown_then=_REASONS, later=_REASONS, days=st.integers(0, 30))
def test_an_acknowledged_account_is_back_exactly_when_a_reason_is_new_or_worse(
        shown_then: list[tuple[str, Severity]], later: list[tuple[str, Severity]],
        days: int) -> None:
    def att(pairs: list[tuple[str, Severity]], day: int) -> Attention:
        return attention(*(reason("seats_fell", key=k, severity=s.value, since_day=DAY0 - 10)
                           for k, s in pairs), day=day)

    first = track(AttentionTrack(), att(shown_then, DAY0))
    item = entry("acme", None, first, Handling(), (), DAY0)
    handling = acknowledge(Handling(), {} if item is None else shown(item))
    after = entry("acme", None, track(first, att(later, DAY0 + days)), handling, (),
                  DAY0 + days)
    acknowledged = dict(shown_then)
    expected = any(k not in acknowledged or s.rank > acknowledged[k].rank for k, s in later)
    assert (after is not None) == expected

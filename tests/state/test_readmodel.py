from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import orjson
import pytest

from scoring.labels import Band
from state.readmodel import HISTORY_LIMIT, ReadModel
from tests.fakes.actions import make_action
from tests.fakes.changes import (
    DAY,
    TEST_PLAYBOOKS,
    attention,
    make_change,
    make_record,
    reason,
    record,
    signal,
    with_attention,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def rm(redis_url: str, unique_prefix: str) -> AsyncIterator[ReadModel]:
    model = ReadModel.from_url(redis_url, unique_prefix)
    yield model
    await model.clear()
    await model.close()


async def test_apply_stores_latest_account_users_and_history(rm: ReadModel) -> None:
    t0 = 1_780_000_000.0
    assert await rm.apply(record(make_change(score=72, previous_score=None, now=t0)))
    assert await rm.apply(record(make_change(score=57, previous_score=72, now=t0 + DAY)))
    doc = await rm.account("demo", "acme")
    assert doc is not None
    assert doc.score == 57 and doc.band is Band.WATCH
    assert doc.explanation.startswith("Health fell 15 points (72 → 57)")
    assert set(doc.components) == {"adoption", "engagement", "support", "relationship"}
    assert doc.stored["users_summary"] == {"count": 3, "power_users": 1, "healthy": 1,
                                           "watch": 2, "at_risk": 0}
    assert [p["score"] for p in await rm.history("demo", "acme")] == [72, 57]
    user = await rm.user("demo", "acme-u0")
    assert user is not None and user["power_user"] is True and user["account_id"] == "acme"


async def test_older_or_repeated_change_is_ignored(rm: ReadModel) -> None:
    t0 = 1_780_000_000.0
    newer = make_change(score=40, now=t0 + DAY)
    older = make_change(score=90, previous_score=80, now=t0)
    assert await rm.apply(record(newer))
    before = await rm.dump()
    assert not await rm.apply(record(older))
    assert not await rm.apply(record(newer))
    assert await rm.dump() == before


async def test_indexes_follow_the_account_between_bands(rm: ReadModel) -> None:
    t0 = 1_780_000_000.0
    risk = [signal("power_user_inactive", subject="acme-u0", days=22)]
    quiet = attention(reason("champion_quiet", subject="acme-u0"), day=int(t0 // DAY))
    await rm.apply(record(with_attention(make_change(score=35, previous_score=50, now=t0,
                                              started=risk, forecast="at_risk"), quiet)))
    assert await rm.ranking("demo", "at_risk") == ["acme"]
    assert await rm.ranking("demo", "renewals:at_risk") == ["acme"]
    assert [d.account_id for d in await rm.attention("demo")] == ["acme"]
    await rm.apply(record(with_attention(make_change(score=80, previous_score=35, now=t0 + DAY,
                                              active=[], forecast="commit", change_7d=45),
                                  attention(day=int(t0 // DAY) + 1))))
    assert await rm.ranking("demo", "at_risk") == []
    assert await rm.ranking("demo", "attention") == []
    assert await rm.ranking("demo", "renewals:commit") == ["acme"]
    page = await rm.list_accounts("demo", filters={"band": "at_risk"})
    assert page.total == 0
    page = await rm.list_accounts("demo", filters={"band": "healthy", "forecast": "commit"})
    assert [d.account_id for d in page.items] == ["acme"]
    assert (await rm.portfolio("demo"))["active_signals"] == {"power_user_inactive": 0}


async def test_list_filters_sorts_and_pages(rm: ReadModel) -> None:
    t0 = 1_780_000_000.0
    specs = [("a1", 20, -30, 100_000.0, 20, "enterprise", "Riley Chen"),
             ("a2", 55, -12, 30_000.0, 200, "mid_market", "Sam Ito"),
             ("a3", 85, 4, 8_000.0, None, "smb", "Riley Chen"),
             ("a4", 65, -2, 12_000.0, 60, "smb", None)]
    for acct, score, c7, arr, dtr, segment, owner in specs:
        started = [signal("upgrade_interest", severity="expansion")] if acct == "a3" else []
        await rm.apply(record(make_change(account_id=acct, score=score, previous_score=score - c7,
                                   change_7d=c7, arr=arr, days_to_renewal=dtr,
                                   segment=segment, owner=owner, now=t0, started=started)))
    by_score = await rm.list_accounts("demo", sort="score")
    assert [d.account_id for d in by_score.items] == ["a1", "a2", "a4", "a3"]
    by_drop = await rm.list_accounts("demo", sort="change_7d")
    assert [d.account_id for d in by_drop.items] == ["a1", "a2", "a4", "a3"]
    by_risk = await rm.list_accounts("demo", sort="arr_at_risk", descending=True)
    assert [d.account_id for d in by_risk.items][:2] == ["a1", "a2"]
    by_renewal = await rm.list_accounts("demo", sort="days_to_renewal")
    assert [d.account_id for d in by_renewal.items] == ["a1", "a4", "a2", "a3"]
    riley = await rm.list_accounts("demo", filters={"owner": "Riley Chen"}, sort="score")
    assert [d.account_id for d in riley.items] == ["a1", "a3"]
    unowned = await rm.list_accounts("demo", filters={"owner": "none"})
    assert [d.account_id for d in unowned.items] == ["a4"]
    expansion = await rm.list_accounts("demo", filters={"signal": "upgrade_interest"})
    assert [d.account_id for d in expansion.items] == ["a3"]
    assert await rm.ranking("demo", "expansion") == ["a3"]
    assert await rm.ranking("demo", "drops") == ["a1", "a2", "a4"]
    page = await rm.list_accounts("demo", sort="score", offset=1, limit=2)
    assert page.total == 4 and [d.account_id for d in page.items] == ["a2", "a4"]
    folio = await rm.portfolio("demo")
    assert folio["accounts_by_band"] == {"at_risk": 1, "healthy": 1, "watch": 2}
    assert folio["arr_by_band"] == {"at_risk": 100_000.0, "healthy": 8_000.0, "watch": 42_000.0}
    assert folio["accounts_by_forecast"] == {"best_case": 4}
    assert folio["active_signals"] == {"upgrade_interest": 1}
    assert await rm.workspaces() == ["demo"]


async def test_history_is_bounded(rm: ReadModel) -> None:
    t0 = 1_780_000_000.0
    for i in range(HISTORY_LIMIT + 5):
        await rm.apply(record(make_change(score=i % 100, previous_score=None, now=t0 + i * 3600)))
    history = await rm.history("demo", "acme")
    assert len(history) == HISTORY_LIMIT
    assert history[-1]["score"] == (HISTORY_LIMIT + 4) % 100


T0 = 1_780_000_000.0
TODAY = int(T0 // DAY)
QUIET = reason("champion_quiet", subject="acme-u0", since_day=TODAY - 8, days=22)


def test_the_worklist_follows_attention_reasons_not_the_band() -> None:
    from state.readmodel import account_document

    green_but_quiet = account_document(record(with_attention(
        make_change(score=85, previous_score=84, change_7d=1), attention(QUIET, day=TODAY))))
    assert green_but_quiet["needs_attention"]
    red_without_reasons = account_document(record(with_attention(
        make_change(score=20, previous_score=25), attention(day=TODAY))))
    assert not red_without_reasons["needs_attention"]
    before_attention = account_document(make_record(score=20, previous_score=25))
    assert before_attention["attention"] is None and not before_attention["needs_attention"]


async def listed_ids(rm: ReadModel, owner: str | None = None, today: int = TODAY) -> list[str]:
    found = await rm.worklist("demo", owner, today=today, playbooks=TEST_PLAYBOOKS)
    return [item.entry.account_id for item in found.team]


async def test_each_owner_gets_their_accounts_and_an_assignment_moves_one(
        rm: ReadModel) -> None:
    for account_id, owner, priority in (("acme", "Riley Chen", 50.0),
                                        ("beta", "Sam Ortiz", 40.0),
                                        ("gamma", "Riley Chen", 30.0)):
        change = make_change(account_id=account_id, owner=owner, now=T0)
        await rm.apply(record(with_attention(change, attention(QUIET, day=TODAY,
                                                               priority=priority))))
    await rm.apply(record(with_attention(make_change(account_id="calm", now=T0),
                                         attention(day=TODAY))))
    assert await listed_ids(rm) == ["acme", "beta", "gamma"]
    assert await listed_ids(rm, "riley@vendor.example") == ["acme", "gamma"]
    found = await rm.worklist("demo", today=TODAY, per_owner=1)
    assert {k: [i.entry.account_id for i in v] for k, v in found.owners.items()} == {
        "riley@vendor.example": ["acme"], "sam@vendor.example": ["beta"]}
    assert await rm.apply_action(make_action("assign", account_id="gamma",
                                             assignee="sam@vendor.example"))
    assert await listed_ids(rm, "sam@vendor.example") == ["beta", "gamma"]


async def test_actions_apply_once_by_id_and_stay_as_the_audit_trail(rm: ReadModel) -> None:
    await rm.apply(record(with_attention(make_change(now=T0), attention(QUIET, day=TODAY))))
    ack = make_action("acknowledge", reasons={QUIET.key: "high"}, at=T0 + 60)
    note = make_action("note", text="Called Dana, she is on leave", at=T0 + 120)
    assert await rm.apply_action(ack) and await rm.apply_action(note)
    assert await listed_ids(rm) == []
    before = await rm.dump()
    assert not await rm.apply_action(ack)
    assert await rm.dump() == before
    trail = await rm.actions("demo", "acme")
    assert [(a.type.value, a.actor, a.text) for a in trail] == [
        ("acknowledge", "riley@vendor.example", None),
        ("note", "riley@vendor.example", "Called Dana, she is on leave")]
    # A new reason on a later change brings the account back.
    ticket = reason("support_spike", severity="medium", since_day=TODAY + 1)
    await rm.apply(record(with_attention(make_change(now=T0 + DAY, score=50),
                                  attention(QUIET, ticket, day=TODAY + 1))))
    assert await listed_ids(rm, today=TODAY + 1) == ["acme"]


async def test_a_snooze_ends_on_its_date_and_steps_fall_due_from_the_trigger_day(
        rm: ReadModel) -> None:
    save = attention(QUIET, day=TODAY, playbooks=("champion_save",))
    await rm.apply(record(with_attention(make_change(now=T0), save)))
    # A later change the same episode keeps the day the playbook began.
    await rm.apply(record(with_attention(make_change(now=T0 + DAY, score=50),
                                  attention(QUIET, day=TODAY + 1, playbooks=("champion_save",)))))
    item = await rm.listing("demo", "acme", playbooks=TEST_PLAYBOOKS, today=TODAY + 3)
    assert item is not None and item.open_steps[0].due_day == TODAY + 2
    assert "playbook_step_overdue" in {r.type.value for r in item.reasons}
    await rm.apply_action(make_action("step_done", playbook="champion_save", step=0,
                                      at=T0 + 3 * DAY))
    item = await rm.listing("demo", "acme", playbooks=TEST_PLAYBOOKS, today=TODAY + 3)
    assert item is not None and item.open_steps[0].index == 1
    until = date.fromordinal(date(1970, 1, 1).toordinal() + TODAY + 5)
    await rm.apply_action(make_action("snooze", until=until.isoformat(), at=T0 + 3 * DAY))
    assert await listed_ids(rm, today=TODAY + 4) == []
    assert await listed_ids(rm, today=TODAY + 5) == ["acme"]


async def test_a_stored_document_that_does_not_decode_is_left_out(rm: ReadModel) -> None:
    """Documents are decoded where they leave Redis, which is trusted no more than Kafka:
    one with a band outside the vocabulary reaches no reader."""
    await rm.apply(make_record(account_id="good"))
    await rm.apply(make_record(account_id="forged"))
    key = rm._k("demo", "acct", "forged")
    stored = orjson.loads(await rm.redis.get(key))
    await rm.redis.set(key, orjson.dumps({**stored, "band": "<!channel>"}))
    assert await rm.account("demo", "forged") is None
    assert [d.account_id for d in await rm.accounts("demo", ["forged", "good"])] == ["good"]
    good = await rm.account("demo", "good")
    assert good is not None and good.band is Band.WATCH and good.stored["account_id"] == "good"

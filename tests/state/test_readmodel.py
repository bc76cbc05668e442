from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from state.readmodel import HISTORY_LIMIT, ChangeError, ReadModel
from tests.fakes.changes import DAY, make_change, signal

pytestmark = pytest.mark.integration


@pytest.fixture
async def rm(redis_url: str, unique_prefix: str) -> AsyncIterator[ReadModel]:
    model = ReadModel.from_url(redis_url, unique_prefix)
    yield model
    await model.clear()
    await model.close()


async def test_apply_stores_latest_account_users_and_history(rm: ReadModel) -> None:
    t0 = 1_780_000_000.0
    assert await rm.apply(make_change(score=72, previous_score=None, now=t0))
    assert await rm.apply(make_change(score=57, previous_score=72, now=t0 + DAY))
    doc = await rm.account("demo", "acme")
    assert doc is not None
    assert doc["score"] == 57 and doc["band"] == "watch"
    assert doc["explanation"].startswith("Health fell 15 points (72 → 57)")
    assert set(doc["components"]) == {"adoption", "engagement", "support", "relationship"}
    assert doc["users_summary"] == {"count": 3, "power_users": 1, "healthy": 1, "watch": 2,
                                    "at_risk": 0}
    assert [p["score"] for p in await rm.history("demo", "acme")] == [72, 57]
    user = await rm.user("demo", "acme-u0")
    assert user is not None and user["power_user"] is True and user["account_id"] == "acme"


async def test_older_or_repeated_change_is_ignored(rm: ReadModel) -> None:
    t0 = 1_780_000_000.0
    newer = make_change(score=40, now=t0 + DAY)
    older = make_change(score=90, previous_score=80, now=t0)
    assert await rm.apply(newer)
    before = await rm.dump()
    assert not await rm.apply(older)
    assert not await rm.apply(newer)
    assert await rm.dump() == before


async def test_indexes_follow_the_account_between_bands(rm: ReadModel) -> None:
    t0 = 1_780_000_000.0
    risk = [signal("power_user_inactive", subject="acme-u0", days=22)]
    await rm.apply(make_change(score=35, previous_score=50, now=t0, started=risk,
                               forecast="at_risk"))
    assert await rm.ranking("demo", "at_risk") == ["acme"]
    assert await rm.ranking("demo", "renewals:at_risk") == ["acme"]
    assert [d["account_id"] for d in await rm.attention("demo")] == ["acme"]
    await rm.apply(make_change(score=80, previous_score=35, now=t0 + DAY, active=[],
                               forecast="commit", change_7d=45))
    assert await rm.ranking("demo", "at_risk") == []
    assert await rm.ranking("demo", "attention") == []
    assert await rm.ranking("demo", "renewals:commit") == ["acme"]
    page = await rm.list_accounts("demo", filters={"band": "at_risk"})
    assert page.total == 0
    page = await rm.list_accounts("demo", filters={"band": "healthy", "forecast": "commit"})
    assert [d["account_id"] for d in page.items] == ["acme"]
    assert (await rm.portfolio("demo"))["active_signals"] == {"power_user_inactive": 0}


async def test_list_filters_sorts_and_pages(rm: ReadModel) -> None:
    t0 = 1_780_000_000.0
    specs = [("a1", 20, -30, 100_000.0, 20, "enterprise", "Riley Chen"),
             ("a2", 55, -12, 30_000.0, 200, "mid_market", "Sam Ito"),
             ("a3", 85, 4, 8_000.0, None, "smb", "Riley Chen"),
             ("a4", 65, -2, 12_000.0, 60, "smb", None)]
    for acct, score, c7, arr, dtr, segment, owner in specs:
        started = [signal("upgrade_interest", severity="expansion")] if acct == "a3" else []
        await rm.apply(make_change(account_id=acct, score=score, previous_score=score - c7,
                                   change_7d=c7, arr=arr, days_to_renewal=dtr,
                                   segment=segment, owner=owner, now=t0, started=started))
    by_score = await rm.list_accounts("demo", sort="score")
    assert [d["account_id"] for d in by_score.items] == ["a1", "a2", "a4", "a3"]
    by_drop = await rm.list_accounts("demo", sort="change_7d")
    assert [d["account_id"] for d in by_drop.items] == ["a1", "a2", "a4", "a3"]
    by_risk = await rm.list_accounts("demo", sort="arr_at_risk", descending=True)
    assert [d["account_id"] for d in by_risk.items][:2] == ["a1", "a2"]
    by_renewal = await rm.list_accounts("demo", sort="days_to_renewal")
    assert [d["account_id"] for d in by_renewal.items] == ["a1", "a4", "a2", "a3"]
    riley = await rm.list_accounts("demo", filters={"owner": "Riley Chen"}, sort="score")
    assert [d["account_id"] for d in riley.items] == ["a1", "a3"]
    unowned = await rm.list_accounts("demo", filters={"owner": "none"})
    assert [d["account_id"] for d in unowned.items] == ["a4"]
    expansion = await rm.list_accounts("demo", filters={"signal": "upgrade_interest"})
    assert [d["account_id"] for d in expansion.items] == ["a3"]
    assert await rm.ranking("demo", "expansion") == ["a3"]
    assert await rm.ranking("demo", "drops") == ["a1", "a2", "a4"]
    page = await rm.list_accounts("demo", sort="score", offset=1, limit=2)
    assert page.total == 4 and [d["account_id"] for d in page.items] == ["a2", "a4"]
    folio = await rm.portfolio("demo")
    assert folio["accounts_by_band"] == {"at_risk": 1, "healthy": 1, "watch": 2}
    assert folio["arr_by_band"] == {"at_risk": 100_000.0, "healthy": 8_000.0, "watch": 42_000.0}
    assert folio["accounts_by_forecast"] == {"best_case": 4}
    assert folio["active_signals"] == {"upgrade_interest": 1}
    assert await rm.workspaces() == ["demo"]


async def test_history_is_bounded(rm: ReadModel) -> None:
    t0 = 1_780_000_000.0
    for i in range(HISTORY_LIMIT + 5):
        await rm.apply(make_change(score=i % 100, previous_score=None, now=t0 + i * 3600))
    history = await rm.history("demo", "acme")
    assert len(history) == HISTORY_LIMIT
    assert history[-1]["score"] == (HISTORY_LIMIT + 4) % 100


async def test_bad_change_is_refused_with_a_reason(rm: ReadModel) -> None:
    change = make_change()
    del change["current"]
    with pytest.raises(ChangeError, match="current"):
        await rm.apply(change)
    with pytest.raises(ChangeError):
        await rm.apply(make_change(event_time="yesterday"))


def test_who_needs_attention() -> None:
    from state.readmodel import account_document, needs_attention

    risk = [signal("user_inactive_14d", subject="u1", days=14)]
    steady_healthy = account_document(make_change(score=85, previous_score=84, active=risk,
                                                  forecast="commit", change_7d=1))
    assert not needs_attention(steady_healthy)
    falling_healthy = account_document(make_change(score=75, previous_score=88,
                                                   change_7d=-13, forecast="commit"))
    assert needs_attention(falling_healthy)
    watch_with_signal = account_document(make_change(score=60, previous_score=61,
                                                     active=risk, change_7d=-1))
    assert needs_attention(watch_with_signal)
    watch_quiet = account_document(make_change(score=60, previous_score=61, change_7d=-1))
    assert not needs_attention(watch_quiet)
    churned = account_document(make_change(score=10, previous_score=20, lifecycle="churned"))
    assert not needs_attention(churned)

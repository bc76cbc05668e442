"""A small, realistic portfolio of health changes for read-model, API and page tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from scoring.attention import Attention, AttentionReason
from state.readmodel import ReadModel
from streams.kafka_admin import create_topics
from streams.settings import Settings
from tests.fakes.changes import DAY, attention, make_change, reason, record, signal, with_attention

T0 = 1_780_000_000.0

# name, segment, arr, owner, slack id, days to renewal, score path (one point per 3 days)
ACCOUNTS: list[tuple[str, str, str, float, str | None, str | None, int | None, list[int]]] = [
    ("acme", "Acme Corp", "mid_market", 42_000, "Riley Chen", "U024BE7LH", 75,
     [78, 76, 74, 72, 68, 63, 57]),
    ("globex", "Globex", "enterprise", 180_000, "Sam Ito", "U0G9QF9C6", 150,
     [71, 66, 58, 51, 44, 38, 31]),
    ("initech", "Initech", "smb", 9_600, "Riley Chen", None, 40,
     [45, 44, 42, 41, 39, 36, 34]),
    ("umbrella", "Umbrella", "enterprise", 240_000, "Ana Ruiz", "U0AR11111", 300,
     [82, 84, 85, 86, 88, 88, 90]),
    ("hooli", "Hooli", "mid_market", 55_000, "Sam Ito", "U0G9QF9C6", None,
     [60, 62, 65, 67, 70, 72, 74]),
    ("vandelay", "Vandelay Industries", "smb", 6_000, None, None, 20,
     [55, 55, 54, 52, 50, 49, 48]),
    ("stark", "Stark Industries", "enterprise", 320_000, "Ana Ruiz", "U0AR11111", 120,
     [90, 91, 89, 90, 92, 91, 93]),
    ("wayne", "Wayne Enterprises", "enterprise", 150_000, "Riley Chen", "U024BE7LH", 170,
     [75, 70, 64, 60, 57, 52, 47]),
]

SIGNALS: dict[str, list[dict[str, Any]]] = {
    "acme": [signal("power_user_inactive", subject="acme-u0", days=22,
                    text="Dana, your main power user, has been inactive for 22 days")],
    "globex": [signal("ticket_spike", tickets=4, days=7,
                      text="4 support tickets opened in the last 7 days"),
               signal("payment_failed", amount=15_000.0,
                      text="A payment of $15,000 failed on 12 Jun")],
    "initech": [signal("nps_detractor", score=4, text="NPS of 4 from the admin")],
    "umbrella": [signal("seat_saturation", severity="expansion", utilisation=0.93,
                        text="93% of seats in use with advanced features")],
    "wayne": [signal("user_inactive_14d", subject="wayne-u1", days=14,
                     text="Lee Park has been inactive for 14 days")],
}


LAST_DAY = int((T0 + 18 * DAY) // DAY)
"""Epoch day of every account's last change."""

# What the core says about each account on its last day: the four at-risk accounts have
# reasons, in order of urgency; the others have none (a steady or rising account).
ATTENTION: dict[str, tuple[float, list[AttentionReason]]] = {
    "globex": (180.0, [reason("payment_failed", severity="critical", since_day=LAST_DAY - 1,
                              amount=15_000.0),
                       reason("support_spike", severity="high", since_day=LAST_DAY - 6,
                              tickets=4, days=7)]),
    "wayne": (95.0, [reason("health_fell", severity="high", since_day=LAST_DAY - 6,
                            points=28)]),
    "acme": (80.0, [reason("champion_quiet", subject="acme-u0", since_day=LAST_DAY - 21,
                           name="Dana Fox", days=22)]),
    "initech": (60.0, [reason("nps_detractor", severity="medium", since_day=LAST_DAY - 3,
                              score=4),
                       reason("renewal_at_risk", severity="medium", since_day=LAST_DAY - 9,
                              renewal_day=LAST_DAY + 40)]),
}


def attention_for(account_id: str, day: int) -> Attention:
    """The core's attention for an account's change on epoch ``day``: its reasons on the
    last day, none before."""
    if day != LAST_DAY or account_id not in ATTENTION:
        return attention(day=day, priority=0.0)
    priority, reasons = ATTENTION[account_id]
    return attention(*reasons, day=day, priority=priority)


def forecast_for(score: int, days: int | None) -> str | None:
    if days is None:
        return None
    return "commit" if score >= 70 else "best_case" if score >= 45 else "at_risk"


def portfolio_changes(workspace: str = "demo") -> list[dict[str, Any]]:
    """Every account's changes, oldest first (7 points, 3 days apart)."""
    changes = []
    for acct, name, segment, arr, owner, slack_id, days, path in ACCOUNTS:
        previous: int | None = None
        for i, score in enumerate(path):
            now = T0 + i * 3 * DAY
            last = i == len(path) - 1
            week_ago = path[max(0, i - 2)]
            dtr = None if days is None else days + 3 * (len(path) - 1 - i)
            change = make_change(
                workspace=workspace, account_id=acct, account_name=name, score=score,
                previous_score=previous, change_7d=score - week_ago,
                forecast=forecast_for(score, dtr),
                previous_forecast=None if previous is None else forecast_for(previous, dtr),
                lifecycle="renewal_window" if dtr is not None and dtr <= 90 else "mature",
                started=SIGNALS.get(acct, []) if last else [],
                active=SIGNALS.get(acct, []) if last else [],
                now=now, owner=owner, owner_slack_id=slack_id, segment=segment, arr=arr,
                days_to_renewal=dtr, n_users=4,
                external_ids={"hubspot_company_id": f"90{len(acct)}{i}",
                              "salesforce_account_id": f"001{acct[:4]}000000{i}"},
                explanation=None if previous is None or score != previous else
                "Health held steady.",
            )
            if previous is None:
                change["explanation"] = f"First assessment: health {score}."
            changes.append(change)
            previous = score
    return changes


async def populate(readmodel: ReadModel, workspace: str = "demo") -> list[dict[str, Any]]:
    """Fold the portfolio's changes, each carrying the core's attention, in."""
    changes = [with_attention(c, attention_for(c["account_id"], c["day"]))
               for c in portfolio_changes(workspace)]
    for change in changes:
        await readmodel.apply(record(change))
    return changes


_REPLAYED: dict[tuple[str, int, int, int], list[dict[str, Any]]] = {}


def replayed_changes(workspace: str = "demo", accounts: int = 12, days: int = 120,
                     seed: int = 3) -> list[dict[str, Any]]:
    """Health changes the real scoring core emits for a simulated portfolio (the same
    ``step`` as the live workers), in time order; computed once per process."""
    key = (workspace, accounts, days, seed)
    if key not in _REPLAYED:
        from history.importers import segment_events
        from history.simulate import simulate
        from scoring.replay import Replay

        replay = Replay()
        sim = simulate(accounts=accounts, days=days, seed=seed)
        changes = replay.run(segment_events(sim.events(), workspace=workspace))
        changes += replay.finish()
        _REPLAYED[key] = [c.to_dict() for c in changes]
    return [dict(c) for c in _REPLAYED[key]]


def business_metrics(workspace: str = "demo", accounts: int = 12, days: int = 120,
                     seed: int = 3) -> dict[str, Any]:
    """Business metrics of the same simulated portfolio, as ``telltale metrics`` makes them."""
    from history.business import compute
    from history.importers import OutcomeRecord, segment_events
    from history.simulate import simulate

    sim = simulate(accounts=accounts, days=days, seed=seed)
    outcomes = [OutcomeRecord(o.account_id, o.date, o.outcome, o.arr, o.new_arr, o.segment)
                for o in sim.outcomes]
    return compute(segment_events(sim.events(), workspace=workspace), outcomes)


@contextlib.asynccontextmanager
async def portfolio_client(settings: Settings, app: Callable[[ReadModel], web.Application]
                           ) -> AsyncIterator[tuple[TestClient, ReadModel]]:
    """A test client of ``app`` over the read model of ``settings`` holding the portfolio
    (:func:`populate`), with the actions topic created for what people do on it; the
    read model is emptied and closed after."""
    await create_topics(settings.kafka_bootstrap, [settings.topics.actions],
                        partitions=settings.partitions)
    readmodel = ReadModel.from_settings(settings)
    try:
        await populate(readmodel)
        async with TestClient(TestServer(app(readmodel))) as client:
            yield client, readmodel
    finally:
        await readmodel.clear()
        await readmodel.close()

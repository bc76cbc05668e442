"""The actions agent in a real worker: actions produced to Kafka reach the read model once
each, bad ones are dead-lettered with a reason, and a rebuild from the topics restores
every acknowledgement, snooze, assignment and note."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from agents.notify import rebuild
from state.readmodel import ReadModel
from streams.actions import ACTIONS
from streams.settings import Settings
from tests.fakes.actions import make_action
from tests.fakes.changes import DAY, attention, make_change, reason, record, with_attention

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

T0 = 1_780_000_000.0
TODAY = int(T0 // DAY)


async def wait_for(check: Any, timeout: float = 60.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.2)


async def test_actions_from_kafka_apply_once_and_survive_a_rebuild(
        settings: Settings, produce: Any, consume_until: Any, start_worker: Any) -> None:
    topics = settings.topics
    worker = await asyncio.to_thread(start_worker, settings, "--module", "agents.actions")
    readmodel = ReadModel.from_settings(settings)
    try:
        quiet = reason("champion_quiet", subject="acme-u0", since_day=TODAY - 8)
        changes = [with_attention(make_change(account_id=a, now=T0),
                                  attention(quiet, day=TODAY, priority=p))
                   for a, p in (("acme", 50.0), ("beta", 40.0), ("gamma", 30.0))]
        await produce(topics.health_changes,
                      [(c["account_id"].encode(), orjson.dumps(c)) for c in changes])
        for change in changes:  # what the notify agent does with them
            await readmodel.apply(record(change))
        acted = [
            make_action("acknowledge", account_id="acme", reasons={quiet.key: "high"}),
            make_action("snooze", account_id="beta", until="2099-01-01"),
            make_action("assign", account_id="gamma", assignee="sam@vendor.example"),
            make_action("note", account_id="gamma", text="Renewal call booked for Friday"),
        ]
        messages = [(ACTIONS.key(a), ACTIONS.encode(a)) for a in acted]
        messages += messages[:2]  # redelivered
        messages.append((b"demo|acme", b'{"schema": "telltale.action/1", "type": "delete"}'))
        await produce(topics.actions, messages)

        async def all_applied() -> bool:
            return sum([len(await readmodel.actions("demo", a))
                        for a in ("acme", "beta", "gamma")]) == len(acted)

        await wait_for(all_applied)
        dead = await consume_until(topics.events_dlq, lambda records: len(records) >= 1)
        letter = orjson.loads(dead[0].value)
        assert letter["reason"] == "invalid_action" and "type must be" in letter["detail"]

        found = await readmodel.worklist("demo", today=TODAY)
        assert [(i.entry.account_id, i.entry.owner) for i in found.team] == [
            ("gamma", "sam@vendor.example")]
        note = (await readmodel.actions("demo", "gamma"))[-1]
        assert note.text == "Renewal call booked for Friday"
        await asyncio.sleep(1.0)  # the duplicates are consumed too, and change nothing
        live = await readmodel.dump()

        done = await rebuild(settings, timeout=60)
        assert (done.changes, done.actions) == (3, len(acted))
        assert await readmodel.dump() == live
    finally:
        await readmodel.clear()
        await readmodel.close()
        await asyncio.to_thread(worker.stop)


async def test_the_workers_api_records_an_action_through_kafka(
        settings: Settings, consume_until: Any, start_worker: Any) -> None:
    import aiohttp

    settings = settings.replace(api_tokens="csm-token=demo:riley@vendor.example")
    worker = await asyncio.to_thread(start_worker, settings, "--module", "agents.actions",
                                     "--module", "agents.api", "--module", "agents.page")
    readmodel = ReadModel.from_settings(settings)
    try:
        quiet = reason("champion_quiet", subject="acme-u0", since_day=TODAY - 8)
        await readmodel.apply(record(with_attention(make_change(now=T0),
                                                    attention(quiet, day=TODAY))))
        auth = {"Authorization": "Bearer csm-token"}
        async with aiohttp.ClientSession(headers=auth) as http, http.post(
                f"{worker.url}/api/v1/workspaces/demo/accounts/acme/actions",
                json={"type": "note", "text": "Called Dana"}) as response:
            assert response.status == 201, await response.text()
            assert response.headers["Cache-Control"] == "no-store"
            sent = (await response.json())["action"]
        # Shown at once, and on the topic for the audit log and a rebuild.
        assert [a.id for a in await readmodel.actions("demo", "acme")] == [sent["id"]]
        records = await consume_until(settings.topics.actions, lambda rs: len(rs) >= 1)
        assert orjson.loads(records[0].value)["id"] == sent["id"]
    finally:
        await readmodel.clear()
        await readmodel.close()
        await asyncio.to_thread(worker.stop)

"""The worklist API: each owner's list for today, and the actions a signed-in person takes
on it (produced to Kafka, applied at once, recorded with who did it)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from agents.api import Api, standalone_app
from streams.settings import ApiIdentity, Settings, SettingsError, parse_api_tokens
from tests.fakes.changes import TEST_PLAYBOOKS, english
from tests.fakes.portfolio import LAST_DAY, portfolio_client

pytestmark = pytest.mark.integration

RILEY = {"Authorization": "Bearer riley-token"}
ANONYMOUS = {"Authorization": "Bearer shared-token"}
BASE = "/api/v1/workspaces/demo"


def test_a_token_may_name_the_person_it_signs_in() -> None:
    assert parse_api_tokens("a=demo,b=demo:riley@vendor.example") == {
        "a": ApiIdentity("demo"), "b": ApiIdentity("demo", "riley@vendor.example")}
    for bad in ("a=demo:", "a=demo:riley", "a=:riley@vendor.example", "a=demo:x y@z"):
        with pytest.raises(SettingsError):
            parse_api_tokens(bad)
    with pytest.raises(SettingsError, match="api_tokens"):
        Settings(api_tokens="a=demo:nobody").validate()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient]:
    settings = settings.replace(api_tokens="riley-token=demo:riley@vendor.example,"
                                           "shared-token=demo,other-token=other")
    async with portfolio_client(settings, lambda readmodel: standalone_app(
            settings, readmodel, lambda model, publish: Api(
                settings, model, TEST_PLAYBOOKS, publish=publish, render=english).routes())
    ) as (test_client, _):
        yield test_client


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [i["account_id"] for i in items]


async def worklist(client: TestClient, query: str = "", headers: dict[str, str] = RILEY
                   ) -> dict[str, Any]:
    response = await client.get(f"{BASE}/worklist{query}", headers=headers)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def act(client: TestClient, account_id: str, headers: dict[str, str] = RILEY,
              **fields: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post(f"{BASE}/accounts/{account_id}/actions", headers=headers,
                                 data=orjson.dumps(fields))
    return response.status, await response.json()


async def test_each_owner_has_a_list_with_reasons_first_for_today(client: TestClient) -> None:
    body = await worklist(client)
    today = (date(1970, 1, 1) + timedelta(days=int(time.time() // 86_400)))
    assert body["today"] == today.isoformat()
    assert ids(body["team"]) == ["globex", "wayne", "acme", "initech"]
    owners = {o["owner"]: ids(o["items"]) for o in body["owners"]}
    assert owners == {"riley@vendor.example": ["wayne", "acme", "initech"],
                      "sam@vendor.example": ["globex"]}
    globex = body["team"][0]
    assert [r["type"] for r in globex["reasons"]] == ["payment_failed", "support_spike"]
    days = int(time.time() // 86_400) - (LAST_DAY - 1)
    assert globex["reasons"][0]["text"] == f"Payment failed for {days} days"
    assert globex["arr"] == 180_000 and globex["renewal_date"]
    assert globex["days_to_renewal"] == (date.fromisoformat(globex["renewal_date"]) - today).days
    mine = await worklist(client, "?owner=me")
    assert mine["owner"] == "riley@vendor.example"
    assert ids(mine["team"]) == ["wayne", "acme", "initech"]
    assert ids((await worklist(client, "?owner=sam@vendor.example&per_owner=1"))["team"]) == [
        "globex"]
    response = await client.get(f"{BASE}/worklist?owner=me", headers=ANONYMOUS)
    assert response.status == 400 and "names a person" in (await response.json())["detail"]


async def test_acknowledge_snooze_assign_and_note_show_at_once_and_are_recorded(
        client: TestClient, settings: Settings, consume_until: Any) -> None:
    status, body = await act(client, "wayne", type="acknowledge")
    assert status == 201 and body["action"]["actor"] == "riley@vendor.example"
    assert body["action"]["reasons"] == [{"key": "health_fell", "severity": "high"}]
    tomorrow = date.fromordinal(date.today().toordinal() + 1).isoformat()
    assert (await act(client, "acme", type="snooze", until=tomorrow))[0] == 201
    assert (await act(client, "initech", type="assign", assignee="sam@vendor.example"))[0] == 201
    status, _ = await act(client, "initech", ANONYMOUS, type="note", text="Spoke to the admin")
    assert status == 201
    owners = {o["owner"]: ids(o["items"]) for o in (await worklist(client))["owners"]}
    assert owners == {"sam@vendor.example": ["globex", "initech"]}
    initech = next(i for i in (await worklist(client))["team"] if i["account_id"] == "initech")
    assert initech["assigned"] and initech["owner_name"] == "Riley Chen"

    trail = (await (await client.get(f"{BASE}/accounts/initech/actions",
                                     headers=RILEY)).json())["items"]
    assert [(a["type"], a["actor"]) for a in trail] == [
        ("assign", "riley@vendor.example"), ("note", "api-token")]
    assert trail[1]["text"] == "Spoke to the admin"
    records = await consume_until(settings.topics.actions, lambda rs: len(rs) >= 4)
    assert sorted(orjson.loads(r.value)["type"] for r in records) == [
        "acknowledge", "assign", "note", "snooze"]


@pytest.mark.parametrize(("fields", "status", "problem"), [
    ({"type": "delete"}, 400, "type must be"),
    ({"type": "note"}, 400, "text"),
    ({"type": "note", "text": "x" * 2_001}, 400, "longer"),
    ({"type": "note", "text": "hi", "until": "2030-01-01"}, 400, "does not belong"),
    ({"type": "snooze", "until": "tomorrow"}, 400, "YYYY-MM-DD"),
    ({"type": "snooze", "until": "2000-01-01"}, 409, "after today"),
    ({"type": "assign"}, 400, "assignee"),
    ({"type": "assign", "assignee": "sam\r\nBcc: eve"}, 400, "control"),
    ({"type": "step_done", "playbook": "nope", "step": 0}, 404, "no playbook"),
    ({"type": "step_done", "playbook": "champion_save", "step": 5}, 404, "steps 0 to 1"),
])
async def test_bad_actions_are_refused_with_a_reason(client: TestClient, fields: dict[str, Any],
                                                     status: int, problem: str) -> None:
    got, body = await act(client, "acme", **fields)
    assert got == status and problem in body["detail"]


async def test_actions_need_an_account_a_listing_and_the_workspace(client: TestClient) -> None:
    assert (await act(client, "nope", type="note", text="hi"))[0] == 404
    status, body = await act(client, "umbrella", type="acknowledge")
    assert status == 409 and "nothing to acknowledge" in body["detail"]
    response = await client.post("/api/v1/workspaces/other/accounts/acme/actions",
                                 headers=RILEY, data=b'{"type": "note", "text": "hi"}')
    assert response.status == 403
    response = await client.post(f"{BASE}/accounts/acme/actions", headers=RILEY, data=b"[1]")
    assert response.status == 400
    response = await client.post(f"{BASE}/accounts/acme/actions", headers=RILEY,
                                 data=b" " * 20_000)
    assert response.status == 413
    assert (await client.post(f"{BASE}/accounts/acme/actions",
                              data=b'{"type": "note", "text": "hi"}')).status == 401


async def test_the_worklist_says_its_reasons_in_the_language_asked_for(
        client: TestClient) -> None:
    english = await worklist(client)
    french = await worklist(client, headers={**RILEY, "Accept-Language": "fr-CA,fr;q=0.9"})
    assert [i["account_id"] for i in french["team"]] == [
        i["account_id"] for i in english["team"]]  # the same list, only said otherwise
    texts = [r["text"] for i in french["team"] for r in i["reasons"]]
    assert any(t.startswith("Aucune connexion de Dana Fox, power user, depuis ") for t in texts)
    assert any(t.startswith("Un paiement de 15\u202f000\u00a0$US a échoué") for t in texts)
    assert all(r["type"] for i in french["team"] for r in i["reasons"])  # reasons stay data

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agents import cli
from agents.api import create_api_app, token_identity
from history.business import compute
from history.importers import import_events, read_outcomes
from history.simulate import simulate, write_simulation
from state.readmodel import ReadModel
from streams.settings import Settings
from tests.fakes.portfolio import populate

pytestmark = pytest.mark.integration

AUTH = {"Authorization": "Bearer demo-token"}
BASE = "/api/v1/workspaces/demo"


@pytest.fixture
async def client(redis_url: str, unique_prefix: str) -> AsyncIterator[TestClient]:
    settings = Settings(redis_url=redis_url, topic_prefix=unique_prefix,
                        api_tokens="demo-token=demo,other-token=other")
    readmodel = ReadModel.from_settings(settings)
    await populate(readmodel)
    async with TestClient(TestServer(create_api_app(settings, readmodel))) as test_client:
        yield test_client
    await readmodel.clear()
    await readmodel.close()


def test_token_lookup() -> None:
    tokens = {"abc": "demo"}
    assert token_identity(tokens, "Bearer abc") == "demo"
    assert token_identity(tokens, "bearer  abc ") == "demo"
    assert token_identity(tokens, "Basic abc") is None
    assert token_identity(tokens, "Bearer abd") is None
    assert token_identity(tokens, None) is None
    # a header that was not UTF-8 (kept as lone surrogates) is no token, not an error
    assert token_identity(tokens, "Bearer \udca4abc") is None
    assert token_identity(tokens, "Bearer \ud800") is None


async def test_a_token_that_is_not_utf8_is_refused_not_a_server_error(
        client: TestClient) -> None:
    """Raw bytes on the socket, as an attacker sends them: 401, and the server goes on."""
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(b"GET " + BASE.encode() + b"/accounts HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Authorization: Bearer \xa4\xff demo-token\r\nConnection: close\r\n\r\n")
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    assert status_line.split()[1] == b"401"
    assert (await client.get(BASE + "/accounts", headers=AUTH)).status == 200


async def test_auth_errors(client: TestClient) -> None:
    response = await client.get(BASE + "/accounts")
    assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await response.json())["error"] == "unauthorized"
    assert (await client.get(BASE + "/accounts",
                             headers={"Authorization": "Bearer nope"})).status == 401
    response = await client.get(BASE + "/accounts", headers={"Authorization": "Bearer other-token"})
    assert response.status == 403 and (await response.json())["error"] == "forbidden"
    assert (await client.get("/api/v1/workspaces/other/accounts", headers=AUTH)).status == 403
    response = await client.get(BASE + "/accounts/nope", headers=AUTH)
    assert response.status == 404 and response.content_type == "application/problem+json"
    assert (await client.get(BASE + "/users/nope", headers=AUTH)).status == 404
    response = await client.get("/api/v1/nothing", headers=AUTH)
    assert response.status == 404 and response.content_type == "application/problem+json"


async def test_list_filters_sorts_and_pages(client: TestClient) -> None:
    body = await (await client.get(BASE + "/accounts", headers=AUTH)).json()
    assert body["total"] == 8 and body["next_offset"] is None
    assert [a["account_id"] for a in body["items"]][:3] == ["globex", "initech", "wayne"]
    body = await (await client.get(BASE + "/accounts?band=at_risk", headers=AUTH)).json()
    assert {a["account_id"] for a in body["items"]} == {"globex", "initech"}
    body = await (await client.get(BASE + "/accounts?owner=Riley%20Chen&sort=-score",
                                   headers=AUTH)).json()
    assert [a["account_id"] for a in body["items"]] == ["acme", "wayne", "initech"]
    body = await (await client.get(BASE + "/accounts?sort=change_7d&limit=2", headers=AUTH)).json()
    assert [a["account_id"] for a in body["items"]] == ["globex", "acme"]  # -13, -11
    assert body["next_offset"] == 2 and body["total"] == 8
    body = await (await client.get(BASE + "/accounts?sort=-arr_at_risk&limit=1",
                                   headers=AUTH)).json()
    assert body["items"][0]["account_id"] == "globex"
    assert body["items"][0]["arr_at_risk"] == 180_000
    body = await (await client.get(BASE + "/accounts?sort=days_to_renewal", headers=AUTH)).json()
    assert body["items"][0]["account_id"] == "vandelay"
    assert body["items"][-1]["account_id"] == "hooli"  # no renewal date: last
    body = await (await client.get(BASE + "/accounts?signal=payment_failed&segment=enterprise",
                                   headers=AUTH)).json()
    assert [a["account_id"] for a in body["items"]] == ["globex"]
    assert body["items"][0]["signals"] == ["payment_failed", "ticket_spike"]
    body = await (await client.get(BASE + "/accounts?forecast=none", headers=AUTH)).json()
    assert [a["account_id"] for a in body["items"]] == ["hooli"]
    body = await (await client.get(BASE + "/accounts?lifecycle=renewal_window",
                                   headers=AUTH)).json()
    assert {a["account_id"] for a in body["items"]} == {"acme", "initech", "vandelay"}
    for bad in ("sort=name", "limit=0", "limit=x", "offset=-1", "band=red", "forecast=maybe"):
        response = await client.get(BASE + "/accounts?" + bad, headers=AUTH)
        assert response.status == 400, bad
        assert (await response.json())["error"] == "bad_request"


async def test_one_account_has_components_reasons_users_and_history(client: TestClient) -> None:
    body = await (await client.get(BASE + "/accounts/acme", headers=AUTH)).json()
    assert body["score"] == 57 and body["band"] == "watch" and body["delta"] == -6
    assert body["explanation"].startswith("Health fell 6 points (63 → 57)")
    assert set(body["components"]) == {"adoption", "engagement", "support", "relationship"}
    assert body["reasons"] and body["drivers"][0]["component"] == "adoption"
    assert [p["score"] for p in body["history"]] == [78, 76, 74, 72, 68, 63, 57]
    assert len(body["users"]) == 4 and body["users"][0]["power_user"] is True
    assert body["users"][0]["last_seen"].endswith("Z")
    assert body["active_signals"][0]["type"] == "power_user_inactive"
    user = await (await client.get(BASE + "/users/acme-u1", headers=AUTH)).json()
    assert user["account_id"] == "acme" and user["name"] == "Lee Park"
    assert user["power_user"] is False and isinstance(user["score"], int)


async def test_rankings_and_portfolio(client: TestClient) -> None:
    body = await (await client.get(BASE + "/rankings/attention?limit=3", headers=AUTH)).json()
    assert body["items"][0]["account_id"] == "globex"
    body = await (await client.get(BASE + "/rankings/expansion", headers=AUTH)).json()
    assert [a["account_id"] for a in body["items"]] == ["umbrella"]
    body = await (await client.get(BASE + "/rankings/renewals?forecast=at_risk",
                                   headers=AUTH)).json()
    assert [a["account_id"] for a in body["items"]] == ["initech", "globex"]
    assert (await client.get(BASE + "/rankings/best", headers=AUTH)).status == 404
    folio = await (await client.get(BASE + "/portfolio", headers=AUTH)).json()
    assert folio["accounts"] == 8
    assert folio["accounts_by_band"] == {"at_risk": 2, "healthy": 3, "watch": 3}
    assert folio["arr_by_band"]["at_risk"] == 189_600.0


async def test_openapi_document_is_served_without_auth(client: TestClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status == 200
    doc = await response.json()
    assert doc["openapi"].startswith("3.") and "/api/v1/workspaces/{workspace}/accounts" in (
        doc["paths"])


async def test_business_metrics_published_by_the_cli(
    client: TestClient, tmp_path: Path, redis_url: str, unique_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    response = await client.get(BASE + "/business-metrics", headers=AUTH)
    assert response.status == 404 and "telltale metrics" in (await response.json())["detail"]

    events, outcomes = tmp_path / "history.jsonl", tmp_path / "outcomes.csv"
    write_simulation(simulate(accounts=6, days=120, seed=5), events, outcomes)
    monkeypatch.setenv("TELLTALE_REDIS_URL", redis_url)
    monkeypatch.setenv("TELLTALE_TOPIC_PREFIX", unique_prefix)
    argv = ["metrics", str(events), "--outcomes", str(outcomes), "--workspace", "demo",
            "--publish"]
    assert await asyncio.to_thread(cli.main, argv) == 0

    response = await client.get(BASE + "/business-metrics", headers=AUTH)
    assert response.status == 200
    body = await response.json()
    expected = compute(import_events(events, "demo"), read_outcomes(outcomes))
    assert body["metrics"] == expected and body["metrics"]["accounts"] == 6
    assert body["source"] == "history.jsonl" and body["workspace"] == "demo"
    published = datetime.fromisoformat(body["computed_at"])
    assert abs((datetime.now(tz=UTC) - published).total_seconds()) < 60
    # Another workspace's token sees nothing of it; a rebuild of the read model keeps it.
    other = await client.get("/api/v1/workspaces/other/business-metrics",
                             headers={"Authorization": "Bearer other-token"})
    assert other.status == 404
    settings = Settings(redis_url=redis_url, topic_prefix=unique_prefix)
    readmodel = ReadModel.from_settings(settings)
    try:
        await readmodel.clear()
        assert (await readmodel.business("demo")) == body
        await readmodel.redis.delete(readmodel.business_key("demo"))
    finally:
        await readmodel.close()

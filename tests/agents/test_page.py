from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agents.page import create_page_app, history_chart
from agents.settings import Settings
from state.readmodel import ReadModel
from tests.fakes.changes import make_change
from tests.fakes.portfolio import populate

pytestmark = pytest.mark.integration

AUTH = {"Authorization": "Bearer page-token"}


@pytest.fixture
async def client(redis_url: str, unique_prefix: str) -> AsyncIterator[TestClient]:
    settings = Settings(redis_url=redis_url, topic_prefix=unique_prefix,
                        api_tokens="page-token=demo")
    readmodel = ReadModel.from_settings(settings)
    await populate(readmodel)
    async with TestClient(TestServer(create_page_app(settings, readmodel))) as test_client:
        test_client.readmodel = readmodel  # type: ignore[attr-defined]
        yield test_client
    await readmodel.clear()
    await readmodel.close()


async def test_without_a_token_the_page_asks_for_one(client: TestClient) -> None:
    response = await client.get("/today")
    assert response.status == 401
    text = await response.text()
    assert "API token" in text and 'action="/today"' in text
    response = await client.get("/today?token=wrong")
    assert response.status == 401 and "not known" in await response.text()


async def test_token_in_the_query_becomes_a_cookie(client: TestClient) -> None:
    response = await client.get("/accounts/acme?token=page-token", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/accounts/acme"
    cookie = response.headers["Set-Cookie"]
    assert "telltale_token=page-token" in cookie and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    response = await client.get("/accounts/acme")  # the cookie jar sends it now
    assert response.status == 200 and "Acme Corp" in await response.text()


async def test_today_lists_accounts_needing_attention_with_reason_and_owner(
        client: TestClient) -> None:
    response = await client.get("/today", headers=AUTH)
    assert response.status == 200 and response.content_type == "text/html"
    page = await response.text()
    table = page.split('<table class="attention">')[1].split("</table>")[0]
    names = re.findall(r'class="account" href="/accounts/([^"]+)"', table)
    assert names[0] == "globex"  # at risk, steepest fall, enterprise ARR
    assert set(names) == {"globex", "initech", "wayne", "acme"}
    assert "umbrella" not in names and "vandelay" not in names
    assert "Sam Ito" in table and "Riley Chen" in table
    assert "Health fell 7 points (38 → 31)" in table
    assert "4 accounts need attention today" in page
    assert "Expansion leads" in page and "Umbrella" in page.split("Expansion leads")[1]


async def test_account_page_shows_history_components_and_users(client: TestClient) -> None:
    page = await (await client.get("/accounts/acme", headers=AUTH)).text()
    assert "<svg" in page and "<script" not in page
    points = re.search(r'<polyline points="([^"]+)"', page)
    assert points is not None and len(points.group(1).split()) == 7
    assert "Adoption" in page and "active users 18 · seats 30" in page
    users = page.split('<table class="users">')[1]
    assert "Dana Fox" in users and "★ power user" in users
    assert "inactive for 22 days" in page  # the active signal's text
    response = await client.get("/accounts/nope", headers=AUTH)
    assert response.status == 404 and "No account nope" in await response.text()


async def test_everything_shown_is_escaped(client: TestClient) -> None:
    readmodel: ReadModel = client.readmodel  # type: ignore[attr-defined]
    await readmodel.apply(make_change(account_id="evil", account_name="<script>x</script>",
                                      score=20, previous_score=50,
                                      explanation='"><img src=x onerror=alert(1)>',
                                      now=1_790_000_000.0))
    today = await (await client.get("/today", headers=AUTH)).text()
    account = await (await client.get("/accounts/evil", headers=AUTH)).text()
    for page in (today, account):
        assert "<script>x" not in page and "<img src=x" not in page
        assert "&lt;script&gt;x&lt;/script&gt;" in page


def test_chart_of_one_point_and_of_none() -> None:
    assert "No history" in history_chart([])
    svg = history_chart([{"t": "2026-06-01T00:00:00Z", "score": 55, "band": "watch"}])
    assert svg.count("<circle") == 1 and "2026-06-01" in svg


def test_component_detail_reads_as_words() -> None:
    from agents.page import describe_detail

    assert describe_detail({"active_users": 18, "seats": 30, "trend_pct": None}) == (
        "active users 18 · seats 30")
    assert describe_detail({"inactive": [{"user_id": "u1", "name": "Dana", "days": 22}],
                            "downgrade": ["pro", "team"], "cancelled": True,
                            "per_seat_week": 2.25}) == (
        "inactive: Dana · downgrade pro → team · cancelled · per seat week 2.2")
    assert describe_detail("plain") == "plain" and describe_detail(None) == ""


async def test_every_account_of_a_replayed_portfolio_renders(client: TestClient) -> None:
    from tests.fakes.portfolio import replayed_changes

    readmodel: ReadModel = client.readmodel  # type: ignore[attr-defined]
    changes = replayed_changes()
    for change in changes:
        await readmodel.apply(change)
    today = await client.get("/today", headers=AUTH)
    assert today.status == 200
    for account_id in sorted({c["account_id"] for c in changes}):
        response = await client.get(f"/accounts/{account_id}", headers=AUTH)
        assert response.status == 200, account_id
        page = await response.text()
        assert "<polyline" in page or "<circle" in page
        assert "{'" not in page  # component details are words, not dict reprs

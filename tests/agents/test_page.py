from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agents.page import create_page_app, history_chart
from state.readmodel import ReadModel
from streams.settings import Settings
from tests.fakes.changes import TEST_PLAYBOOKS, english, make_change, record
from tests.fakes.portfolio import portfolio_client

pytestmark = pytest.mark.integration

AUTH = {"Authorization": "Bearer page-token"}


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient]:
    settings = settings.replace(api_tokens="page-token=demo,"
                                           "riley-token=demo:riley@vendor.example")
    async with portfolio_client(settings, lambda readmodel: create_page_app(
            settings, readmodel, playbooks=TEST_PLAYBOOKS, render_reason=english)
    ) as (test_client, readmodel):
        test_client.readmodel = readmodel  # type: ignore[attr-defined]
        yield test_client


async def test_without_a_token_the_page_asks_for_one(client: TestClient) -> None:
    response = await client.get("/today")
    assert response.status == 401
    text = await response.text()
    assert "API token" in text and 'method="post" action="/signin"' in text
    assert 'name="next" value="/today"' in text


async def test_a_token_in_the_address_is_never_accepted(client: TestClient) -> None:
    for query in ("?token=wrong", "?token=page-token"):
        response = await client.get(f"/today{query}", allow_redirects=False)
        assert response.status == 401 and "not accepted" in await response.text()
        assert "Set-Cookie" not in response.headers


async def sign_in(client: TestClient, token: str, target: str = "/today") -> Any:
    return await client.post("/signin", data={"token": token, "next": target},
                             allow_redirects=False)


async def test_signing_in_with_a_post_keeps_the_session_in_a_cookie(client: TestClient) -> None:
    response = await sign_in(client, "page-token", "/accounts/acme")
    assert response.status == 303 and response.headers["Location"] == "/accounts/acme"
    cookie = response.headers["Set-Cookie"]
    assert "telltale_session=" in cookie and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie and "Secure" not in cookie  # plain HTTP here
    response = await client.get("/accounts/acme")  # the cookie jar sends it now
    assert response.status == 200 and "Acme Corp" in await response.text()
    assert (await sign_in(client, "wrong")).status == 401
    elsewhere = await sign_in(client, "page-token", "//evil.example/x")
    assert elsewhere.headers["Location"] == "/today"


def rows_of(page: str) -> list[str]:
    table = page.split('<table class="attention">')[1].split("</table>")[0]
    return re.findall(r'class="account" href="/accounts/([^"]+)"', table)


async def test_today_lists_the_worklist_with_reasons_first(client: TestClient) -> None:
    response = await client.get("/today", headers=AUTH)
    assert response.status == 200 and response.content_type == "text/html"
    page = await response.text()
    assert rows_of(page) == ["globex", "wayne", "acme", "initech"]
    assert "umbrella" not in rows_of(page) and "vandelay" not in rows_of(page)
    table = page.split('<table class="attention">')[1].split("</table>")[0]
    assert "Sam Ito" in table and "Riley Chen" in table
    assert "Payment failed for" in table and "Champion quiet acme-u0 for" in table
    assert "4 accounts need attention today" in page
    assert "Expansion leads" in page and "Umbrella" in page.split("Expansion leads")[1]


async def test_my_accounts_and_each_owners_list(client: TestClient) -> None:
    await sign_in(client, "riley-token")
    mine = await (await client.get("/today?owner=me")).text()
    assert rows_of(mine) == ["wayne", "acme", "initech"]
    assert "3 of your accounts need attention today" in mine
    sams = await (await client.get("/today?owner=sam@vendor.example")).text()
    assert rows_of(sams) == ["globex"]
    team = await (await client.get("/today")).text()
    assert "My accounts" in team and "Sam Ito (1)" in team and "Riley Chen (3)" in team


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found is not None
    return found.group(1)


async def test_forms_act_on_the_list_and_show_on_the_account_page(client: TestClient) -> None:
    await sign_in(client, "riley-token")
    csrf = csrf_of(await (await client.get("/today")).text())

    async def post(account_id: str, **fields: str) -> Any:
        return await client.post(f"/accounts/{account_id}/actions", allow_redirects=False,
                                 data={"csrf": csrf, "next": "/today?owner=me", **fields})

    response = await post("wayne", type="acknowledge")
    assert response.status == 303 and response.headers["Location"] == "/today?owner=me"
    assert (await post("acme", type="snooze", until="2099-01-01")).status == 409
    assert (await post("initech", type="note", text="Spoke to the admin\r\nAll fine")).status == 303
    assert (await post("initech", type="assign", assignee="sam@vendor.example")).status == 303
    mine = await (await client.get("/today?owner=me")).text()
    assert rows_of(mine) == ["acme"]
    account = await (await client.get("/accounts/initech")).text()
    history = account.split('<table class="actions">')[1]
    assert "Assigned to sam@vendor.example" in history and "Added a note" in history
    assert "riley@vendor.example" in history
    assert '<p class="note">Spoke to the admin\nAll fine</p>' in account
    wayne = await (await client.get("/accounts/wayne")).text()
    assert "Acknowledged: back on the list when a new or worse reason" in wayne
    assert "Health fell for" in wayne  # its reason is still shown
    # Without the session's CSRF token nothing happens.
    forged = await client.post("/accounts/acme/actions", allow_redirects=False,
                               data={"csrf": "0" * 64, "type": "acknowledge"})
    assert forged.status == 403
    elsewhere = await client.post("/accounts/acme/actions", allow_redirects=False,
                                  headers={"Origin": "https://evil.example"},
                                  data={"csrf": csrf, "type": "acknowledge"})
    assert elsewhere.status == 403 and "another site" in await elsewhere.text()
    assert rows_of(await (await client.get("/today?owner=me")).text()) == ["acme"]


async def test_account_page_shows_history_components_and_users(client: TestClient) -> None:
    page = await (await client.get("/accounts/acme", headers=AUTH)).text()
    assert "<svg" in page and "<script" not in page
    points = re.search(r'<polyline points="([^"]+)"', page)
    assert points is not None and len(points.group(1).split()) == 7
    assert "Adoption" in page and "18 of 30 seats active in the last 30 days" in page
    assert "active_users" not in page
    users = page.split('<table class="users">')[1]
    assert "Dana Fox" in users and "★ power user" in users
    assert "inactive for 22 days" in page  # the active signal's text
    response = await client.get("/accounts/nope", headers=AUTH)
    assert response.status == 404 and "No account nope" in await response.text()


async def test_everything_shown_is_escaped(client: TestClient) -> None:
    readmodel: ReadModel = client.readmodel  # type: ignore[attr-defined]
    await readmodel.apply(record(make_change(account_id="evil", account_name="<script>x</script>",
                                      score=20, previous_score=50,
                                      explanation='"><img src=x onerror=alert(1)>',
                                      now=1_790_000_000.0)))
    today = await (await client.get("/today", headers=AUTH)).text()
    account = await (await client.get("/accounts/evil", headers=AUTH)).text()
    for page in (today, account):
        assert "<script>x" not in page and "<img src=x" not in page
        assert "&lt;script&gt;x&lt;/script&gt;" in page


def test_chart_of_one_point_and_of_none() -> None:
    assert "No history" in history_chart([])
    svg = history_chart([{"t": "2026-06-01T00:00:00Z", "score": 55, "band": "watch"}])
    assert svg.count("<circle") == 1 and "2026-06-01" in svg


def test_chart_shades_the_configured_bands() -> None:
    from scoring.config import Bands

    svg = history_chart([{"t": "2026-06-01T00:00:00Z", "score": 55, "band": "watch"}],
                        Bands(healthy=80, watch=50))
    assert 'text-anchor="end">80</text>' in svg and 'text-anchor="end">50</text>' in svg
    assert 'text-anchor="end">70</text>' not in svg


def test_component_detail_reads_as_words() -> None:
    from agents.page import describe_detail

    assert describe_detail({"active_users": 18, "seats": 30, "trend_pct": None}) == (
        "active users 18 · seats 30")
    assert describe_detail({"inactive": [{"user_id": "u1", "name": "Dana", "days": 22}],
                            "downgrade": ["pro", "team"], "cancelled": True,
                            "per_seat_week": 2.25}) == (
        "inactive: Dana · downgrade pro → team · cancelled · per seat week 2.2")
    assert describe_detail("plain") == "plain" and describe_detail(None) == ""


def test_the_habit_reads_as_words() -> None:
    from agents.page import component_in_words

    assert component_in_words("habit", {"active_days": 100, "days": 300,
                                        "per_month": 10.0}) == (
        "used on 10 days a month over the last 300 days")
    assert component_in_words("habit", {"active_days": 0, "days": 0,
                                        "per_month": None}) == "no use yet"


async def test_every_account_of_a_replayed_portfolio_renders(client: TestClient) -> None:
    from tests.fakes.portfolio import replayed_changes

    readmodel: ReadModel = client.readmodel  # type: ignore[attr-defined]
    changes = replayed_changes()
    for change in changes:
        await readmodel.apply(record(change))
    today = await client.get("/today", headers=AUTH)
    assert today.status == 200
    for account_id in sorted({c["account_id"] for c in changes}):
        response = await client.get(f"/accounts/{account_id}", headers=AUTH)
        assert response.status == 200, account_id
        page = await response.text()
        assert "<polyline" in page or "<circle" in page
        assert "{'" not in page  # component details are words, not dict reprs


def _days_since_globex_renewal() -> int:
    """The page counts from the wall clock's day (UTC) to the portfolio's fixed dates."""
    return (datetime.now(UTC).date() - date(2026, 11, 12)).days


FRENCH = {**AUTH, "Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}
NBSP, NNBSP = "\u00a0", "\u202f"


async def test_the_page_in_french_when_the_browser_asks(client: TestClient) -> None:
    response = await client.get("/today", headers=FRENCH)
    assert response.status == 200
    assert response.headers["Content-Language"] == "fr"
    assert "Accept-Language" in response.headers["Vary"]
    page = html.unescape(await response.text())
    assert '<html lang="fr">' in page and "<h1>Aujourd'hui</h1>" in page
    assert ("4 comptes demandent de l'attention aujourd'hui, du plus urgent au moins urgent."
            in page)
    assert "<th>Compte et raisons</th>" in page and "<h2>Opportunités d'expansion</h2>" in page
    assert "Toute l'équipe" in page and 'title="À risque"' in page
    # the workspace's currency (dollars here) as French writes amounts, dates the same
    assert f"180{NNBSP}000{NBSP}$US" in page
    assert f"12 nov. 2026 (échu depuis {_days_since_globex_renewal()} jours)" in \
        page.replace(NBSP, " ")
    # reasons said by the catalogue in French, the person named with her numbers
    assert "Aucune connexion de Dana Fox, power user, depuis" in page
    assert "Mettre en veille" in page and "Prendre en compte" in page
    account = html.unescape(await (await client.get("/accounts/acme", headers=FRENCH)).text())
    assert "<h2>Historique du score</h2>" in account and "<th>Composante</th>" in account
    assert "<td>Relation</td>" in account and "Pas encore de note." in account
    assert "★ power user" in account


async def test_english_stays_the_default_and_shows_whole_amounts(client: TestClient) -> None:
    page = html.unescape(await (await client.get("/today", headers={
        **AUTH, "Accept-Language": "de-DE,de;q=0.9"})).text())
    assert '<html lang="en">' in page and "<h1>Today</h1>" in page
    assert "$180,000" in page
    assert f"2026-11-12 ({_days_since_globex_renewal()} days ago)" in page


async def _failed_payment(settings: Settings, config: Any) -> ReadModel:
    """The read model after the real core scored a failed payment of 1,200 at Acme."""
    from tests.scoring.story import Story

    story = Story(config=config, workspace="demo", account="acme")
    story.group(0, name="Acme", seats=5, created_at=story.iso_day(-300), arr=12000,
                renewal_date=story.iso_day(60))
    story.daily(["ana", "ben"], range(0, 30))
    story.track(5, None, "Payment Failed", amount=1200)
    story.run_to(5, hour=12)
    readmodel = ReadModel.from_settings(settings)
    for change in story.changes:
        await readmodel.apply(record(change.to_dict()))
    return readmodel


@pytest.fixture
async def french_workspace(settings: Settings, create_topics: Any, tmp_path: Any
                           ) -> AsyncIterator[TestClient]:
    """A workspace whose scoring configuration speaks French in euros on Paris time,
    with the changes the real core made for a failed payment of 1,200 €."""
    from dataclasses import replace

    from scoring.config import LocaleSettings, dump_config, load_config

    config = replace(load_config(), locale=LocaleSettings("fr", "EUR", "Europe/Paris"))
    path = tmp_path / "scoring.toml"
    path.write_text(dump_config(config), encoding="utf-8")
    settings = settings.replace(api_tokens="page-token=demo", scoring_config=str(path))
    await create_topics(settings.topics.actions, partitions=settings.partitions)
    readmodel = await _failed_payment(settings, config)
    app = create_page_app(settings, readmodel, playbooks=TEST_PLAYBOOKS)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client
    await readmodel.clear()
    await readmodel.close()


async def test_a_french_workspace_reads_in_french_and_a_browser_may_ask_for_english(
        french_workspace: TestClient) -> None:
    response = await french_workspace.get("/accounts/acme", headers=AUTH)
    assert response.headers["Content-Language"] == "fr"
    page = html.unescape(await response.text())
    assert (f"La santé a baissé de 6 points (69 → 63). En cause{NBSP}: un paiement de "
            f"1{NNBSP}200{NBSP}€ a échoué.") in page
    assert f"<div class=\"value\">12{NNBSP}000{NBSP}€</div>" in page
    assert "un paiement de 1\u202f200\u00a0€ a échoué" in page  # the signal's chip
    # the core's components as they are weighed; the habit weighs nothing here
    assert "<td>Récence</td>" in page and "Habitude" not in page
    english = html.unescape(await (await french_workspace.get("/accounts/acme", headers={
        **AUTH, "Accept-Language": "en-GB,en;q=0.8"})).text())
    assert "Health fell 6 points (69 → 63) because a payment of €1,200 failed." in english
    assert "€12,000" in english and "<h2>Score history</h2>" in english


async def test_a_workspace_file_in_french_gives_its_page_in_french(
        settings: Settings, create_topics: Any, tmp_path: Any) -> None:
    """The shared model speaks English; the workspace's own file asks for French in
    euros: its page is French, the English explanation said again in French."""
    from agents.workspaces import Workspaces
    from scoring.config import load_config

    directory = tmp_path / "workspaces"
    directory.mkdir()
    (directory / "demo.toml").write_text(
        '[scoring.locale]\nlanguage = "fr"\ncurrency = "EUR"\ntime_zone = "Europe/Paris"\n')
    settings = settings.replace(api_tokens="page-token=demo", workspaces_dir=directory)
    await create_topics(settings.topics.actions, partitions=settings.partitions)
    readmodel = await _failed_payment(settings, load_config())
    app = create_page_app(settings, readmodel, playbooks=TEST_PLAYBOOKS,
                          workspaces=Workspaces.from_settings(settings))
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/accounts/acme", headers=AUTH)
        assert response.headers["Content-Language"] == "fr"
        page = html.unescape(await response.text())
        assert "Health fell" not in page
        assert f"un paiement de 1{NNBSP}200{NBSP}€ a échoué" in page
        assert f"<div class=\"value\">12{NNBSP}000{NBSP}€</div>" in page
    await readmodel.close()

"""The CSM page in a real browser: Debian's Chromium driven by Playwright (headless).

The set-up installs Chromium with apt when it is missing (``apt-get install -y chromium``);
Playwright's own browser download is never used.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from agents.page import create_page_app
from devstack.process import free_port
from devstack.workers import settings_env
from state.readmodel import ReadModel
from streams.settings import Settings
from tests.fakes.changes import TEST_PLAYBOOKS, english
from tests.fakes.portfolio import populate

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SCREENSHOT_ENV = "TELLTALE_SCREENSHOT_DIR"
"""Where screenshots go (default: the test's tmp_path)."""


def ensure_chromium() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], check=False, timeout=600,
                       capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=False,
                       timeout=1200, capture_output=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed and could not be installed: run "
                    "`apt-get install -y chromium` as root")
    return CHROMIUM


TOKEN = "browser-token"


@dataclass
class Site:
    url: str
    settings: Settings
    readmodel: ReadModel


@pytest.fixture
async def site(settings: Settings, create_topics: Any, produce: Any) -> AsyncIterator[Site]:
    """The page and API over a read model folded from changes that are also on the
    health-changes topic (as the notify agent would have it), so that a rebuild can
    restore it; actions go to the real actions topic."""
    settings = settings.replace(api_tokens=f"{TOKEN}=demo:riley@vendor.example")
    topics = settings.topics
    await create_topics(topics.health_changes, topics.actions, partitions=settings.partitions)
    readmodel = ReadModel.from_settings(settings)
    changes = await populate(readmodel)
    await produce(topics.health_changes,
                  [(c["account_id"].encode(), orjson.dumps(c)) for c in changes])
    app = create_page_app(settings, readmodel, playbooks=TEST_PLAYBOOKS, render_reason=english)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield Site(f"http://127.0.0.1:{port}", settings, readmodel)
    await runner.cleanup()
    await readmodel.clear()
    await readmodel.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """The folder the screenshots go to (``TELLTALE_SCREENSHOT_DIR``, else ``tmp_path``)."""
    folder = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless Chromium, closed at the end of the test."""
    executable = ensure_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=executable, headless=True,
                                            args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def new_page(browser: Any, **options: Any) -> Any:
    """A desktop-sized page with JavaScript off: the page must work without it."""
    return await browser.new_page(viewport={"width": 1280, "height": 900},
                                  java_script_enabled=False, **options)


async def sign_in(page: Any, site: str, token: str = TOKEN) -> None:
    response = await page.goto(f"{site}/today")
    assert response is not None and response.status == 401
    await page.fill("input[name=token]", token)
    await page.click("form.login button")
    await page.wait_for_url(f"{site}/today")


async def test_today_page_leads_to_an_account(site: Site, browser: Any, shots: Path) -> None:
    page = await new_page(browser)
    await sign_in(page, site.url)
    assert "token" not in page.url
    assert await page.locator("h1").inner_text() == "Today"
    rows = page.locator("table.attention tbody tr")
    assert await rows.count() == 4
    first = rows.nth(0)
    assert "Globex" in await first.inner_text()
    assert "Payment failed for" in await first.inner_text()
    assert "Sam Ito" in await first.inner_text()
    await page.screenshot(path=str(shots / "today.png"), full_page=True)

    await page.locator("table.attention a.account", has_text="Acme Corp").click()
    await page.wait_for_url(f"{site.url}/accounts/acme")
    assert "Acme Corp" in await page.locator("h1").inner_text()
    assert await page.locator("h1 .score").inner_text() == "57"
    chart = page.locator("svg.history")
    assert await chart.is_visible()
    assert await chart.locator("circle").count() == 7
    users = page.locator("table.users tbody tr")
    assert await users.count() == 4
    assert "power user" in await users.nth(0).inner_text()
    assert await page.locator("table.components tbody tr").count() == 4
    await page.screenshot(path=str(shots / "account.png"), full_page=True)
    assert (shots / "account.png").stat().st_size > 10_000


async def test_a_csm_works_through_her_list_and_a_rebuild_keeps_what_she_did(
        site: Site, browser: Any, shots: Path) -> None:
    page = await new_page(browser)
    await sign_in(page, site.url)
    await page.click("p.filters a:has-text('My accounts')")
    await page.wait_for_url(f"{site.url}/today?owner=me")
    assert await listed(page) == ["Wayne Enterprises", "Acme Corp", "Initech"]

    await act(page, "Wayne Enterprises", "form.act-acknowledge button")
    assert await listed(page) == ["Acme Corp", "Initech"]
    await act(page, "Acme Corp", "form.act-snooze button")  # a week, as offered
    assert await listed(page) == ["Initech"]
    row = page.locator("table.attention tbody tr", has_text="Initech")
    await row.locator("summary").click()
    await row.locator("form.act-note textarea").fill("Renewal call booked for Friday")
    await row.locator("form.act-note button").click()
    await page.wait_for_url(f"{site.url}/today?owner=me")
    await page.screenshot(path=str(shots / "mine.png"), full_page=True)
    await check_account_pages(page, site.url)

    # The same through the API.
    auth = {"Authorization": f"Bearer {TOKEN}"}
    base = f"{site.url}/api/v1/workspaces/demo"
    async with aiohttp.ClientSession(headers=auth) as http:
        async with http.get(f"{base}/worklist?owner=me") as response:
            mine = await response.json()
        assert [i["account_id"] for i in mine["team"]] == ["initech"]
        async with http.get(f"{base}/accounts/acme/actions") as response:
            trail = (await response.json())["items"]
        assert [(a["type"], a["actor"]) for a in trail] == [
            ("snooze", "riley@vendor.example")]

    # The operator's rebuild, configured from the environment, keeps all of it.
    await site.readmodel.clear()
    await page.goto(f"{site.url}/today?owner=me")
    assert await listed(page) == []
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "agents.cli", "rebuild-read-model",
                         "--timeout", "60"],
        env={**os.environ, **settings_env(site.settings)}, capture_output=True,
        text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "3 actions applied" in done.stdout
    await page.goto(f"{site.url}/today?owner=me")
    assert await listed(page) == ["Initech"]
    await check_account_pages(page, site.url)


async def listed(page: Any) -> list[str]:
    names = page.locator("table.attention tbody tr a.account")
    return [await names.nth(i).inner_text() for i in range(await names.count())]


async def act(page: Any, account: str, button: str) -> None:
    """Open the account's actions on the list and press one; the list comes back."""
    row = page.locator("table.attention tbody tr", has_text=account)
    await row.locator("summary").click()
    await row.locator(button).click()
    await page.wait_for_url("**/today?owner=me")


async def check_account_pages(page: Any, site: str) -> None:
    await page.goto(f"{site}/accounts/initech")
    assert "Renewal call booked for Friday" in await page.locator("p.note").inner_text()
    history = page.locator("table.actions tbody")
    assert "Added a note" in await history.inner_text()
    assert "riley@vendor.example" in await history.inner_text()
    await page.goto(f"{site}/accounts/acme")
    assert "Snoozed until" in await page.locator("table.actions tbody").inner_text()
    await page.goto(f"{site}/accounts/wayne")
    assert "Acknowledged 1 reason" in await page.locator("table.actions tbody").inner_text()


async def test_a_french_browser_reads_the_page_in_french(
        site: Site, browser: Any, shots: Path) -> None:
    """A browser set to French (its Accept-Language) gets the sign-in, the list and the
    account page in French, with French amounts and dates."""

    def plain(text: str) -> str:
        return text.replace("\u00a0", " ").replace("\u202f", " ")

    page = await new_page(browser, locale="fr-FR")
    response = await page.goto(f"{site.url}/today")
    assert response is not None and response.status == 401
    assert await page.locator("h1").inner_text() == "Se connecter"
    await page.fill("input[name=token]", TOKEN)
    await page.click("form.login button")
    await page.wait_for_url(f"{site.url}/today")
    assert await page.locator("h1").inner_text() == "Aujourd'hui"
    assert await page.locator("html").get_attribute("lang") == "fr"
    head = plain(await page.locator("table.attention thead").inner_text()).lower()
    assert "compte et raisons" in head and "renouvellement" in head  # CSS capitals
    first = plain(await page.locator("table.attention tbody tr").nth(0).inner_text())
    assert "Globex" in first and "180 000 $US" in first
    assert "12 nov. 2026 (échu depuis" in first
    assert "Un paiement de 15 000 $US a échoué" in first
    await page.screenshot(path=str(shots / "today-fr.png"), full_page=True)

    await page.locator("table.attention a.account", has_text="Acme Corp").click()
    await page.wait_for_url(f"{site.url}/accounts/acme")
    body = plain(await page.locator("main").inner_text())
    assert "historique du score" in body.lower() and "pourquoi ce compte" in body.lower()
    assert "42 000 $US" in body and "dernière activité" in body.lower()
    assert "13 juin 2026" in body  # a user's last activity, as a French date
    await page.screenshot(path=str(shots / "account-fr.png"), full_page=True)

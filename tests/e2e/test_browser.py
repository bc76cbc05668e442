"""The CSM page in a real browser: Debian's Chromium driven by Playwright (headless).

The set-up installs Chromium with apt when it is missing (``apt-get install -y chromium``);
Playwright's own browser download is never used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from agents.page import create_page_app
from agents.settings import Settings
from devstack.process import free_port
from state.readmodel import ReadModel
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


@pytest.fixture
async def site(redis_url: str, unique_prefix: str) -> AsyncIterator[str]:
    settings = Settings(redis_url=redis_url, topic_prefix=unique_prefix,
                        api_tokens="browser-token=demo")
    readmodel = ReadModel.from_settings(settings)
    await populate(readmodel)
    runner = web.AppRunner(create_page_app(settings, readmodel))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()
    await readmodel.clear()
    await readmodel.close()


async def test_today_page_leads_to_an_account(site: str, tmp_path: Path) -> None:
    executable = ensure_chromium()
    from playwright.async_api import async_playwright

    shots = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable, headless=True,
                                           args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900},
                                          java_script_enabled=False)
            response = await page.goto(f"{site}/today?token=browser-token")
            assert response is not None and response.ok
            assert page.url == f"{site}/today"  # the token moved into a cookie
            assert await page.locator("h1").inner_text() == "Today"
            rows = page.locator("table.attention tbody tr")
            assert await rows.count() == 4
            first = rows.nth(0)
            assert "Globex" in await first.inner_text()
            assert "Health fell 7 points (38 → 31)" in await first.inner_text()
            assert "Sam Ito" in await first.inner_text()
            await page.screenshot(path=str(shots / "today.png"), full_page=True)

            await page.locator("table.attention a.account", has_text="Acme Corp").click()
            await page.wait_for_url(f"{site}/accounts/acme")
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
        finally:
            await browser.close()
    assert (shots / "account.png").stat().st_size > 10_000

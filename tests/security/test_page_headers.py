"""The page and the API over real HTTP (and HTTPS): every answer carries the security
headers, the session cookie is HttpOnly, SameSite=Strict and Secure when served over HTTPS,
and the HTML needs nothing the content security policy forbids."""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from agents.page import create_page_app
from devstack.process import free_port
from state.readmodel import ReadModel
from streams.settings import Settings
from tests.fakes.portfolio import populate
from tests.fakes.tls import self_signed

pytestmark = pytest.mark.integration

TOKEN = "headers-token"
EXPECTED = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


async def serve(settings: Settings, ssl_context: ssl.SSLContext | None = None
                ) -> AsyncIterator[str]:
    readmodel = ReadModel.from_settings(settings)
    await populate(readmodel)
    runner = web.AppRunner(create_page_app(settings, readmodel))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context).start()
    yield f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    await runner.cleanup()
    await readmodel.clear()
    await readmodel.close()


@pytest.fixture
async def site(redis_url: str, unique_prefix: str) -> AsyncIterator[str]:
    settings = Settings(redis_url=redis_url, topic_prefix=unique_prefix,
                        api_tokens=f"{TOKEN}=demo")
    async for url in serve(settings):
        yield url


def check_headers(response: aiohttp.ClientResponse) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, (response.url, name)
    policy = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().partition(" ")[::2] for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert directives.get("script-src", "'self'") in ("'none'", "'self'")
    assert directives.get("frame-ancestors") == "'none'"


async def test_every_page_and_api_answer_carries_the_security_headers(site: str) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:
        for method, path, headers, status in (
                ("GET", "/today", {}, 401),
                ("GET", "/today", auth, 200),
                ("GET", "/accounts/acme", auth, 200),
                ("GET", "/accounts/nope", auth, 404),
                ("GET", "/static/telltale.css", {}, 200),
                ("GET", "/", {}, 302),
                ("POST", "/signin", {}, 401),
                ("GET", "/api/v1/workspaces/demo/worklist", auth, 200),
                ("GET", "/api/v1/workspaces/demo/accounts", {}, 401),
                ("GET", "/api/v1/nothing", auth, 404),
                ("GET", "/openapi.json", {}, 200)):
            async with http.request(method, site + path, headers=headers,
                                    allow_redirects=False) as response:
                assert response.status == status, path
                check_headers(response)


async def test_pages_need_no_inline_script_or_style(site: str) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:
        for path in ("/today", "/accounts/acme", "/accounts/globex"):
            async with http.get(site + path, headers=auth) as response:
                page = await response.text()
            assert "<script" not in page.lower() and "<style" not in page.lower()
            assert not re.search(r"\sstyle=", page), path
            assert not re.search(r"\son[a-z]+=", page), path  # no event handler attributes
            assert '<link rel="stylesheet" href="/static/telltale.css">' in page


async def test_the_session_cookie_over_http(site: str) -> None:
    async with aiohttp.ClientSession() as http, http.post(
            site + "/signin", data={"token": TOKEN, "next": "/today"},
            allow_redirects=False) as response:
        assert response.status == 303
        check_headers(response)
        cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie and TOKEN in cookie


async def test_the_session_cookie_is_secure_when_the_public_url_is_https(
        redis_url: str, unique_prefix: str) -> None:
    settings = Settings(redis_url=redis_url, topic_prefix=unique_prefix,
                        api_tokens=f"{TOKEN}=demo", public_url="https://health.example")
    async for url in serve(settings):
        async with aiohttp.ClientSession() as http, http.post(
                url + "/signin", data={"token": TOKEN}, allow_redirects=False) as response:
            assert response.status == 303
            assert "Secure" in response.headers["Set-Cookie"]


async def test_the_session_cookie_is_secure_when_served_over_https(
        redis_url: str, unique_prefix: str, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(cert))
    settings = Settings(redis_url=redis_url, topic_prefix=unique_prefix,
                        api_tokens=f"{TOKEN}=demo")
    async for url in serve(settings, server_tls):
        async with aiohttp.ClientSession() as http, http.post(
                url + "/signin", data={"token": TOKEN}, ssl=client_tls,
                allow_redirects=False) as response:
            assert response.status == 303
            check_headers(response)
            cookie = response.headers["Set-Cookie"]
            assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie

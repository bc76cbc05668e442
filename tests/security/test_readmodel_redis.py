"""The API and the page over a Redis that stops answering (SIGSTOP: its kernel still
accepts connections): a bounded wait, then 503 with Retry-After, never a 500 or a hung
request, and the next request after Redis resumes succeeds by itself."""

from __future__ import annotations

import os
import signal
import time

from aiohttp.test_utils import TestClient, TestServer

from agents.api import READ_MODEL_RETRY_AFTER_SECONDS
from agents.page import create_page_app
from devstack.redis import RedisServer
from state.readmodel import ReadModel
from streams.settings import Settings
from tests.fakes.portfolio import populate

TOKEN = "csm-token-1"


async def test_api_and_page_answer_503_while_redis_is_paused(
        own_redis: RedisServer, unique_prefix: str) -> None:
    settings = Settings(redis_url=own_redis.url, topic_prefix=unique_prefix,
                        api_tokens=f"{TOKEN}=demo", redis_timeout_seconds=1.0)
    readmodel = ReadModel.from_settings(settings)
    await populate(readmodel)
    api = "/api/v1/workspaces/demo/accounts"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with TestClient(TestServer(create_page_app(settings, readmodel))) as client:
        assert (await client.get(api, headers=auth)).status == 200
        signed_in = await client.post("/signin", data={"token": TOKEN},
                                      allow_redirects=False)
        assert signed_in.status in (302, 303), await signed_in.text()

        os.kill(own_redis.process.pid, signal.SIGSTOP)
        try:
            for path, headers in ((api, auth), ("/today", {})):
                started = time.monotonic()
                reply = await client.get(path, headers=headers, allow_redirects=False)
                waited = time.monotonic() - started
                assert reply.status == 503, (path, reply.status, await reply.text())
                assert reply.headers["Retry-After"] == str(READ_MODEL_RETRY_AFTER_SECONDS)
                assert waited < settings.redis_timeout_seconds + 3, (path, waited)
        finally:
            os.kill(own_redis.process.pid, signal.SIGCONT)

        assert (await client.get(api, headers=auth)).status == 200
        assert (await client.get("/today")).status == 200
    await readmodel.close()

"""HubSpot writes share one client: later writes reuse the first one's connection."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from agents.sinks.crm import HubSpotSync
from devstack.process import free_port
from tests.agents.sinks.test_crm import CHANGE, hubspot_api
from tests.fakes.http import Recorded


class PeerRecordingHubSpot:
    """The HubSpot companies endpoint, noting the client port of each request."""

    def __init__(self) -> None:
        self.peers: list[int] = []
        self.statuses: list[int] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.peers.append(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        body = await request.read()
        status, headers, payload = hubspot_api(
            Recorded(request.method, request.path_qs, dict(request.headers), body, 0))
        self.statuses.append(status)
        return web.Response(status=status, headers=headers, body=payload)


@pytest.fixture
async def hubspot() -> AsyncIterator[PeerRecordingHubSpot]:
    fake = PeerRecordingHubSpot()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    await runner.cleanup()


async def test_writes_reuse_one_connection_until_closed(hubspot: PeerRecordingHubSpot) -> None:
    sync = HubSpotSync("pat-test", host=hubspot.url)
    for _ in range(3):
        assert await sync.send(CHANGE)
    assert hubspot.statuses == [200, 200, 200]
    assert len(set(hubspot.peers)) == 1, hubspot.peers
    sync.close()
    assert await sync.send(CHANGE)  # a closed sync opens a new client when used again
    assert hubspot.peers[-1] != hubspot.peers[0]
    sync.close()

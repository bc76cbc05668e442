"""Slack and webhook POSTs never follow a redirect, and the one event-derived header of a
webhook (the change id) cannot carry anything but a token. A local server answers 30x
pointing at another local server that must receive nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from agents.sinks import DeliveryError, slack, webhooks
from tests.fakes.changes import make_change, record
from tests.fakes.http import RecordingServer


@pytest.fixture
async def other() -> AsyncIterator[RecordingServer]:
    server = await RecordingServer().start()
    yield server
    assert server.requests == [], "a redirect was followed"
    await server.stop()


@pytest.fixture
async def redirecting(other: RecordingServer) -> AsyncIterator[RecordingServer]:
    server = await RecordingServer().start()
    yield server
    await server.stop()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("sink", ["slack", "webhook"])
async def test_a_redirect_is_a_permanent_failure_and_is_not_followed(
        sink: str, status: int, redirecting: RecordingServer, other: RecordingServer) -> None:
    redirecting.script = lambda r: (status, {"Location": f"{other.url}/stolen"}, b"")
    change = make_change()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(DeliveryError) as info:
            if sink == "slack":
                await slack.post(session, redirecting.url + "/services/T/B/X",
                                 slack.change_message(record(change), "http://t"))
            else:
                await webhooks.post(session, redirecting.url + "/in", "s3cret",
                                    orjson.dumps(change), change["id"], now=1_700_000_000)
    assert not info.value.retryable
    assert f"HTTP {status}, a redirect, which is not followed" in info.value.reason
    assert [r.status for r in redirecting.requests] == [status]


@pytest.mark.parametrize("change_id", ["hc_1\r\nX-Forged: 1", "hc_1\nX-Forged: 1", "a b",
                                       "", "x" * 129, "hc_é", "hc_1\x00"])
async def test_a_change_id_that_is_not_a_token_never_reaches_a_header(
        change_id: str, other: RecordingServer) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(DeliveryError) as info:
            await webhooks.post(session, other.url + "/in", "s3cret", b"{}", change_id,
                                now=1_700_000_000)
    assert not info.value.retryable and "not a plain token" in info.value.reason

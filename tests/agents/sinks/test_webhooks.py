from __future__ import annotations

import hashlib
import hmac

import aiohttp
import orjson

from agents.sinks import webhooks
from tests.fakes.changes import make_change
from tests.fakes.http import RecordingServer


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"id":"c1"}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert webhooks.sign("s3cret", 1_700_000_000, body) == f"v1={expected}"


def test_verify_rejects_tampering_wrong_secret_and_old_timestamps() -> None:
    body = b'{"id":"c1"}'
    headers = webhooks.signed_headers("s3cret", 1_700_000_000, body, "c1")
    assert webhooks.verify("s3cret", headers, body, now=1_700_000_100)
    assert not webhooks.verify("s3cret", headers, body + b" ", now=1_700_000_100)
    assert not webhooks.verify("other", headers, body, now=1_700_000_100)
    assert not webhooks.verify("s3cret", headers, body, now=1_700_000_000 + 301)
    assert not webhooks.verify("s3cret", {}, body, now=1_700_000_000)


async def test_post_sends_the_change_signed() -> None:
    server = await RecordingServer().start()
    change = make_change()
    body = orjson.dumps(change)
    try:
        async with aiohttp.ClientSession() as session:
            await webhooks.post(session, server.url + "/in", "s3cret", body, change["id"],
                                now=1_700_000_000.5)
        (request,) = server.requests
        assert request.method == "POST" and request.path == "/in"
        assert request.json() == change
        assert request.headers["X-Telltale-Change-Id"] == change["id"]
        assert request.headers["X-Telltale-Timestamp"] == "1700000000"
        assert webhooks.verify("s3cret", request.headers, request.body, now=1_700_000_001)
    finally:
        await server.stop()

"""Webhooks signed in the Standard Webhooks format, checked by its reference library."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from agents.notify import Notifier
from agents.sinks import webhooks
from agents.sinks.routing import NotificationConfig, NotificationConfigError
from agents.sinks.standard_webhooks import parse_secret, signature
from state.readmodel import ReadModel
from streams.settings import Settings
from tests.fakes.changes import make_change
from tests.fakes.http import RecordingServer

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


def test_signature_matches_the_reference_library() -> None:
    body = b'{"test": 2432232314}'
    reference = Webhook(SECRET).sign("msg_p5jXN8AQM9LWM0D4loKWxJek",
                                     _utc(1_614_265_330), body.decode())
    assert signature(parse_secret(SECRET), "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330,
                     body) == reference


@pytest.mark.parametrize(("secret", "problem"), [
    ("s3cret", "must start with 'whsec_'"),
    ("whsec_not base64!", "must be whsec_ followed by base64"),
    ("whsec_" + base64.b64encode(b"short").decode(), "must hold 24 to 64 bytes, not 5"),
])
def test_a_bad_secret_is_refused_at_load_with_the_destination_named(
        secret: str, problem: str) -> None:
    with pytest.raises(NotificationConfigError) as raised:
        NotificationConfig.from_dict({"webhooks": [
            {"name": "ops", "url": "https://ops.example/in", "secret": "s",
             "standard_webhooks_secret": secret}]})
    assert f"webhooks[0].standard_webhooks_secret {problem}" in str(raised.value)


@pytest.mark.integration
async def test_only_the_destination_with_a_standard_secret_gets_its_headers(
        redis_url: str, unique_prefix: str) -> None:
    server = await RecordingServer().start()
    settings = Settings(redis_url=redis_url, topic_prefix=unique_prefix)
    config = NotificationConfig.from_dict({"webhooks": [
        {"name": "standard", "url": server.url + "/standard", "secret": "s3cret",
         "standard_webhooks_secret": SECRET},
        {"name": "plain", "url": server.url + "/plain", "secret": "s3cret"}]})
    readmodel = ReadModel.from_settings(settings)
    dead: list[dict[str, Any]] = []

    async def dead_letter(record: dict[str, Any]) -> None:
        dead.append(record)

    notifier = Notifier(settings, config, readmodel, dead_letter)
    try:
        change = make_change(now=time.time())
        assert await notifier.handle(orjson.dumps(change)) == "notified"
        await server.wait_for(2)
        await notifier.dispatcher.drain(10)
        requests = {r.path: r for r in server.accepted()}
        standard, plain = requests["/standard"], requests["/plain"]
        # The reference verifier checks signature, id and a timestamp within 5 minutes.
        assert Webhook(SECRET).verify(standard.body, standard.headers) == change
        assert standard.headers["webhook-id"] == change["id"]
        for request in (standard, plain):  # Telltale's own headers stay on both
            assert webhooks.verify("s3cret", request.headers, request.body, now=time.time())
        assert "webhook-signature" not in {name.lower() for name in plain.headers}
        with pytest.raises(WebhookVerificationError):
            Webhook(SECRET).verify(standard.body + b" ", standard.headers)
        assert dead == []
    finally:
        await notifier.close()
        await readmodel.clear()
        await readmodel.close()
        await server.stop()


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)

"""Arbitrary bytes and arbitrary JSON at the running collector (real Kafka and Redis):
only documented answers come back, and every dead letter carries a documented reason."""

from __future__ import annotations

import asyncio
import base64
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.collector import Collector, create_collector_app
from devstack.process import free_port
from devstack.topics import consume_until
from streams.normalize import REASONS
from streams.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

KEY = "wk-fuzz"
AUTH = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
PATHS = ["/v1/batch", "/v1/track", "/v1/identify", "/v1/group", "/v1/page", "/v1/alias",
         "/batch/", "/capture/"]
DOCUMENTED = {200, 400, 401, 413}


class ServerThread:
    """The collector on its own event loop in a thread, so hypothesis can drive it from a
    plain synchronous test."""

    def __init__(self, config: Settings) -> None:
        self.config = config
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.runner: web.AppRunner | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(60)
        return self

    async def _start(self) -> None:
        self.runner = web.AppRunner(create_collector_app(self.config, Collector(self.config)))
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def __exit__(self, *exc: object) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def post(self, path: str, body: bytes, auth: bool = True) -> int:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = AUTH
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body,
                                         method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = orjson.loads(response.read())
                return int(response.status) if answer["success"] else -1
        except urllib.error.HTTPError as exc:
            exc.read()
            return int(exc.code)


@pytest.fixture
def server(settings: Settings) -> Iterator[ServerThread]:
    with ServerThread(settings.replace(write_keys=f"{KEY}=fuzz")) as running:
        yield running


_json: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(
        st.sampled_from(["batch", "type", "event", "userId", "anonymousId", "messageId",
                         "timestamp", "sentAt", "groupId", "traits", "properties", "context",
                         "distinct_id", "uuid", "api_key", "writeKey", "$groups"])
        | st.text(max_size=4), children, max_size=8),
    max_leaves=40,
)
_message = st.fixed_dictionaries(
    {"type": st.sampled_from(["track", "identify", "group", "page", "nope"]),
     "messageId": st.uuids().map(str)},
    optional={"userId": _json, "anonymousId": _json, "event": _json, "groupId": _json,
              "timestamp": _json, "properties": _json, "traits": _json, "context": _json},
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(PATHS), st.binary(max_size=400), st.booleans())
def test_arbitrary_bytes_get_documented_answers(server: ServerThread, path: str,
                                                body: bytes, auth: bool) -> None:
    assert server.post(path, body, auth) in DOCUMENTED


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(PATHS), _json)
def test_arbitrary_json_gets_documented_answers(server: ServerThread, path: str,
                                                value: Any) -> None:
    assert server.post(path, orjson.dumps(value)) in DOCUMENTED


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_message, max_size=6))
def test_near_valid_batches_are_accepted_or_dead_lettered(server: ServerThread,
                                                          batch: list[Any]) -> None:
    assert server.post("/v1/batch", orjson.dumps({"batch": batch})) == 200


def test_every_dead_letter_reason_is_documented(server: ServerThread,
                                                kafka_bootstrap: str) -> None:
    bad = [{"type": "track"}, {"type": "x", "userId": "u"}, 5, {"type": "track", "userId": [1],
                                                               "event": "e"}]
    assert server.post("/v1/batch", orjson.dumps({"batch": bad})) == 200
    topic = server.config.topics.events_dlq

    def four(records: list[Any]) -> bool:
        return len(records) >= 4

    records: list[Any] = asyncio.run(consume_until(kafka_bootstrap, topic, four, timeout=30))
    reasons = [orjson.loads(r.value)["reason"] for r in records]
    assert sorted(reasons) == ["bad_identity", "missing_identity", "not_an_object",
                               "unknown_type"]
    assert set(reasons) <= REASONS



"""A Redis that stops answering (SIGSTOP: its kernel still accepts connections) costs a
request a bounded wait and a 503 with Retry-After, and the collector recovers by itself
once Redis answers again. The read model's client has the same timeouts."""

from __future__ import annotations

import os
import signal
import time

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from devstack.redis import RedisServer
from state.readmodel import ReadModel
from tests.security.conftest import ServeCollector
from tests.security.harness import Live, track


async def test_a_hung_redis_is_503_within_the_timeout_and_recovers_by_itself(
    serve_collector: ServeCollector, own_redis: RedisServer
) -> None:
    live: Live = await serve_collector(redis_url=own_redis.url)
    timeout = live.settings.redis_timeout_seconds
    readmodel = ReadModel.from_settings(live.settings)
    try:
        warm = await live.send("/v1/batch", {"batch": [track(1)]})
        assert warm.status == 200, warm
        assert await readmodel.workspaces() == []

        os.kill(own_redis.process.pid, signal.SIGSTOP)
        hung = await live.send("/v1/batch", {"batch": [track(2)]})
        assert hung.status == 503, hung
        assert hung.headers["Retry-After"] == "1"
        print(f"\nhung Redis: 503 after {hung.seconds:.2f} s (timeout {timeout} s)")
        assert hung.seconds < timeout + 3, f"answered after {hung.seconds:.1f} s"
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await readmodel.workspaces()
        assert time.monotonic() - started < timeout + 3

        os.kill(own_redis.process.pid, signal.SIGCONT)
        recovered = await live.send("/v1/batch", {"batch": [track(2)]})
        assert recovered.status == 200, recovered
        assert recovered.body["accepted"] == 1, recovered
        assert await readmodel.workspaces() == []
    finally:
        await readmodel.close()
    ids = sorted(event.message_id for event in await live.events())
    assert ids == ["m-1", "m-2"]

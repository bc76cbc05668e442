"""Fixtures of the collector security tests: a live collector app per test."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from agents.collector import Collector, CollectorLimits, create_collector_app
from devstack.process import free_port
from devstack.redis import RedisServer, start_redis
from streams.settings import Settings
from tests.security.harness import KEY, Live

ServeCollector = Callable[..., Any]


@pytest.fixture
async def serve_collector(settings: Settings, kafka_bootstrap: str,
                          create_topics: Callable[..., Any]
                          ) -> AsyncIterator[ServeCollector]:
    """``await serve_collector(limits=None, **setting_changes)`` → :class:`Live`."""
    runners: list[web.AppRunner] = []

    async def serve(limits: CollectorLimits | None = None, **changes: Any) -> Live:
        config = settings.replace(write_keys=f"{KEY}=acme", **changes)
        await create_topics(config.topics.events, config.topics.events_dlq,
                            partitions=config.partitions)
        collector = Collector(config, limits)
        runner = web.AppRunner(create_collector_app(config, collector))
        await runner.setup()
        runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return Live(port, collector, config, kafka_bootstrap)

    yield serve
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, to pause with SIGSTOP: the session's is shared and must
    never be stopped."""
    server = start_redis()
    try:
        yield server
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        server.stop()


@pytest.fixture
async def live(serve_collector: ServeCollector) -> Live:
    live: Live = await serve_collector()
    return live



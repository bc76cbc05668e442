"""``/healthz`` and ``/readyz``: the probe's rules, then a real worker and a real Redis.

The worker runs the walking skeleton (one agent, one RocksDB table) with the health
module, against a Redis this test starts so that it can stop it with SIGSTOP: a stopped
Redis still accepts connections and never answers, the case that hangs a probe without
its own bound.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from agents.health import Readiness, ReadinessProbe
from devstack.redis import RedisServer, start_redis
from streams.settings import Settings
from tests.conftest import TEST_PARTITIONS

# -- the probe's rules, without a worker ------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_ready_only_when_every_check_passes() -> None:
    state: dict[str, str | None] = {"recovery": "recovering (10 changelog records to go)"}
    calls = 0

    async def kafka() -> str | None:
        nonlocal calls
        calls += 1
        return None

    clock = _Clock()
    probe = ReadinessProbe({"recovery": lambda: state["recovery"]}, {"kafka": kafka},
                           cache_seconds=1.5, clock=clock)
    answer = await probe.readiness()
    assert not answer.ready
    assert answer.response().status == 503
    state["recovery"] = None
    assert not (await probe.readiness()).ready  # the answer is reused for 1.5 s
    assert calls == 1
    clock.now = 1.6
    answer = await probe.readiness()
    assert answer.ready and answer.response().status == 200
    assert calls == 2


async def test_a_hanging_or_failing_dependency_is_not_ready_within_the_bound() -> None:
    async def hangs() -> str | None:
        await asyncio.sleep(60)
        return None

    async def fails() -> str | None:
        raise ConnectionError("refused")

    probe = ReadinessProbe({}, {"redis": hangs, "kafka": fails}, timeout=0.2)
    started = time.monotonic()
    answer = await probe.readiness()
    assert time.monotonic() - started < 1.0  # both run at once, each bounded
    assert answer.checks == {"redis": "no answer within 0.2 s",
                             "kafka": "ConnectionError: refused"}


async def test_concurrent_probes_share_one_check() -> None:
    calls = 0

    async def redis() -> str | None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return None

    probe = ReadinessProbe({}, {"redis": redis})
    answers = await asyncio.gather(*(probe.readiness() for _ in range(20)))
    assert calls == 1
    assert all(isinstance(a, Readiness) and a.ready for a in answers)


# -- a real worker ------------------------------------------------------------------------


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = start_redis()
    try:
        yield server
    finally:
        os.kill(server.process.pid, signal.SIGCONT)  # a stopped server ignores SIGTERM
        server.stop()


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
        return response.status, await response.json()


async def _until(session: aiohttp.ClientSession, url: str, status: int,
                 timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            got, body = await _get(session, url)
        except aiohttp.ClientConnectionError:
            got, body = 0, {}
        if got == status:
            return body
        assert time.monotonic() < deadline, f"{url}: {got} {body}"
        await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_a_worker_is_ready_after_recovery_and_not_while_redis_is_stopped(
        settings: Settings, own_redis: RedisServer, start_worker: Any, create_topics: Any,
        produce: Any) -> None:
    settings = settings.replace(redis_url=own_redis.url)
    # A changelog to replay before the table is usable: the worker is alive meanwhile,
    # but not ready.
    changelog = f"{settings.app_id}-skeleton-counts-changelog"
    await create_topics(changelog, partitions=TEST_PARTITIONS,
                        config={"cleanup.policy": "compact"})
    await produce(changelog, ((f"acct-{n}".encode(), b"1") for n in range(60_000)))
    worker = start_worker(settings, "--skeleton", "--module", "agents.health", wait=False)

    seen: list[tuple[int, dict[str, Any]]] = []
    async with aiohttp.ClientSession() as session:
        await _until(session, worker.url + "/healthz", 200, timeout=90)
        deadline = time.monotonic() + 120
        while not seen or seen[-1][0] != 200:
            assert time.monotonic() < deadline, seen[-3:]
            seen.append(await _get(session, worker.url + "/readyz"))
            await asyncio.sleep(0.2)
        not_ready = [body["checks"] for status, body in seen if status == 503]
        assert not_ready, "ready at the first answer, before its recovery could finish"
        assert any(checks["recovery"].startswith("recovering") for checks in not_ready)
        assert seen[-1][1]["checks"] == {"partitions": "ok", "recovery": "ok",
                                         "kafka": "ok", "redis": "ok"}
        worker.wait_ready(timeout=30)

        os.kill(own_redis.process.pid, signal.SIGSTOP)
        body = await _until(session, worker.url + "/readyz", 503, timeout=10)
        assert body["checks"]["redis"].startswith("no answer within")
        started = time.monotonic()
        status, _ = await _get(session, worker.url + "/readyz")
        assert status == 503 and time.monotonic() - started < 2.5  # bounded, not hung
        healthz, _ = await _get(session, worker.url + "/healthz")
        assert healthz == 200  # alive: a stopped Redis is no reason to restart a worker

        os.kill(own_redis.process.pid, signal.SIGCONT)
        body = await _until(session, worker.url + "/readyz", 200, timeout=15)
        assert body["status"] == "ready"
